// The lifecycle of `tapswitch-slirp4netns`: slirp4netns's contract with RootlessKit, Podman and the
// rest (shared/docs/slirp4netns-compat.md), served by tapswitch's data plane.
//
// Theory of operation
// -------------------
//   1. watch --exit-fd first: the client may go away while we set up; any event on it removes the
//      API socket (when listening) and exits 0, at any point from here on;
//   2. check --ready-fd is open (a bad fd is an error now, not at ready time);
//   3. find the target: `--netns-type=pid` (default) enters /proc/PID/ns/user (optional: we may be
//      inside it already) then /proc/PID/ns/net; `path` enters --userns-path when given, then the
//      netns file;
//   4. open TAPNAME there, asking for the virtio-net header with offloads and falling back to plain
//      frames when the TAP exists without it (RootlessKit's `ip tuntap add`). With -c: lo up, the
//      TAP up with MTU, MAC, address network+100 and the default route via network+2. Without -c
//      nothing is touched: the client configures the link. With -6 no IPv6 address or route is
//      set either: the guest's kernel configures itself from our router advertisements (SLAAC);
//   5. start the data plane (one worker per queue), then the API socket, whose forwards live in
//      queue 0's worker (DataPlanePool.hostFwd());
//   6. print slirp4netns's start-up lines on stdout, then write '1' to --ready-fd and close it;
//   7. serve until the exit fd fires or SIGTERM/SIGINT/SIGHUP. Like slirp4netns we do NOT exit when
//      the namespace's processes die: the clients decide when we go.
//
// Errors before ready print one line on stderr, close the ready fd without writing (the client
// sees "not ready") and exit 1, slirp4netns's status for every failure.
import * as fs from 'node:fs';
import { checkTunAccess, openContainerTap, type OpenedTap } from '../netns/tap';
import { startApiServer, type ApiServer } from './api-socket';
import { buildDataPlaneConfig, u32ToIp } from './config';
import { DataPlanePool } from './dataplane-pool';
import { TapswitchError } from './errors';
import type { Logger } from './log';
import { ReadyFd, exitOnExitFd, type ExitFdWatch } from './ready-exit-fd';
import { dnsUpstreams, formatStats, onSignals, precheck } from './runner';
import type { NetworkPlan } from './config';

/**
 * What serving needs from slirp4netns's command line (cli/slirp4netns-args.ts parses it into an
 * extension of this type).
 */
export interface Slirp4netnsOptions {
  /** `-c`: configure lo, the TAP, its address and the default route inside the namespace. */
  configure: boolean;
  /** `-e FD`, or null. */
  exitFd: number | null;
  /** `-r FD`, or null. */
  readyFd: number | null;
  mtu: number;
  /** `--cidr` (default 10.0.2.0/24) as the address plan: gateway, DNS, DHCP start, guest. */
  network: NetworkPlan;
  disableHostLoopback: boolean;
  netnsType: 'pid' | 'path';
  /** With netnsType "pid": the target process. */
  targetPid: number | null;
  /** With netnsType "path": the netns file. */
  netnsPath: string | null;
  usernsPath: string | null;
  apiSocket: string | null;
  tapName: string;
  outboundAddr: { address: string } | null;
  /** `-6`: IPv6 on fd00::/64 (router advertisements, SLAAC, fd00::2, fd00::3). */
  enableIpv6: boolean;
  /** `--outbound-addr6`, resolved to an address (meaningful only with enableIpv6). */
  outboundAddr6: { address: string } | null;
  disableDns: boolean;
  /** `--macaddress`, normalised to lower-case `xx:xx:xx:xx:xx:xx`. */
  macAddress: string | null;
}

export interface Slirp4netnsModeHooks {
  /** Print to stdout (start-up lines). */
  stdout: (s: string) => void;
  /** The start-up lines to print once set up. */
  startupInfo: string;
  /** Data-plane worker entry (tests). */
  workerFile?: string;
  /** TAP queues (default 1: RootlessKit's tap0 is single-queue). */
  queues?: number;
  /** Print counters at exit. */
  stats?: boolean;
  /** How the process ends when the exit fd fires (default process.exit). */
  exit?: (code: number) => void;
}

