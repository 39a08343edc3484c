// Open the container's TAP: every queue fd plus the link configuration, in one visit of the target's
// user+net namespaces (native.openTap runs the setns calls in a single-threaded helper task).
//
// We always ask for the virtio-net header with CSUM|TSO4|TSO6 offloads: that is what lets the
// container's kernel hand us 64 KiB TCP superframes (linux-facts.md). A TAP created beforehand by
// someone else without IFF_VNET_HDR (RootlessKit's `ip tuntap add`) refuses those flags with EINVAL;
// when attaching we then retry without the header, which works but is slower.
import * as fs from 'node:fs';
import type * as Native from '../../native/index';
import { TapswitchError } from '../control/errors';
import type { Logger } from '../control/log';

type NativeApi = typeof Native;

/** The addon is loaded on first use, so that `--help` and argument errors work without it. */
export function loadNative(): NativeApi {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return (require('../link/native') as { native: NativeApi }).native;
  } catch (e) {
    throw new TapswitchError('ERR_NO_ADDON', `the native addon cannot be loaded (${(e as Error).message.split('\n')[0]})`,
      'build it with `npm ci` (or `npx node-gyp rebuild`)', { cause: e });
  }
}

export interface TapTarget {
  /** User namespace file to join first; undefined joins none. */
  userns?: string;
  /** Ignore a failure to join `userns` (we may be inside it already). */
  usernsOptional?: boolean;
  netns: string;
}

export interface TapRequest extends TapTarget {
  name: string;
  queues: number;
  /** Address, route and MTU to configure; undefined only brings the TAP up. */
  link?: Native.LinkConfig;
  /** Allow falling back to no vnet header (attaching to a TAP someone else created). */
  allowPlainFallback: boolean;
  /**
   * Bring lo and the TAP up (default true). false touches nothing but the TAP's queues: slirp4netns
   * without -c, whose client (RootlessKit) configures the link itself.
   */
  bringUp?: boolean;
}

export interface OpenedTap {
  fds: number[];
  vnetHdr: boolean;
  offloads: number;
  mac: Uint8Array;
  ifindex: number;
  /** Close every queue fd (the TAP vanishes with them unless someone made it persistent). */
  close(): void;
}

/** Pre-flight check from this process: /dev/net/tun's permissions apply inside the namespace too. */
export function checkTunAccess(): void {
  try {
    fs.accessSync('/dev/net/tun', fs.constants.R_OK | fs.constants.W_OK);
  } catch (e) {
    throw tunError((e as NodeJS.ErrnoException).code ?? 'EACCES', e);
  }
}

function tunError(code: string, cause: unknown): TapswitchError {
  if (code === 'ENOENT' || code === 'ENODEV' || code === 'ENXIO') {
    return new TapswitchError('ERR_NO_TUN', '/dev/net/tun is missing',
      'load the tun module (`sudo modprobe tun`) or, in a container, pass the device in (--device /dev/net/tun)', { cause });
  }
  return new TapswitchError('ERR_NO_TUN', 'cannot open /dev/net/tun (permission denied)',
    'allow it with `sudo chmod 0666 /dev/net/tun` (or run tapswitch as a user with access)', { cause });
}

/** Turn an addon error into a coded, actionable one. */
export function classifyOpenTapError(e: unknown, req: TapTarget & { name: string }): TapswitchError {
  const err = e as NodeJS.ErrnoException & { step?: string };
  const code = err.code ?? '';
  const step = err.step ?? '';
  const detail = `${step || 'openTap'}: ${err.message}`;
  if (step === 'open-tun') return tunError(code, e);
  if (step === 'open-userns' || step === 'open-netns' || step.startsWith('setns') || code === 'ESRCH') {
    if (code === 'ENOENT' || code === 'ESRCH') {
      return new TapswitchError('ERR_NO_TARGET', `namespace not found (${detail})`,
        `check that the process or path exists (${req.netns})`, { cause: e });
    }
    if (code === 'EPERM' || code === 'EACCES') {
      return new TapswitchError('ERR_NO_PERMISSION', `not allowed to enter the namespace (${detail})`,
        'run tapswitch as the user that owns the namespace, and pass its user namespace (--userns)', { cause: e });
    }
  }
  if (step === 'tunsetiff' && (code === 'EPERM' || code === 'EBUSY')) {
    return new TapswitchError('ERR_NO_PERMISSION', `cannot create or attach TAP ${req.name} (${detail})`,
      code === 'EBUSY' ? 'another program holds this TAP; stop it or pick another --tap name'
        : 'enter the user namespace that owns the network namespace (--userns PATH)', { cause: e });
  }
  if (step === 'tunsetiff' && code === 'EINVAL') {
    return new TapswitchError('ERR_SETUP', `cannot attach to TAP ${req.name} (${detail})`,
      'it exists with other flags: match its multi-queue setting with --queues (1 for a single-queue TAP)', { cause: e });
  }
  return new TapswitchError('ERR_SETUP', `cannot set up TAP ${req.name} (${detail})`,
    'run with --log-level debug for details', { cause: e });
}

export function openContainerTap(req: TapRequest, log: Logger, api: NativeApi = loadNative()): OpenedTap {
  const base = {
    netns: req.netns,
    name: req.name,
    queues: req.queues,
    loopbackUp: req.bringUp ?? true,
    up: req.bringUp ?? true,
    ...(req.userns !== undefined ? { userns: req.userns, usernsOptional: req.usernsOptional ?? false } : {}),
    ...(req.link ? { link: req.link } : {}),
  };
  const wanted = api.TUN_F.CSUM | api.TUN_F.TSO4 | api.TUN_F.TSO6;
  let result: Native.OpenTapResult;
  try {
    result = api.openTap({ ...base, vnetHdr: true, offloads: wanted });
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { step?: string };
    if (!(req.allowPlainFallback && err.code === 'EINVAL')) throw classifyOpenTapError(e, req);
    try {
      result = api.openTap({ ...base, vnetHdr: false, offloads: 0 });
    } catch {
      // Not the header then (e.g. a multi-queue mismatch): report the first failure.
      throw classifyOpenTapError(e, req);
    }
    log.warn(`TAP ${req.name} refuses the virtio-net header (${err.step ?? 'openTap'}: EINVAL); `
      + 'attached without it: no offloads, lower throughput');
  }
  if (result.vnetHdr && (result.offloads & wanted) !== wanted) {
    log.info(`TAP offloads: asked 0x${wanted.toString(16)}, got 0x${result.offloads.toString(16)}`);
  }
  log.debug(`TAP ${req.name}: ifindex ${result.ifindex}, ${result.fds.length} queue(s), vnet header ${result.vnetHdr}`);
  let closed = false;
  return {
    fds: result.fds,
    vnetHdr: result.vnetHdr,
    offloads: result.offloads,
    mac: result.mac,
    ifindex: result.ifindex,
    close: () => {
      if (closed) return;
      closed = true;
      for (const fd of result.fds) api.close(fd);
    },
  };
}
