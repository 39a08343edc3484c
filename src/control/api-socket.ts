// The slirp4netns-compatible API socket (`--api-socket PATH`): port forwards added and removed at run
// time by RootlessKit's `slirp4netns` port driver, Podman's slirp4netns port handler and scripts.
//
// Theory of operation
// -------------------
// An AF_UNIX stream socket; one request per connection. slirp4netns does one read() of at most 4096
// bytes, answers with one write() and closes. Clients rely on exactly that: they half-close after
// sending (RootlessKit, Podman), and Podman then does a single 2048-byte read, so the reply must
// leave in one write. tapswitch reads until the first of:
//
//   - the client half-closes (EOF)                        -> handle what was read;
//   - what was read is a complete JSON object             -> handle it at once (clients such as
//     `nc -U` that never half-close still get an answer, like slirp4netns's single read);
//   - 4096 bytes                                          -> `too large message`;
//   - requestTimeoutMs of silence                         -> handle what was read (an empty or
//     partial request then gets `cannot parse JSON`);
//
// then writes ONE compact JSON reply with `socket.end(reply)` (no newline) and closes. Requests are
// handled one at a time, in the order their reads completed, so ids follow that order and two adds
// of the same port cannot race.
//
// The wire format, verbs and every error text are slirp4netns 1.2.0's
// (shared/docs/slirp4netns-compat.md), with these documented differences:
//
//   - A bad request never takes the socket down (slirp4netns crashes when `proto` is missing).
//   - Types are checked: a port must be an integer JSON number 1..65535 (slirp4netns casts doubles
//     and accepts > 65535); addresses must be JSON strings (null or "" = default); `id` an integer.
//   - `host_port: 0` asks the OS for a free port; the reply then carries it:
//     `{"return":{"id":N,"host_port":P}}`. With any other host_port the reply is exactly
//     slirp4netns's `{"return":{"id":N}}`.
//   - `host_addr` may also be an IPv6 address (the listener is IPv6; the guest side stays IPv4).
//   - `guest_addr` must lie inside --cidr and be neither its network nor its broadcast address.
//   - `list_hostfwd` answers `{"entries":[...]}` WITHOUT a `return` wrapper, exactly like
//     slirp4netns 1.2.0 does (its man page shows a wrapper; no client calls list).
//   - The socket file is unlinked before listening only when it is a socket (slirp4netns unlinks
//     whatever is there).
//
// Who does what: this file parses, validates, keeps the id table (HostFwdTable) and talks JSON. The
// host listeners are behind `OpenHostFwdListener`. createSocketHostFwdBackend binds the real ones
// (net.Server for TCP, portfwd/udp-forward for UDP) and hands accepted connections and client
// datagrams to hooks the data path supplies (they become flows into the guest).
// createFakeHostFwdBackend is an in-memory stand-in with bind-conflict semantics for tests.
import * as fs from 'node:fs';
import * as net from 'node:net';
import type { NetworkPlan } from './config';
import { u32ToIp } from './config';
import { TapswitchError } from './errors';
import type { HostFwdBackend, HostFwdEntry, HostFwdRule } from '../portfwd/hostfwd-table';

// The id table and listeners moved to portfwd/hostfwd-table.ts (the data-plane worker runs them);
// re-exported here for the API's users.
export {
  HostFwdTable, createFakeHostFwdBackend, createSocketHostFwdBackend,
  type FakeHostFwdOptions, type HostFwdAddResult, type HostFwdBackend, type HostFwdEntry, type HostFwdListener,
  type HostFwdProto, type HostFwdRemoveResult, type HostFwdRule, type OpenHostFwdListener, type SocketHostFwdHooks,
} from '../portfwd/hostfwd-table';

export const API_MAX_REQUEST = 4096;
export const API_SOCKET_PATH_MAX = 108;


// --- requests -------------------------------------------------------------------------------------

/** The network facts request validation needs. */
export type ApiNetwork = Pick<NetworkPlan, 'network' | 'prefixLength' | 'guest'>;

export interface ApiContext {
  backend: HostFwdBackend;
  network: ApiNetwork;
  /** Accept `host_port: 0` as "OS-chosen" (default true); false answers it like slirp4netns. */
  allowEphemeralHostPort?: boolean;
  /** Told why an add/remove failed (clients only see the fixed texts). */
  log?: (msg: string) => void;
}

/** `{"error":{"desc":"bad request: <reason>"}}` */
export function apiError(reason: string): string {
  return JSON.stringify({ error: { desc: `bad request: ${reason}` } });
}

/** inet_pton(AF_INET)-strict dotted quad to u32: no leading zeros, each part 0..255. */
export function parseIpv4Strict(s: string): number | null {
  const parts = s.split('.');
  if (parts.length !== 4) return null;
  let n = 0;
  for (const p of parts) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return null;
    const b = Number(p);
    if (b > 255) return null;
    n = n * 256 + b;
  }
  return n >>> 0;
}

function own(obj: object, key: string): unknown {
  return Object.prototype.hasOwnProperty.call(obj, key) ? (obj as Record<string, unknown>)[key] : undefined;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isPort(v: unknown, allowZero: boolean): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= (allowZero ? 0 : 1) && v <= 65535;
}

