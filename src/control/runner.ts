// The two lifecycles behind the CLI.
//
// run:    check the host can do it -> spawn CMD gated in new namespaces -> write its id maps -> open
//         and configure the TAP in there -> start one data-plane worker per queue and wait for
//         `ready` -> open the gate (resolv.conf mounted, CMD exec'd) -> wait for CMD, passing on
//         SIGINT/SIGTERM/SIGHUP -> kill anything CMD left in its namespace, stop the workers, close
//         the TAP, remove the temp file -> CMD's status (128+N if a signal killed it).
// attach: open the TAP in an existing namespace (by PID or path) and serve it until SIGINT/SIGTERM/SIGHUP.
//
// Every failure before CMD starts kills the gated shell, so CMD never runs without its network.
import * as fs from 'node:fs';
import * as os from 'node:os';
import type { DataPlaneConfig } from '../worker/protocol';
import { applyIdMap, currentIdMapInputs, planIdMap } from '../netns/idmap';
import { containerResolvConf, readHostResolvConf, resolvMountTarget, upstreamsFrom, writePrivateResolvConf, type PrivateFile } from '../netns/resolv';
import { checkUserNamespaces, killNamespaceLeftovers, spawnGated, type GatedContainer } from '../netns/spawn';
import { checkTunAccess, loadNative, openContainerTap, type OpenedTap } from '../netns/tap';
import { buildDataPlaneConfig, planNetwork, u32ToIp, type Cidr } from './config';
import { DataPlanePool, defaultWorkerFile, type Counters } from './dataplane-pool';
import { ExitStatus, TapswitchError } from './errors';
import { describeRule } from './publish';
import type { HostFwdBackend, HostFwdRule } from '../portfwd/hostfwd-table';
import type { Logger, LogLevel } from './log';

export interface CommonOptions {
  cidr: Cidr;
  mtu: number;
  hostLoopback: boolean;
  /** Serve IPv6 as slirp4netns -6 does (fd00::/64, SLAAC). */
  ipv6?: boolean;
  /** Explicit upstream resolver ("ip" or "ip:port"); undefined: the host's /etc/resolv.conf. */
  dnsForward?: string;
  queues: number;
  logLevel: LogLevel;
  stats: boolean;
  /** Data-plane worker entry (tests substitute a stand-in); default dist/src/worker/task.js. */
  workerFile?: string;
}

export interface RunOptions extends CommonOptions {
  command: string[];
  mapUserOnly: boolean;
  /** Port forwards opened before CMD starts (`--publish`). */
  publish?: HostFwdRule[];
}

export interface AttachOptions extends CommonOptions {
  pid?: number;
  netnsPath?: string;
  usernsPath?: string;
  tapName: string;
  /** Configure address, route and MTU (true) or only bring the TAP up. */
  configure: boolean;
}

const FORWARDED_SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

export function signalExitCode(signal: NodeJS.Signals): number {
  return ExitStatus.SIGNAL_BASE + (os.constants.signals[signal] ?? 0);
}

export function dnsUpstreams(o: Pick<CommonOptions, 'dnsForward'>, log: Logger): string[] {
  if (o.dnsForward !== undefined) return [o.dnsForward];
  const { upstreams, skipped } = upstreamsFrom(readHostResolvConf());
  if (skipped.length > 0) log.debug(`DNS: ignoring non-IPv4 host resolvers ${skipped.join(', ')}`);
  if (upstreams.length === 0) {
    log.warn('DNS: no IPv4 nameserver in the host\'s /etc/resolv.conf; the forwarder has no upstream (use --dns-forward ADDR)');
  } else {
    log.debug(`DNS: upstreams ${upstreams.join(', ')}`);
  }
  return upstreams;
}

function dataPlaneConfig(o: CommonOptions, log: Logger): DataPlaneConfig {
  const config = buildDataPlaneConfig({
    cidr: o.cidr, mtu: o.mtu, hostLoopback: o.hostLoopback, dnsUpstreams: dnsUpstreams(o, log), logLevel: o.logLevel,
    ipv6: o.ipv6 === true ? {} : null,
  });
  if (config.ipv6) {
    log.info(`IPv6: ${config.ipv6.prefix}/${config.ipv6.prefixLength} by router advertisement from ${config.ipv6.linkLocal}; gateway ${config.ipv6.gateway}` +
      (config.ipv6.dns !== null ? `, DNS ${config.ipv6.dns}` : ''));
    if (o.mtu < 1280) log.warn(`IPv6 needs an MTU of at least 1280; with --mtu ${o.mtu} the container's kernel will not use it`);
  }
  if (o.hostLoopback) {
    log.info(`the host's 127.0.0.1 is reachable from the container as ${u32ToIp(config.gateway)} (--disable-host-loopback to prevent)`);
  }
  return config;
}

