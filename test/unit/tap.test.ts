import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { classifyOpenTapError, openContainerTap, type TapRequest } from '../../src/netns/tap';
import { Logger } from '../../src/control/log';
import { TapswitchError } from '../../src/control/errors';
import type * as Native from '../../native/index';

const TUN_F = { CSUM: 0x01, TSO4: 0x02, TSO6: 0x04, TSO_ECN: 0x08, UFO: 0x10, USO4: 0x20, USO6: 0x40 } as const;
const req: TapRequest = { netns: '/proc/1/ns/net', name: 'tap0', queues: 1, allowPlainFallback: true };

function errno(code: string, step: string): Error {
  return Object.assign(new Error(`${step}: ${code}`), { code, step });
}

function fakeApi(openTap: (o: Native.OpenTapOptions) => Native.OpenTapResult): typeof Native {
  return { TUN_F, openTap, close: () => 0 } as unknown as typeof Native;
}

const ok = (o: Native.OpenTapOptions): Native.OpenTapResult =>
  ({ fds: [7], mac: new Uint8Array(6), ifindex: 2, vnetHdr: o.vnetHdr, offloads: o.offloads });

test('asks for the vnet header with CSUM|TSO4|TSO6, lo up, TAP up', () => {
  let seen: Native.OpenTapOptions | undefined;
  const tap = openContainerTap(req, new Logger('error', () => {}), fakeApi((o) => { seen = o; return ok(o); }));
  assert.equal(seen?.vnetHdr, true);
  assert.equal(seen?.offloads, 0x07);
  assert.equal(seen?.loopbackUp, true);
  assert.equal(seen?.up, true);
  assert.deepEqual(tap.fds, [7]);
});

test('attaching: EINVAL with the header falls back to no header, with a warning', () => {
  const lines: string[] = [];
  const calls: boolean[] = [];
  const tap = openContainerTap(req, new Logger('warn', (l) => lines.push(l)), fakeApi((o) => {
    calls.push(o.vnetHdr);
    if (o.vnetHdr) throw errno('EINVAL', 'tunsetiff');
    return ok(o);
  }));
  assert.deepEqual(calls, [true, false]);
  assert.equal(tap.vnetHdr, false);
  assert.match(lines.join(''), /refuses the virtio-net header/);
});

test('no fallback when creating, nor when the plain attach fails too', () => {
  const api = fakeApi(() => { throw errno('EINVAL', 'tunsetiff'); });
  assert.throws(() => openContainerTap({ ...req, allowPlainFallback: false }, new Logger('error', () => {}), api),
    { code: 'ERR_SETUP' });
  const lines: string[] = [];
  assert.throws(() => openContainerTap(req, new Logger('warn', (l) => lines.push(l)), api),
    (e: unknown) => e instanceof TapswitchError && /--queues/.test(e.hint));
  assert.deepEqual(lines, []);
});

test('addon errors become coded, actionable errors', () => {
  const c = (code: string, step: string) => classifyOpenTapError(errno(code, step), { netns: '/proc/9/ns/net', name: 'tap0' });
  assert.equal(c('EACCES', 'open-tun').code, 'ERR_NO_TUN');
  assert.match(c('EACCES', 'open-tun').hint, /chmod 0666 \/dev\/net\/tun/);
  assert.match(c('ENOENT', 'open-tun').hint, /modprobe tun/);
  assert.equal(c('ENOENT', 'setns-net').code, 'ERR_NO_TARGET');
  assert.equal(c('ENOENT', 'open-netns').code, 'ERR_NO_TARGET');
  assert.equal(c('EACCES', 'open-userns').code, 'ERR_NO_PERMISSION');
  assert.equal(c('EPERM', 'setns-net').code, 'ERR_NO_PERMISSION');
  assert.equal(c('EBUSY', 'tunsetiff').code, 'ERR_NO_PERMISSION');
  assert.equal(c('EIO', 'ioctl-addr').code, 'ERR_SETUP');
  assert.equal(c('EIO', 'ioctl-addr').exitCode, 125);
});