/** Validate add_hostfwd arguments, in slirp4netns's order; a rule or the error reason. */
export function parseAddHostFwd(args: unknown, network: ApiNetwork, allowEphemeralHostPort = true): HostFwdRule | string {
  const a = isPlainObject(args) ? args : {};
  const proto = own(a, 'proto');
  if (proto !== 'tcp' && proto !== 'udp') return 'add_hostfwd: bad arguments.proto';

  let hostAddr = own(a, 'host_addr');
  if (hostAddr === undefined || hostAddr === null || hostAddr === '') hostAddr = '0.0.0.0';
  if (typeof hostAddr !== 'string') return 'add_hostfwd: bad arguments.host_addr';
  const host4 = parseIpv4Strict(hostAddr);
  if (host4 !== null) hostAddr = u32ToIp(host4);
  else if (!net.isIPv6(hostAddr) || hostAddr.includes('%')) return 'add_hostfwd: bad arguments.host_addr';

  const hostPort = own(a, 'host_port');
  if (!isPort(hostPort, allowEphemeralHostPort)) return 'add_hostfwd: bad arguments.host_port';

  let guestAddr = own(a, 'guest_addr');
  let guest: number | null;
  if (guestAddr === undefined || guestAddr === null || guestAddr === '') guest = network.guest >>> 0;
  else guest = typeof guestAddr === 'string' ? parseIpv4Strict(guestAddr) : null;
  const mask = network.prefixLength === 0 ? 0 : (~0 << (32 - network.prefixLength)) >>> 0;
  const broadcast = (network.network | ~mask) >>> 0;
  if (guest === null || ((guest & mask) >>> 0) !== (network.network >>> 0) || guest === (network.network >>> 0)
      || guest === broadcast) {
    return 'add_hostfwd: bad arguments.guest_addr';
  }
  guestAddr = u32ToIp(guest);

  const guestPort = own(a, 'guest_port');
  if (!isPort(guestPort, false)) return 'add_hostfwd: bad arguments.guest_port';

  return { proto, hostAddr: hostAddr as string, hostPort, guestAddr: guestAddr as string, guestPort };
}

function entryJson(e: HostFwdEntry): Record<string, unknown> {
  return { id: e.id, proto: e.proto, host_addr: e.hostAddr, host_port: e.hostPort, guest_addr: e.guestAddr, guest_port: e.guestPort };
}

/** Answer one request (the bytes as read, trailing whitespace allowed). Never throws. */
export async function handleApiRequest(request: string, ctx: ApiContext): Promise<string> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(request);
  } catch {
    return apiError('cannot parse JSON');
  }
  if (!isPlainObject(parsed)) return apiError('json_object() failed');
  const execute = own(parsed, 'execute');
  if (typeof execute !== 'string') return apiError('no execute found');
  const args = own(parsed, 'arguments');
  try {
    switch (execute) {
      case 'add_hostfwd': {
        const rule = parseAddHostFwd(args, ctx.network, ctx.allowEphemeralHostPort ?? true);
        if (typeof rule === 'string') return apiError(rule);
        const r = await ctx.backend.add(rule);
        if (!r.ok) {
          ctx.log?.(`add_hostfwd ${rule.proto} ${rule.hostAddr}:${rule.hostPort} failed: ${r.reason}`);
          return apiError('add_hostfwd: slirp_add_hostfwd failed');
        }
        return JSON.stringify({ return: rule.hostPort === 0 ? { id: r.entry.id, host_port: r.entry.hostPort } : { id: r.entry.id } });
      }
      case 'list_hostfwd':
        return JSON.stringify({ entries: (await ctx.backend.list()).map(entryJson) });
      case 'remove_hostfwd': {
        const id = isPlainObject(args) ? own(args, 'id') : undefined;
        if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 1) return apiError('remove_hostfwd: bad arguments.id');
        const r = await ctx.backend.remove(id);
        if (r === 'not-found') return apiError('remove_hostfwd: bad arguments.id');
        if (r === 'failed') {
          ctx.log?.(`remove_hostfwd ${id} failed`);
          return apiError('remove_hostfwd: slirp_remove_hostfwd failed');
        }
        return JSON.stringify({ return: {} });
      }
      default:
        return apiError('unknown execute');
    }
  } catch (e) {
    // A backend that throws instead of returning a result: still one reply, still alive.
    ctx.log?.(`${execute} failed: ${e instanceof Error ? e.message : String(e)}`);
    return apiError(execute === 'remove_hostfwd' ? 'remove_hostfwd: slirp_remove_hostfwd failed'
      : 'add_hostfwd: slirp_add_hostfwd failed');
  }
}

// --- the socket -----------------------------------------------------------------------------------

export interface ApiServerOptions extends ApiContext {
  path: string;
  /** Silence after which a request is handled as it stands (default 2000 ms). */
  requestTimeoutMs?: number;
  /** How long to wait for the client to close after the reply (default 2000 ms). */
  lingerMs?: number;
  /** Connections served at once; more are closed at once by node (default 64). */
  maxConnections?: number;
  /** Debug lines (`api: got request: ...`). */
  debug?: (msg: string) => void;
}

