// A stand-in data-plane task that speaks src/worker/protocol.ts without touching frames, so the pool's
// supervision (ready, log forwarding, stats, stop, crash restarts) can be tested on its own.
// Behaviour is chosen by the task's fd: -1 crash at once; -2 crash after `ready`; -3 never ready;
// or, for whole-CLI tests with real fds, by TSW_FAKE_WORKER=crash-after-ready in the environment.
import type { ControlMessage, QueueExit, QueueTask, WorkerMessage } from '../../src/worker/protocol';

export default async function fakeTask(task: QueueTask): Promise<QueueExit> {
  const post = (m: WorkerMessage) => task.port.postMessage(m);
  if (task.fd === -1) throw new Error('fake crash');
  if (task.fd !== -3) post({ type: 'ready', queueIndex: task.queueIndex });
  post({ type: 'log', level: 'info', msg: `fake queue ${task.queueIndex} serving fd ${task.fd}` });
  if (task.fd === -2 || process.env.TSW_FAKE_WORKER === 'crash-after-ready') {
    await new Promise((r) => setTimeout(r, 20));
    throw new Error('fake crash after ready');
  }
  const counters = { frames_rx: 10 + task.queueIndex, frames_tx: 5 };
  return new Promise<QueueExit>((resolve) => {
    task.port.on('message', (m: ControlMessage) => {
      if (m.type === 'stats') post({ type: 'stats', requestId: m.requestId, counters });
      if (m.type === 'stop') {
        task.port.close();
        resolve({ queueIndex: task.queueIndex, counters });
      }
    });
  });
}
