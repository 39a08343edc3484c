// The piscina task: one per TAP queue, long-lived. It builds the data plane on this worker's own
// event loop and runs until the control plane says stop. If the worker dies, piscina rejects the
// task and the control plane starts a fresh one on the same fd: flows are gone, and the guest's
// next segment on an old flow is answered with RST by the new translator.
import type { ControlMessage, QueueExit, QueueTask, WorkerMessage } from './protocol';
import { DataPlane } from './dataplane';
import { PortLogger } from './port-logger';
import { TapDevice } from '../link/tap';

export default async function runQueue(task: QueueTask): Promise<QueueExit> {
  const log = new PortLogger(task.port, task.config.logLevel, `queue ${task.queueIndex}: `);
  const device = new TapDevice(task.fd, { vnetHdr: task.vnetHdr, name: `queue${task.queueIndex}` });
  const plane = new DataPlane(device, task.config, log, task.vnetHdr, {
    queueCount: task.queueCount,
    testHooks: process.env.TAPSWITCH_TEST_HOOKS === '1',
  });
  plane.start();
  const ready: WorkerMessage = { type: 'ready', queueIndex: task.queueIndex };
  task.port.postMessage(ready);

  const post = (reply: WorkerMessage): void => {
    try {
      task.port.postMessage(reply);
    } catch { /* stopped meanwhile: nobody is waiting */ }
  };

  return new Promise<QueueExit>((resolve) => {
    task.port.on('message', (m: ControlMessage) => {
      if (m.type === 'stats') {
        const reply: WorkerMessage = { type: 'stats', requestId: m.requestId, counters: plane.snapshot() };
        task.port.postMessage(reply);
      } else if (m.type === 'hostfwd-add') {
        const table = plane.hostFwd();
        void (m.id === undefined ? table.add(m.rule) : table.restore(m.rule, m.id)).then((result) => {
          post({ type: 'hostfwd-added', requestId: m.requestId, result });
        });
      } else if (m.type === 'hostfwd-remove') {
        void plane.hostFwd().remove(m.id).then((result) => post({ type: 'hostfwd-removed', requestId: m.requestId, result }));
      } else if (m.type === 'hostfwd-list') {
        post({ type: 'hostfwd-listed', requestId: m.requestId, entries: [...plane.hostFwd().list()] });
      } else if (m.type === 'stop') {
        plane.close();
        const counters = plane.snapshot();
        task.port.close();
        resolve({ queueIndex: task.queueIndex, counters });
      }
    });
  });
}