export function formatStats(total: Counters, perQueue: Counters[]): string {
  const keys = Object.keys(total).sort();
  if (keys.length === 0) return 'tapswitch: stats: no counters reported\n';
  const cols = perQueue.length > 1 ? [...perQueue.map((_, i) => `queue${i}`), 'total'] : ['total'];
  const rows = keys.map((k) => [k, ...(perQueue.length > 1 ? perQueue.map((q) => String(q[k] ?? 0)) : []), String(total[k] ?? 0)]);
  const header = ['counter', ...cols];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
  const line = (r: string[]) => '  ' + r.map((c, i) => (i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join('  ');
  return ['tapswitch: stats:', line(header), ...rows.map(line), ''].join('\n');
}

export function precheck(o: Pick<CommonOptions, 'workerFile'>): void {
  loadNative();
  const file = o.workerFile ?? defaultWorkerFile();
  if (!fs.existsSync(file)) {
    throw new TapswitchError('ERR_NO_WORKER', `data-plane worker not found at ${file}`,
      'build tapswitch with `npm ci` (or `npm run build`)');
  }
}

/** Signal handling for the lifetime of one run/attach; returns a function that removes the handlers. */
export function onSignals(handler: (s: NodeJS.Signals) => void): () => void {
  for (const s of FORWARDED_SIGNALS) process.on(s, handler);
  return () => {
    for (const s of FORWARDED_SIGNALS) process.off(s, handler);
  };
}

/** Open every `--publish` forward; the first that fails is a clear error (CMD has not started). */
async function publishAll(backend: HostFwdBackend, rules: readonly HostFwdRule[], log: Logger): Promise<void> {
  for (const rule of rules) {
    const r = await backend.add(rule);
    if (!r.ok) {
      const taken = /EADDRINUSE|collides/.test(r.reason);
      const notLocal = /EADDRNOTAVAIL/.test(r.reason);
      throw new TapswitchError('ERR_SETUP',
        taken ? `cannot publish ${describeRule(rule)}: host port ${rule.hostPort}/${rule.proto} is already in use`
          : notLocal ? `cannot publish ${describeRule(rule)}: ${rule.hostAddr} is not an address of this host`
            : `cannot publish ${describeRule(rule)}: ${r.reason}`,
        taken ? 'pick another host port, or stop what listens on it' : 'check the --publish value');
    }
    log.debug(`published ${describeRule(r.entry)}`);
  }
}

export async function run(o: RunOptions, log: Logger): Promise<number> {
  if (o.command.length === 0) {
    throw new TapswitchError('ERR_USAGE', 'missing command', 'use `tapswitch run [OPTIONS] -- CMD [ARGS...]`');
  }
  const euid = process.geteuid?.() ?? 0;
  checkUserNamespaces(euid);
  checkTunAccess();
  const idPlan = planIdMap(currentIdMapInputs(o.mapUserOnly));
  log.debug(`id map (${idPlan.kind}): uid ${JSON.stringify(idPlan.uid)} gid ${JSON.stringify(idPlan.gid)}`);
  precheck(o);
  const config = dataPlaneConfig(o, log);
  const plan = planNetwork(o.cidr);

  let resolvFile: PrivateFile | undefined;
  const target = resolvMountTarget();
  if (target.kind === 'ok') {
    resolvFile = writePrivateResolvConf(containerResolvConf(u32ToIp(plan.dns), readHostResolvConf()));
  } else {
    log.warn(`leaving the container's /etc/resolv.conf as it is: ${target.reason}`);
  }

  let container: GatedContainer | undefined;
  let tap: OpenedTap | undefined;
  let pool: DataPlanePool | undefined;
  let abortSignal: NodeJS.Signals | undefined;
  let fatal: TapswitchError | undefined;
  const removeHandlers = onSignals((s) => {
    if (container?.started()) {
      // CMD shares our process group: a Ctrl-C typed at the terminal has already reached it, and
      // passing it on again would deliver it twice (e.g. two KeyboardInterrupts).
      if (s === 'SIGINT' && process.stdin.isTTY) return;
      log.debug(`passing ${s} to CMD (pid ${container.pid})`);
      container.kill(s);
    } else {
      // Before CMD runs there is nothing to pass the signal to: abandon set-up.
      abortSignal = s;
      container?.kill('SIGKILL');
    }
  });

  const cleanup = async (): Promise<{ total: Counters; perQueue: Counters[] } | undefined> => {
    if (container) {
      const n = killNamespaceLeftovers(container.netns);
      if (n > 0) log.debug(`killed ${n} process(es) left in the container's namespace`);
    }
    const counters = pool ? await pool.stop() : undefined;
    tap?.close();
    resolvFile?.remove();
    removeHandlers();
    return counters;
  };

  let exit;
  try {
    container = await spawnGated({ command: o.command, ...(resolvFile ? { resolvConf: resolvFile.path } : {}) });
    log.debug(`namespaces created, pid ${container.pid}`);
    if (abortSignal) throw new TapswitchError('ERR_SETUP', `interrupted by ${abortSignal}`, 'nothing to do');
    applyIdMap(container.pid, idPlan);
    tap = openContainerTap({
      userns: container.usernsPath,
      netns: container.netnsPath,
      name: 'tap0',
      queues: o.queues,
      link: { mtu: o.mtu, address: plan.guest, prefixLength: plan.prefixLength, gateway: plan.gateway },
      allowPlainFallback: false,
    }, log);
    const c = container;
    pool = new DataPlanePool({
      fds: tap.fds, vnetHdr: tap.vnetHdr, config, log, ...(o.workerFile ? { workerFile: o.workerFile } : {}),
      onFatal: (e) => {
        fatal = e;
        // CMD has no network any more: stop it (and insist if it ignores SIGTERM).
        log.error('the data plane failed beyond its restart budget; sending SIGTERM to CMD');
        c.kill('SIGTERM');
        setTimeout(() => c.kill('SIGKILL'), 10_000).unref();
      },
    });
    await pool.start();
    await publishAll(pool.hostFwd(), o.publish ?? [], log);
    await container.release();
    log.debug('CMD started');
    exit = await container.exited;
  } catch (e) {
    container?.kill('SIGKILL');
    await container?.exited;
    await cleanup();
    if (abortSignal) return signalExitCode(abortSignal);
    throw e;
  }

  const counters = await cleanup();
  if (o.stats && counters) process.stderr.write(formatStats(counters.total, counters.perQueue));
  if (fatal) throw fatal;
  if (exit.signal) return signalExitCode(exit.signal);
  return exit.code ?? ExitStatus.INTERNAL;
}

export async function attach(o: AttachOptions, log: Logger): Promise<number> {
  let userns = o.usernsPath;
  let netns = o.netnsPath;
  let usernsOptional = false;
  if (o.pid !== undefined) {
    if (!fs.existsSync(`/proc/${o.pid}`)) {
      throw new TapswitchError('ERR_NO_TARGET', `no process with PID ${o.pid}`, 'pass the PID of a process in the namespace to serve');
    }
    netns = `/proc/${o.pid}/ns/net`;
    // The target may share our user namespace; joining it again fails, which is fine.
    userns ??= `/proc/${o.pid}/ns/user`;
    usernsOptional = true;
  }
  if (netns === undefined) throw new TapswitchError('ERR_USAGE', 'missing target', 'pass a PID or --netns PATH');
  for (const f of [netns, userns]) {
    if (f !== undefined && !fs.existsSync(f)) {
      throw new TapswitchError('ERR_NO_TARGET', `namespace file ${f} does not exist`, 'check the path');
    }
  }
  checkTunAccess();
  precheck(o);
  const config = dataPlaneConfig(o, log);
  const plan = planNetwork(o.cidr);

  const tap = openContainerTap({
    ...(userns !== undefined ? { userns, usernsOptional } : {}),
    netns,
    name: o.tapName,
    queues: o.queues,
    ...(o.configure
      ? { link: { mtu: o.mtu, address: plan.guest, prefixLength: plan.prefixLength, gateway: plan.gateway } }
      : {}),
    allowPlainFallback: true,
  }, log);

  let wake: (() => void) | undefined;
  const done = new Promise<void>((resolve) => { wake = resolve; });
  let fatal: TapswitchError | undefined;
  const removeHandlers = onSignals((s) => {
    log.debug(`${s}: shutting down`);
    wake?.();
  });
  let pool: DataPlanePool | undefined;
  try {
    pool = new DataPlanePool({
      fds: tap.fds, vnetHdr: tap.vnetHdr, config, log, ...(o.workerFile ? { workerFile: o.workerFile } : {}),
      onFatal: (e) => {
        fatal = e;
        wake?.();
      },
    });
    await pool.start();
    log.info(`serving ${o.tapName} in ${netns}`);
    await done;
  } finally {
    const counters = pool ? await pool.stop() : undefined;
    tap.close();
    removeHandlers();
    if (o.stats && counters) process.stderr.write(formatStats(counters.total, counters.perQueue));
  }
  if (fatal) throw fatal;
  return ExitStatus.OK;
}