function target(o: Slirp4netnsOptions): { netns: string; userns?: string; usernsOptional: boolean } {
  if (o.netnsType === 'pid') {
    const pid = o.targetPid as number;
    if (!fs.existsSync(`/proc/${pid}`)) {
      throw new TapswitchError('ERR_NO_TARGET', `no process with PID ${pid}`, 'pass the PID of a process in the namespace to serve');
    }
    return { netns: `/proc/${pid}/ns/net`, userns: o.usernsPath ?? `/proc/${pid}/ns/user`, usernsOptional: true };
  }
  return {
    netns: o.netnsPath as string,
    ...(o.usernsPath !== null ? { userns: o.usernsPath } : {}),
    usernsOptional: true,
  };
}

/** Serve like slirp4netns until told to stop; returns the exit status. */
export async function serveSlirp4netns(o: Slirp4netnsOptions, log: Logger, hooks: Slirp4netnsModeHooks): Promise<number> {
  let api: ApiServer | undefined;
  let exitWatch: ExitFdWatch | undefined;
  const exit = hooks.exit ?? ((code: number) => process.exit(code));
  if (o.exitFd !== null) {
    exitWatch = exitOnExitFd(o.exitFd, () => api?.unlinkSync(), exit, (msg) => log.debug(msg));
  }
  let ready: ReadyFd | undefined;
  let tap: OpenedTap | undefined;
  let pool: DataPlanePool | undefined;
  let fatal: TapswitchError | undefined;
  let wake: (() => void) | undefined;
  const done = new Promise<void>((resolve) => { wake = resolve; });
  const removeHandlers = onSignals((s) => {
    log.debug(`${s}: shutting down`);
    wake?.();
  });

  try {
    if (o.readyFd !== null) ready = new ReadyFd(o.readyFd);
    const where = target(o);
    for (const f of [where.netns, where.userns]) {
      if (f !== undefined && !fs.existsSync(f)) {
        throw new TapswitchError('ERR_NO_TARGET', `namespace file ${f} does not exist`, 'check the path');
      }
    }
    checkTunAccess();
    precheck(hooks.workerFile === undefined ? {} : { workerFile: hooks.workerFile });
    const plan = o.network;
    const config = buildDataPlaneConfig({
      cidr: { network: plan.network, prefixLength: plan.prefixLength },
      mtu: o.mtu,
      hostLoopback: !o.disableHostLoopback,
      dnsUpstreams: o.disableDns ? [] : dnsUpstreams({}, log),
      dnsEnabled: !o.disableDns,
      ...(o.outboundAddr !== null ? { outboundAddr: o.outboundAddr.address } : {}),
      ipv6: o.enableIpv6 ? (o.outboundAddr6 !== null ? { outboundAddr: o.outboundAddr6.address } : {}) : null,
      logLevel: log.level,
    });
    tap = openContainerTap({
      netns: where.netns,
      ...(where.userns !== undefined ? { userns: where.userns, usernsOptional: where.usernsOptional } : {}),
      name: o.tapName,
      queues: hooks.queues ?? 1,
      ...(o.configure
        ? {
          link: {
            mtu: o.mtu, address: plan.guest, prefixLength: plan.prefixLength, gateway: plan.gateway,
            ...(o.macAddress !== null ? { mac: Uint8Array.from(o.macAddress.split(':').map((h) => parseInt(h, 16))) } : {}),
          },
        }
        : {}),
      bringUp: o.configure,
      allowPlainFallback: true,
    }, log);
    pool = new DataPlanePool({
      fds: tap.fds, vnetHdr: tap.vnetHdr, config, log, ...(hooks.workerFile ? { workerFile: hooks.workerFile } : {}),
      onFatal: (e) => {
        fatal = e;
        wake?.();
      },
    });
    await pool.start();
    if (o.apiSocket !== null) {
      api = await startApiServer({
        path: o.apiSocket,
        backend: pool.hostFwd(),
        network: plan,
        log: (msg) => log.warn(msg),
        debug: (msg) => log.debug(msg),
      });
    }
    hooks.stdout(hooks.startupInfo);
    log.info(`serving ${o.tapName} in ${where.netns} (guest ${u32ToIp(plan.guest)}, vnet header ${tap.vnetHdr})`);
    ready?.ready();
  } catch (e) {
    ready?.abandon();
    exitWatch?.stop();
    await api?.close();
    if (pool) await pool.stop();
    tap?.close();
    removeHandlers();
    throw e;
  }

  await done;
  exitWatch?.stop();
  await api?.close();
  const counters = await pool.stop();
  tap.close();
  removeHandlers();
  if (hooks.stats) process.stderr.write(formatStats(counters.total, counters.perQueue));
  if (fatal) throw fatal;
  return 0;
}
