// A stand-in data-plane task that speaks src/worker/protocol.ts without touching frames, so the pool's
// supervision (ready, log forwarding, stats, stop, crash restarts) can be tested on its own.
// Behaviour is chosen by the task's fd: -1 crash at once; -2 crash after `ready`; -3 never ready;
// or, for whole-CLI tests with real fds, by TSW_FAKE_WORKER=crash-after-ready in the environment.
import type { ControlMessage, QueueExit, QueueTask, WorkerMessage } from '../../src/worker/protocol';
import { createFakeHostFwdBackend } from '../../src/portfwd/hostfwd-table';

/** A hostfwd-add for this host port makes the fake task fail (to test re-opening after a restart). */
export const CRASH_ON_HOSTFWD_PORT = 6666;

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
  // Port forwards: the in-memory table (no sockets), answering like src/worker/task.ts.
  const fwd = createFakeHostFwdBackend();
  return new Promise<QueueExit>((resolve, reject) => {
    task.port.on('message', (m: ControlMessage) => {
      if (m.type === 'stats') post({ type: 'stats', requestId: m.requestId, counters });
      if (m.type === 'hostfwd-add') {
        if (m.rule.hostPort === CRASH_ON_HOSTFWD_PORT) {
          task.port.close();
          reject(new Error('fake crash on hostfwd-add'));
          return;
        }
        void (m.id === undefined ? fwd.add(m.rule) : fwd.restore(m.rule, m.id))
          .then((result) => post({ type: 'hostfwd-added', requestId: m.requestId, result }));
      }
      if (m.type === 'hostfwd-remove') void fwd.remove(m.id).then((result) => post({ type: 'hostfwd-removed', requestId: m.requestId, result }));
      if (m.type === 'hostfwd-list') post({ type: 'hostfwd-listed', requestId: m.requestId, entries: [...fwd.list()] });
      if (m.type === 'stop') {
        task.port.close();
        resolve({ queueIndex: task.queueIndex, counters });
      }
    });
  });
}
