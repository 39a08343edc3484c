// Supervision of the data-plane workers: one piscina thread per TAP queue, each running one
// long-lived task (src/worker/task.ts) that serves its queue until told to stop.
//
// The main thread never touches frames. It hands each task its queue fd, the config and one end of a
// MessageChannel; over that port the worker says `ready`, sends log lines and answers stats requests.
// A task that rejects (the worker threw or died) is logged and started again on a fresh worker: the
// fd belongs to the process, not the thread, so the queue survives; its flows are lost and the
// container sees them reset. Restarts are bounded (a crash loop is a bug, not a state to live in):
// past the budget the pool gives up and reports a fatal error.
//
// Port forwards: every host listener lives in queue 0's worker (a socket cannot change threads; the
// kernel steers a forwarded flow's return frames to the queue we last wrote it on, i.e. queue 0).
// hostFwd() is the API socket's backend: it turns add/remove/list into requests to that worker and
// remembers the open forwards, so that a restarted queue-0 worker re-opens them under their ids.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { Piscina } from 'piscina';
import type { ControlMessage, DataPlaneConfig, QueueExit, QueueTask, WorkerMessage } from '../worker/protocol';
import type { HostFwdAddResult, HostFwdBackend, HostFwdEntry, HostFwdRemoveResult, HostFwdRule } from '../portfwd/hostfwd-table';
import { TapswitchError } from './errors';
import { isLogLevel, type Logger } from './log';

export type Counters = Record<string, number>;

export interface DataPlanePoolOptions {
  fds: number[];
  vnetHdr: boolean;
  config: DataPlaneConfig;
  log: Logger;
  /** Compiled worker entry; default dist/src/worker/task.js next to this file's folder. */
  workerFile?: string;
  /** How long start() waits for every queue's `ready`. */
  readyTimeoutMs?: number;
  /** At most this many restarts (over all queues) within restartWindowMs. */
  maxRestarts?: number;
  restartWindowMs?: number;
  /** How long stop() waits for each task to finish before destroying the pool anyway. */
  stopTimeoutMs?: number;
  /** Called once when the restart budget is exhausted. */
  onFatal?: (err: TapswitchError) => void;
}

interface Queue {
  index: number;
  port: MessagePort | null;
  task: Promise<void> | null;
  ready: boolean;
  /** Counters from the task's exit, or the last stats answer. */
  counters: Counters;
  restarts: number;
}

function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0] ?? '';
}

export function defaultWorkerFile(): string {
  return path.join(__dirname, '..', 'worker', 'task.js');
}

export function sumCounters(list: Counters[]): Counters {
  const out: Counters = {};
  for (const c of list) {
    for (const [k, v] of Object.entries(c)) {
      if (typeof v === 'number') out[k] = (out[k] ?? 0) + v;
    }
  }
  return out;
}

export class DataPlanePool {
  private readonly opts: Required<Omit<DataPlanePoolOptions, 'onFatal'>> & Pick<DataPlanePoolOptions, 'onFatal'>;
  private readonly pool: Piscina;
  private readonly queues: Queue[];
  private readonly restartTimes: number[] = [];
  private readonly readyWaiters: Array<() => void> = [];
  private stopping = false;
  private fatal: TapswitchError | null = null;
  private nextRequestId = 1;
  private readonly pendingStats = new Map<number, { index: number; resolve: (c: Counters) => void }>();
  /** hostfwd-* requests awaiting their answer, by requestId. */
  private readonly pendingFwd = new Map<number, (m: WorkerMessage | null) => void>();
  /** Forwards open in queue 0's worker (to re-open after a restart). */
  private readonly forwards = new Map<number, HostFwdRule>();

  constructor(options: DataPlanePoolOptions) {
    this.opts = {
      workerFile: defaultWorkerFile(),
      readyTimeoutMs: 10_000,
      maxRestarts: 5,
      restartWindowMs: 60_000,
      stopTimeoutMs: 5_000,
      ...options,
    };
    if (!fs.existsSync(this.opts.workerFile)) {
      throw new TapswitchError('ERR_NO_WORKER', `data-plane worker not found at ${this.opts.workerFile}`,
        'build tapswitch with `npm ci` (or `npm run build`)');
    }
    const n = this.opts.fds.length;
    this.pool = new Piscina({
      filename: this.opts.workerFile,
      minThreads: n,
      maxThreads: n,
      idleTimeout: Infinity,
      concurrentTasksPerWorker: 1,
    });
    // Errors not tied to a task (e.g. a worker failing to load) still deserve a line.
    // Errors not tied to a task (a worker failing to load its module) leave that task queued inside
    // piscina forever; before every queue is ready that means the data plane cannot start at all.
    this.pool.on('error', (e: Error) => {
      this.opts.log.error(`data-plane pool: ${firstLine(e)}`);
      if (!this.stopping && !this.fatal && !this.queues.every((q) => q.ready)) {
        this.fatal = new TapswitchError('ERR_DATAPLANE', `data-plane worker failed to start: ${firstLine(e)}`,
          'rebuild with `npm ci`; if it persists, run with --log-level debug and report the output');
        this.wakeReadyWaiters();
      }
    });
    this.queues = this.opts.fds.map((_, index) => ({ index, port: null, task: null, ready: false, counters: {}, restarts: 0 }));
  }