export interface ApiServer {
  readonly path: string;
  /** Stop listening, drop open connections, remove the socket file. */
  close(): Promise<void>;
  /** Remove the socket file now (exit paths; safe to call twice). */
  unlinkSync(): void;
}

function setupError(message: string, hint: string, cause?: unknown): TapswitchError {
  return new TapswitchError('ERR_SETUP', message, hint, cause === undefined ? undefined : { cause });
}

/** Unlink a stale socket at `path`; refuse to remove anything that is not a socket. */
function removeStaleSocket(path: string): void {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw setupError(`cannot use API socket path ${path}: ${(e as Error).message}`, 'pass --api-socket a path in a writable directory', e);
  }
  if (!st.isSocket()) {
    throw setupError(`API socket path ${path} exists and is not a socket`, 'remove it or pass another --api-socket path');
  }
  fs.unlinkSync(path);
}

/** Unlink then listen on `path`, and serve requests until close(). */
export async function startApiServer(opts: ApiServerOptions): Promise<ApiServer> {
  const { path } = opts;
  if (path === '' || Buffer.byteLength(path) >= API_SOCKET_PATH_MAX) {
    throw setupError(path === '' ? 'the API socket path is empty'
      : `the specified API socket path is too long (>= ${API_SOCKET_PATH_MAX})`,
    `pass --api-socket a path shorter than ${API_SOCKET_PATH_MAX} bytes`);
  }
  removeStaleSocket(path);

  const requestTimeoutMs = opts.requestTimeoutMs ?? 2000;
  const lingerMs = opts.lingerMs ?? 2000;
  const sockets = new Set<net.Socket>();
  let queue: Promise<unknown> = Promise.resolve();
  const serial = (op: () => Promise<void>): void => {
    queue = queue.then(op, op).catch(() => undefined);
  };

  const serve = (sock: net.Socket): void => {
    sockets.add(sock);
    const chunks: Buffer[] = [];
    let total = 0;
    let answered = false;
    let timer: NodeJS.Timeout | undefined;

    const arm = (ms: number): void => {
      if (timer) clearTimeout(timer);
      timer = setTimeout(onTimeout, ms);
    };
    const reply = (text: string): void => {
      if (timer) clearTimeout(timer);
      if (!sock.destroyed && sock.writable) sock.end(text);
      // Wait for the client to close; drop it if it never does.
      arm(lingerMs);
    };
    const answer = (): void => {
      if (answered) return;
      answered = true;
      if (timer) clearTimeout(timer);
      const request = Buffer.concat(chunks, total).toString('utf8');
      serial(async () => {
        opts.debug?.(`api: got request: ${request.trimEnd()}`);
        const text = await handleApiRequest(request, opts);
        reply(text);
      });
    };
    function onTimeout(): void {
      if (!answered) answer();
      else sock.destroy();
    }

    sock.on('data', (chunk: Buffer) => {
      if (answered) return; // discard whatever follows a reply
      chunks.push(chunk);
      total += chunk.length;
      if (total >= API_MAX_REQUEST) {
        answered = true;
        opts.log?.(`api: too large message (>= ${API_MAX_REQUEST} bytes)`);
        reply(apiError('too large message'));
        return;
      }
      // A complete JSON object needs no EOF (a prefix of an object never parses as one).
      const text = Buffer.concat(chunks, total).toString('utf8');
      let complete = false;
      try {
        complete = isPlainObject(JSON.parse(text));
      } catch { /* not yet */ }
      if (complete) answer();
      else arm(requestTimeoutMs);
    });
    sock.on('end', () => {
      if (!answered) answer();
      else if (sock.writableEnded) sock.destroy();
    });
    sock.on('error', () => sock.destroy());
    sock.on('close', () => {
      if (timer) clearTimeout(timer);
      sockets.delete(sock);
    });
    arm(requestTimeoutMs);
  };

  const server = net.createServer({ allowHalfOpen: true }, serve);
  server.maxConnections = opts.maxConnections ?? 64;
  await new Promise<void>((resolve, reject) => {
    const onError = (e: NodeJS.ErrnoException): void => {
      reject(setupError(`cannot listen on API socket ${path}: ${e.message}`,
        e.code === 'EACCES' ? 'pass --api-socket a path in a directory you can write'
          : e.code === 'ENOENT' ? "create the API socket's directory first" : 'check the --api-socket path', e));
    };
    server.once('error', onError);
    server.listen(path, () => {
      server.off('error', onError);
      resolve();
    });
  });
  server.on('error', (e) => opts.log?.(`api: ${e.message}`));

  let ino: number | null = null;
  try {
    ino = fs.statSync(path).ino;
  } catch { /* raced away; unlinkSync will find nothing */ }

  const unlinkSync = (): void => {
    try {
      if (ino !== null && fs.lstatSync(path).ino === ino) fs.unlinkSync(path);
    } catch { /* already gone */ }
    ino = null;
  };

  return {
    path,
    unlinkSync,
    close: () => new Promise<void>((resolve) => {
      unlinkSync();
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}
