// The gateway against the real kernel: a container namespace (a nested user+net namespace, the
// rootless case) gets a TAP served by a Switch + Router in this process; busybox udhcpc inside it
// must lease network+15 and then ping the gateway. Runs in the throwaway sandbox of
// test/helpers/sandbox.ts.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { ensureSandbox, tapMissing, track, waitForLine } from '../helpers/sandbox';

function busyboxMissing(): string | null {
  const r = spawnSync('busybox', ['udhcpc', '--help'], { encoding: 'utf8' });
  if (r.error) return `busybox not installed (apt-get install busybox-static): ${r.error.message}`;
  const r2 = spawnSync('busybox', ['ping', '--help'], { encoding: 'utf8' });
  if (`${r.stdout}${r.stderr}`.includes('applet not found') || `${r2.stdout}${r2.stderr}`.includes('applet not found')) {
    return 'busybox has no udhcpc/ping applet';
  }
  return null;
}

/** Run to completion without blocking the event loop (the TAP is served on this thread). */
function run(child: ChildProcess, timeoutMs: number): Promise<{ code: number | null; out: string; err: string }> {
  let out = '';
  let err = '';
  child.stdout?.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr?.on('data', (d: Buffer) => { err += d.toString(); });
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('close', (code) => { clearTimeout(timer); resolve({ code, out, err }); });
  });
}

if (ensureSandbox(__filename)) {
  const skip = tapMissing() ?? busyboxMissing();
  test('busybox udhcpc leases 10.0.2.15 from the gateway, then pings 10.0.2.2', { skip: skip ?? false, timeout: 60_000 }, async (t) => {
    // Loaded only here: the addon may be absent when the test is skipped.
    const { native } = await import('../../src/link/native');
    const { TapDevice } = await import('../../src/link/tap');
    const { Switch, TapPort } = await import('../../src/switch/switch');
    const { Router } = await import('../../src/gateway/router');

    const holder = track(spawn('unshare', ['--user', '--map-root-user', '--net', '--', '/bin/sh', '-c', 'echo ready; exec sleep 1000000'],
      { stdio: ['ignore', 'pipe', 'inherit'] }));
    await waitForLine(holder, (l) => l === 'ready');
    const pid = holder.pid as number;
    const tap = native.openTap({
      netns: `/proc/${pid}/ns/net`, userns: `/proc/${pid}/ns/user`, name: 'tap0', queues: 1, vnetHdr: true,
      offloads: native.TUN_F.CSUM | native.TUN_F.TSO4 | native.TUN_F.TSO6, loopbackUp: true, up: true,
    });
    const fd = tap.fds[0]!;
    const dev = new TapDevice(fd, { vnetHdr: tap.vnetHdr, name: 'tap0' });
    const counters: Record<string, number> = {};
    const sw = new Switch({ counters });
    const port = new TapPort(1, dev);
    sw.addPort(port);
    const forwarded: number[] = [];
    const router = new Router({
      network: 0x0a000200, prefixLength: 24, gateway: 0x0a000202, dns: 0x0a000203, dhcpStart: 0x0a00020f, dhcpCount: 16,
      gatewayMac: [0x52, 0x55, 0x0a, 0x00, 0x02, 0x02], mtu: 1500,
    }, { switch: sw, counters, offloads: tap.vnetHdr, onForward: (_f, _e, ip) => { forwarded.push(ip.protocol); } });
    port.start(sw);

    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-dhcp-'));
    const script = path.join(dir, 'udhcpc.script');
    fs.writeFileSync(script, [
      '#!/bin/sh',
      'if [ "$1" = bound ]; then',
      '  busybox ifconfig "$interface" "$ip" netmask "$subnet" up',
      '  busybox route add default gw "$router" dev "$interface"',
      '  echo "lease ip=$ip subnet=$subnet router=$router dns=$dns serverid=$serverid lease=$lease mtu=$mtu"',
      'fi',
      '',
    ].join('\n'), { mode: 0o755 });
    const inContainer = (args: string[]) => track(spawn('nsenter', ['-t', String(pid), '-U', '-n', '--preserve-credentials', ...args],
      { stdio: ['ignore', 'pipe', 'pipe'] }));
    try {
      const dhcp = await run(inContainer(['busybox', 'udhcpc', '-i', 'tap0', '-q', '-n', '-f', '-t', '5', '-T', '2', '-s', script]), 30_000);
      t.diagnostic(`udhcpc: ${dhcp.out.trim()} ${dhcp.err.trim()}`);
      assert.equal(dhcp.code, 0, `udhcpc failed: ${dhcp.err}`);
      assert.match(dhcp.out, /lease ip=10\.0\.2\.15 subnet=255\.255\.255\.0 router=10\.0\.2\.2 dns=10\.0\.2\.3 serverid=10\.0\.2\.2 lease=86400 mtu=1500/);
      assert.match(dhcp.err + dhcp.out, /lease of 10\.0\.2\.15 obtained/);
      assert.equal(router.dhcp!.leases()[0]!.state, 'bound');
      assert.equal(counters.dhcp_ack, 1);

      const ping = await run(inContainer(['busybox', 'ping', '-c', '1', '-W', '3', '10.0.2.2']), 15_000);
      t.diagnostic(`ping: ${ping.out.trim()} ${ping.err.trim()}`);
      assert.equal(ping.code, 0, `ping failed: ${ping.out} ${ping.err}`);
      assert.match(ping.out, /1 packets received/);
      assert.ok((counters.arp_reply_sent ?? 0) >= 1, 'the kernel ARPed for the gateway');
      assert.ok((counters.icmp_echo_reply_sent ?? 0) >= 1);
      assert.deepEqual(router.arpEntries().map(([ip]) => ip), [0x0a00020f], 'the guest learned at its leased address');
      t.diagnostic(`counters: ${JSON.stringify(counters)}`);
    } finally {
      dev.close();
      native.close(fd);
      holder.kill('SIGKILL');
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
}
