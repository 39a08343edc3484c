// The gateway against the real kernel: a container namespace (a nested user+net namespace, the
// rootless case) gets a TAP served by a Switch + Router in this process; busybox udhcpc inside it
// must lease network+15 and then ping the gateway. Runs in the throwaway sandbox of
// test/helpers/sandbox.ts.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { ensureSandbox, tapMissing } from '../helpers/sandbox';
import { run, serveTap, startContainer, testConfig } from '../helpers/container-ns';

function busyboxMissing(): string | null {
  const r = spawnSync('busybox', ['udhcpc', '--help'], { encoding: 'utf8' });
  if (r.error) return `busybox not installed (apt-get install busybox-static): ${r.error.message}`;
  const r2 = spawnSync('busybox', ['ping', '--help'], { encoding: 'utf8' });
  if (`${r.stdout}${r.stderr}`.includes('applet not found') || `${r2.stdout}${r2.stderr}`.includes('applet not found')) {
    return 'busybox has no udhcpc/ping applet';
  }
  return null;
}

if (ensureSandbox(__filename)) {
  const skip = tapMissing() ?? busyboxMissing();
  test('busybox udhcpc leases 10.0.2.15 from the gateway, then pings 10.0.2.2', { skip: skip ?? false, timeout: 60_000 }, async (t) => {
    const { holder, pid, inContainer } = await startContainer();
    const forwarded: number[] = [];
    // The TAP only comes up: udhcpc configures it.
    const { native, tap, dev, counters, sw, port, router } = await serveTap(pid, testConfig(), 'up',
      (_f, _e, ip) => { forwarded.push(ip.protocol); });
    const fd = tap.fds[0]!;
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