  /** Start every queue's task; resolves once all said `ready`. */
  async start(): Promise<void> {
    for (const q of this.queues) this.run(q);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        const missing = this.queues.filter((q) => !q.ready).map((q) => q.index);
        reject(new TapswitchError('ERR_DATAPLANE', `data plane did not become ready (queues ${missing.join(', ')})`,
          'run with --log-level debug and report the output'));
      }, this.opts.readyTimeoutMs);
      const check = () => {
        if (this.fatal) {
          clearTimeout(timer);
          reject(this.fatal);
        } else if (this.queues.every((q) => q.ready)) {
          clearTimeout(timer);
          resolve();
        } else {
          this.readyWaiters.push(check);
        }
      };
      check();
    });
  }

  private wakeReadyWaiters(): void {
    for (const w of this.readyWaiters.splice(0)) w();
  }

  private run(q: Queue): void {
    const { port1, port2 } = new MessageChannel();
    q.port = port1;
    q.ready = false;
    port1.on('message', (m: WorkerMessage) => this.onMessage(q, m));
    const task: QueueTask = {
      queueIndex: q.index,
      queueCount: this.queues.length,
      fd: this.opts.fds[q.index] as number,
      vnetHdr: this.opts.vnetHdr,
      config: this.opts.config,
      port: port2,
    };
    const started = this.pool.run(task, { transferList: [port2] }) as Promise<QueueExit>;
    q.task = started.then(
      (exit) => {
        if (exit && typeof exit === 'object' && exit.counters) q.counters = exit.counters;
        port1.close();
        if (!this.stopping) this.onCrash(q, new Error('task returned without being told to stop'));
      },
      (e: unknown) => {
        port1.close();
        if (!this.stopping) this.onCrash(q, e);
      },
    );
  }

  private onMessage(q: Queue, m: WorkerMessage): void {
    switch (m?.type) {
      case 'ready':
        q.ready = true;
        this.opts.log.debug(`queue ${q.index}: ready`);
        if (q.index === 0 && q.restarts > 0 && this.forwards.size > 0) this.reopenForwards();
        this.wakeReadyWaiters();
        break;
      case 'hostfwd-added':
      case 'hostfwd-removed':
      case 'hostfwd-listed': {
        const pending = this.pendingFwd.get(m.requestId);
        if (pending) {
          this.pendingFwd.delete(m.requestId);
          pending(m);
        }
        break;
      }
      case 'log':
        this.opts.log.log(isLogLevel(m.level) ? m.level : 'info', `queue ${q.index}: ${m.msg}`);
        break;
      case 'stats': {
        const pending = this.pendingStats.get(m.requestId);
        if (pending) {
          this.pendingStats.delete(m.requestId);
          q.counters = m.counters;
          pending.resolve(m.counters);
        }
        break;
      }
      default:
        this.opts.log.debug(`queue ${q.index}: unknown message ${JSON.stringify(m)}`);
    }
  }

  private onCrash(q: Queue, e: unknown): void {
    const why = firstLine(e);
    // Requests to the forwards' worker that it will never answer now.
    if (q.index === 0) {
      for (const done of [...this.pendingFwd.values()]) done(null);
      this.pendingFwd.clear();
    }
    this.opts.log.error(`queue ${q.index}: data-plane worker failed: ${why}`);
    const now = Date.now();
    while (this.restartTimes.length > 0 && now - (this.restartTimes[0] as number) > this.opts.restartWindowMs) {
      this.restartTimes.shift();
    }
    if (this.restartTimes.length >= this.opts.maxRestarts) {
      if (!this.fatal) {
        this.fatal = new TapswitchError('ERR_DATAPLANE',
          `data plane failed ${this.restartTimes.length + 1} times within ${Math.round(this.opts.restartWindowMs / 1000)} s, giving up`,
          'run with --log-level debug and report the output');
        this.wakeReadyWaiters();
        this.opts.onFatal?.(this.fatal);
      }
      return;
    }
    this.restartTimes.push(now);
    q.restarts++;
    this.opts.log.warn(`queue ${q.index}: restarting its worker (its connections are reset)`);
    this.run(q);
  }

  /** Send a hostfwd-* request to queue 0's worker; null when it is not there or does not answer. */
  private fwdRequest(make: (requestId: number) => ControlMessage, timeoutMs = 10_000): Promise<WorkerMessage | null> {
    const q = this.queues[0];
    if (!q?.port || !q.ready || this.stopping) return Promise.resolve(null);
    const requestId = this.nextRequestId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pendingFwd.delete(requestId);
        resolve(null);
      }, timeoutMs);
      this.pendingFwd.set(requestId, (m) => {
        clearTimeout(timer);
        resolve(m);
      });
      try {
        q.port?.postMessage(make(requestId));
      } catch {
        this.pendingFwd.delete(requestId);
        clearTimeout(timer);
        resolve(null);
      }
    });
  }

  private reopenForwards(): void {
    const all = [...this.forwards];
    this.opts.log.warn(`re-opening ${all.length} port forward(s) in the restarted worker`);
    for (const [id, rule] of all) {
      void this.fwdRequest((requestId) => ({ type: 'hostfwd-add', requestId, rule, id })).then((m) => {
        if (m?.type === 'hostfwd-added' && m.result.ok) return;
        const why = m?.type === 'hostfwd-added' && !m.result.ok ? m.result.reason : 'no answer';
        this.opts.log.error(`port forward ${id} (${rule.proto} ${rule.hostAddr}:${rule.hostPort}) could not be re-opened: ${why}`);
        this.forwards.delete(id);
      });
    }
  }

  /** The port-forward backend for the API socket and `run --publish`: listeners in queue 0's worker. */
  hostFwd(): HostFwdBackend {
    const unavailable = 'the data plane is not running';
    return {
      add: async (rule: HostFwdRule): Promise<HostFwdAddResult> => {
        const m = await this.fwdRequest((requestId) => ({ type: 'hostfwd-add', requestId, rule }));
        if (m?.type !== 'hostfwd-added') return { ok: false, reason: unavailable };
        if (m.result.ok) this.forwards.set(m.result.entry.id, { ...rule, hostPort: m.result.entry.hostPort });
        return m.result;
      },
      remove: async (id: number): Promise<HostFwdRemoveResult> => {
        const m = await this.fwdRequest((requestId) => ({ type: 'hostfwd-remove', requestId, id }));
        if (m?.type !== 'hostfwd-removed') return 'failed';
        if (m.result === 'removed') this.forwards.delete(id);
        return m.result;
      },
      list: async (): Promise<readonly HostFwdEntry[]> => {
        const m = await this.fwdRequest((requestId) => ({ type: 'hostfwd-list', requestId }));
        if (m?.type === 'hostfwd-listed') return m.entries;
        // The worker is restarting: answer from what we know is (being re-)opened.
        return [...this.forwards].map(([id, rule]) => ({ id, ...rule }));
      },
    };
  }

  /** The error that made the pool give up, if any. */
  failure(): TapswitchError | null {
    return this.fatal;
  }

  /** Ask every live queue for its counters (queues that do not answer in time keep their last ones). */
  async stats(timeoutMs = 1000): Promise<{ total: Counters; perQueue: Counters[] }> {
    await Promise.all(this.queues.map((q) => new Promise<void>((resolve) => {
      if (!q.port || this.stopping) return resolve();
      const requestId = this.nextRequestId++;
      const timer = setTimeout(() => {
        this.pendingStats.delete(requestId);
        resolve();
      }, timeoutMs);
      this.pendingStats.set(requestId, { index: q.index, resolve: () => { clearTimeout(timer); resolve(); } });
      const msg: ControlMessage = { type: 'stats', requestId };
      q.port.postMessage(msg);
    })));
    return this.snapshot();
  }

  private snapshot(): { total: Counters; perQueue: Counters[] } {
    const perQueue = this.queues.map((q) => (q.restarts > 0 ? { ...q.counters, worker_restarts: q.restarts } : { ...q.counters }));
    return { total: sumCounters(perQueue), perQueue };
  }

  /** Tell every task to stop, wait for them (bounded), destroy the pool; returns the final counters. */
  async stop(): Promise<{ total: Counters; perQueue: Counters[] }> {
    if (!this.stopping) {
      this.stopping = true;
      for (const done of [...this.pendingFwd.values()]) done(null);
      this.pendingFwd.clear();
      const stop: ControlMessage = { type: 'stop' };
      await Promise.all(this.queues.map(async (q) => {
        // A task that never said `ready` may still sit in piscina's queue: nothing would answer.
        if (!q.task || !q.ready) return;
        try {
          q.port?.postMessage(stop);
        } catch {
          // port already closed: the task is gone
        }
        let timer: NodeJS.Timeout | undefined;
        const timedOut = await Promise.race([
          q.task.then(() => false),
          new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(true), this.opts.stopTimeoutMs); }),
        ]);
        clearTimeout(timer);
        if (timedOut) this.opts.log.warn(`queue ${q.index}: worker did not stop within ${this.opts.stopTimeoutMs} ms`);
      }));
      await this.pool.destroy().catch(() => {});
    }
    return this.snapshot();
  }
}
