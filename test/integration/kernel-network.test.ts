// The rootful (kernel) driver end to end, inside a throwaway user+net+mount namespace that plays the
// host (test/helpers/kernel-sandbox.ts): networks, the 16-check NAT/isolation matrix, run modes,
// IPAM, crash recovery, firewall-policy detection, and nothing left behind.
import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { dataPlaneMissing } from '../helpers/sandbox';
import {
  ask, cli, CLIENT_JS, enterKernelSandbox, KERNEL_CLI, exited, killAll, HOST, HOST_IP, makeOutside, netnsWhere, OUTSIDE_IP, sh, snapshot,
  startRun, startServer, type Outside, type Where,
} from '../helpers/kernel-sandbox';

interface Endpoint { container: string; ip: string; mac: string; mtu?: number; hostVeth: string; netns: string; ports: string[] }
interface Inspect { name: string; subnet: string; gateway: string; bridge: string; mtu?: number; endpoints: Endpoint[] }

function ok(args: string[]): string {
  const r = cli(args);
  assert.equal(r.code, 0, `tapswitch ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

function inspect(name: string): Inspect {
  return JSON.parse(ok(['network', 'inspect', name])) as Inspect;
}

function endpoint(net: string, container: string): Endpoint {
  const e = inspect(net).endpoints.find((x) => x.container === container);
  assert.ok(e, `no endpoint ${container} on ${net}`);
  return e;
}

/** A container running the reporting server (TCP + UDP on port 80). */
async function serverContainer(name: string, net: string, extra: string[] = []): Promise<{ proc: ChildProcess; ep: Endpoint; at: Where }> {
  const { SERVER_JS } = await import('../helpers/kernel-sandbox');
  const proc = await startRun(['--network', net, '--name', name, ...extra, '--', process.execPath, '-e', SERVER_JS, name, '80', '1']);
  const ep = endpoint(net, name);
  return { proc, ep, at: netnsWhere(name, ep.netns) };
}

if (enterKernelSandbox(__filename)) {
  let before0: ReturnType<typeof snapshot>;
  let outside: Outside;

  before(async () => {
    outside = await makeOutside();
    before0 = snapshot();
    await startServer(outside, 'internet', 7000);
    await startServer(HOST, 'hostsvc', 7100);
  });

  // Servers and holders would keep the event loop (and so this file's process) alive.
  after(killAll);

  test('network create / ls / inspect / rm and their errors', () => {
    const id = ok(['network', 'create', 'n1']).trim();
    assert.match(id, /^[0-9a-f]{64}$/);
    ok(['network', 'create', 'n2']);
    const ls = JSON.parse(ok(['network', 'ls', '--json'])) as Array<Record<string, unknown>>;
    assert.deepEqual(ls.map((n) => [n.name, n.driver, n.subnet, n.gateway]),
      [['n1', 'kernel', '172.17.0.0/16', '172.17.0.1'], ['n2', 'kernel', '172.18.0.0/16', '172.18.0.1']]);
    assert.match(ok(['network', 'ls']), /^NETWORK ID +NAME +DRIVER +SUBNET +GATEWAY/);
    const n1 = inspect('n1');
    assert.match(n1.bridge, /^tsw-br-[0-9a-f]{8}$/);
    assert.match(sh('ip', ['-br', 'link', 'show', 'dev', n1.bridge]), /UP|DOWN|UNKNOWN/);
    assert.equal(fs.readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim(), '1');
    assert.equal(fs.readFileSync(`/proc/sys/net/ipv4/conf/${n1.bridge}/route_localnet`, 'utf8').trim(), '1');

    const errs: Array<[string[], number, RegExp]> = [
      [['network', 'create', 'n1'], 65, /already exists/],
      [['network', 'create', '--subnet', '198.51.100.0/25', 'x'], 65, /overlaps route 198\.51\.100\.0\/24/],
      [['network', 'create', '--subnet', '172.17.5.0/24', 'x'], 65, /overlaps network n1/],
      [['network', 'create', '--subnet', '300.1.0.0/16', 'x'], 65, /invalid subnet/],
      [['network', 'create', '--subnet', '10.1.0.0/24', '--gateway', '10.2.0.1', 'x'], 65, /not a usable address/],
      [['network', 'create', 'bad name'], 65, /invalid network name/],
      [['network', 'create', 'bridge'], 65, /reserved/],
      [['network', 'create', '--driver', 'userspace', 'x'], 69, /userspace network driver is not available yet/],
      [['network', 'inspect', 'nope'], 65, /no network named "nope"/],
      [['network', 'rm', 'nope'], 65, /no network named/],
      [['network', 'frob'], 64, /unknown network command/],
    ];
    for (const [args, code, re] of errs) {
      const r = cli(args);
      assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /^tapswitch: /);
      assert.match(r.stderr, re);
    }
    // an explicit subnet and gateway
    ok(['network', 'create', '--subnet', '10.77.0.0/24', '--gateway', '10.77.0.254', 'custom']);
    const c = inspect('custom');
    assert.equal(c.gateway, '10.77.0.254');
    assert.match(sh('ip', ['-4', '-br', 'addr', 'show', 'dev', c.bridge]), /10\.77\.0\.254\/24/);
    assert.equal(ok(['network', 'rm', 'custom']).trim(), 'custom');
    assert.throws(() => sh('ip', ['link', 'show', 'dev', c.bridge]));
  });

  test('without CAP_NET_ADMIN the kernel driver is refused, naming the capability', () => {
    // A nested user namespace without an id map runs node as the overflow uid: no capabilities.
    const r = cli(['network', 'create', '--driver', 'kernel', 'nocap'], {}, ['unshare', '--user', '--']);
    assert.equal(r.code, 69, r.stderr);
    assert.match(r.stderr, /CAP_NET_ADMIN/);
    const d = cli(['network', 'create', 'nocap'], {}, ['unshare', '--user', '--']);
    assert.equal(d.code, 69, d.stderr);
    assert.match(d.stderr, /userspace network driver is not available yet.*CAP_NET_ADMIN/);
  });

  test('the 16-check NAT and isolation matrix', async (t) => {
    const c1 = await serverContainer('c1', 'n1', ['-p', '8080:80', '-p', '127.0.0.1:8081:80', '-p', '5353:80/udp']);
    const c2 = await serverContainer('c2', 'n1');
    const c3 = await serverContainer('c3', 'n2');
    const n1 = inspect('n1');
    assert.equal(c1.ep.ip, '172.17.0.2');
    assert.equal(c1.ep.mac, '02:42:ac:11:00:02');
    assert.equal(c2.ep.ip, '172.17.0.3');
    assert.equal(c3.ep.ip, '172.18.0.2');
    const c1s = (who: string): string => `c1: you are ${who}`;
    const checks: Array<[string, () => string, string | RegExp]> = [
      ['1 outbound MASQUERADE: the internet sees the host address', () => ask(c1.at, OUTSIDE_IP, 7000), `internet: you are ${HOST_IP}`],
      ['2 DNAT from outside keeps the client address', () => ask(outside, HOST_IP, 8080), c1s(OUTSIDE_IP)],
      ['3 DNAT from the host via its own address', () => ask(HOST, HOST_IP, 8080), /^c1: you are /],
      ['4 DNAT from the host via 127.0.0.1 (wildcard publish)', () => ask(HOST, '127.0.0.1', 8080), /^c1: you are /],
      ['5 DNAT from the host via 127.0.0.1 (publish bound to 127.0.0.1)', () => ask(HOST, '127.0.0.1', 8081), /^c1: you are /],
      ['6 hairpin from a peer on the same network', () => ask(c2.at, HOST_IP, 8080), /^c1: you are 172\.17\.0\.\d+$/],
      ['7 hairpin from the container itself', () => ask(c1.at, HOST_IP, 8080), /^c1: you are 172\.17\.0\.\d+$/],
      ['8 no direct access to a container address from another network', () => ask(c3.at, c1.ep.ip, 80, 'tcp', 1000), 'ERR TIMEOUT'],
      ['9 no direct access to a container address from outside', () => ask(outside, c1.ep.ip, 80, 'tcp', 1000), 'ERR TIMEOUT'],
      ['10 other networks reach published ports', () => ask(c3.at, HOST_IP, 8080), /^c1: you are /],
      ['11 same-network traffic is direct (no NAT)', () => ask(c2.at, c1.ep.ip, 80), c1s(c2.ep.ip)],
      ['12 a port bound to 127.0.0.1 is unreachable from outside', () => ask(outside, HOST_IP, 8081, 'tcp', 1000), /^ERR (ECONNREFUSED|TIMEOUT)$/],
      ['13 unpublished host services are unaffected (from outside)', () => ask(outside, HOST_IP, 7100), `hostsvc: you are ${OUTSIDE_IP}`],
      ['14 unpublished host services are unaffected (from a container)', () => ask(c1.at, n1.gateway, 7100), `hostsvc: you are ${c1.ep.ip}`],
      ['15 published UDP from outside keeps the client address', () => ask(outside, HOST_IP, 5353, 'udp'), c1s(OUTSIDE_IP)],
    ];
    const failures: string[] = [];
    for (const [name, fn, want] of checks) {
      const got = fn();
      const pass = typeof want === 'string' ? got === want : want.test(got);
      t.diagnostic(`${pass ? 'PASS' : 'FAIL'} ${name}: ${got}`);
      if (!pass) failures.push(`${name}: got ${JSON.stringify(got)}, want ${String(want)}`);
    }
    // 16: publish and unpublish at runtime
    assert.equal(ask(outside, HOST_IP, 9090, 'tcp', 800), 'ERR ECONNREFUSED');
    ok(['network', 'publish', 'c2', '9090:80']);
    const pub = ask(outside, HOST_IP, 9090);
    ok(['network', 'unpublish', 'c2', '9090']);
    const unpub = ask(outside, HOST_IP, 9090, 'tcp', 1000);
    const p16 = pub === `c2: you are ${OUTSIDE_IP}` && unpub === 'ERR ECONNREFUSED';
    t.diagnostic(`${p16 ? 'PASS' : 'FAIL'} 16 publish/unpublish at runtime: ${pub} / ${unpub}`);
    if (!p16) failures.push(`16 runtime publish: ${pub} / ${unpub}`);
    // UDP: a removed publish stops forwarding at once even for a client that keeps its flow alive
    // (same source port): its conntrack entry is flushed (needs the conntrack tool)
    ok(['network', 'publish', 'c2', '9091:80/udp']);
    const u1 = ask(outside, HOST_IP, 9091, 'udp', 1500, 40000);
    ok(['network', 'unpublish', 'c2', '9091/udp']);
    const u2 = ask(outside, HOST_IP, 9091, 'udp', 1000, 40000);
    const hasConntrack = fs.existsSync('/usr/sbin/conntrack') || fs.existsSync('/sbin/conntrack');
    t.diagnostic(`UDP runtime publish/unpublish with a kept source port: ${u1} / ${u2}${hasConntrack ? '' : ' (conntrack tool absent: no flush)'}`);
    assert.equal(u1, `c2: you are ${OUTSIDE_IP}`);
    if (hasConntrack) assert.equal(u2, 'ERR TIMEOUT');

    // a port a host service holds, or a host address that is not ours, is refused
    const busy = cli(['network', 'publish', 'c2', '7100:80']);
    assert.equal(busy.code, 75, busy.stderr);
    assert.match(busy.stderr, /cannot reserve host port 7100:80\/tcp: EADDRINUSE: a host service already uses it/);
    const foreign = cli(['network', 'publish', 'c2', '203.0.113.9:7200:80']);
    assert.equal(foreign.code, 65, foreign.stderr);
    assert.match(foreign.stderr, /EADDRNOTAVAIL/);
    const busyRun = cli(['run', '--network', 'n1', '-p', '7100:80', '--', 'true']);
    assert.equal(busyRun.code, 75, busyRun.stderr);

    // a clash with an existing publish is refused
    const clash = cli(['network', 'publish', 'c3', '8080:80']);
    assert.equal(clash.code, 75, clash.stderr);
    assert.match(clash.stderr, /already published by container c1/);
    assert.deepEqual(failures, []);

    // removing a network with attached containers is refused, naming them
    const rm = cli(['network', 'rm', 'n1']);
    assert.equal(rm.code, 75);
    assert.match(rm.stderr, /network "n1" has 2 attached container\(s\): c1, c2/);
    assert.deepEqual(inspect('n1').endpoints.map((e) => e.ports), [['8080:80/tcp', '127.0.0.1:8081:80/tcp', '5353:80/udp'], []]);

    // the container's exit ends its endpoint and every rule it added
    for (const c of [c1, c2, c3]) c.proc.kill('SIGTERM');
    const codes = await Promise.all([c1, c2, c3].map((c) => exited(c.proc)));
    assert.deepEqual(codes, [143, 143, 143]);
    assert.deepEqual(inspect('n1').endpoints, []);
    const rules = sh('nft', ['list', 'table', 'inet', 'tapswitch']);
    assert.doesNotMatch(rules, /8080|8081|5353|172\.17\.0\.2 \./);
    assert.doesNotMatch(sh('ip', ['-br', 'link']), /tsw-v/);
    assert.equal(ask(outside, HOST_IP, 8080, 'tcp', 800), 'ERR ECONNREFUSED');
  });

  test('an internal network has no outside connectivity and cannot publish', async () => {
    ok(['network', 'create', '--internal', 'inner']);
    const ls = JSON.parse(ok(['network', 'ls', '--json'])) as Array<{ name: string; internal: boolean }>;
    assert.equal(ls.find((n) => n.name === 'inner')?.internal, true);
    const refused = cli(['run', '--network', 'inner', '-p', '8088:80', '--', 'true']);
    assert.equal(refused.code, 65);
    assert.match(refused.stderr, /internal/);
    const c = await serverContainer('in1', 'inner');
    const peer = await serverContainer('in2', 'inner');
    assert.equal(ask(c.at, OUTSIDE_IP, 7000, 'tcp', 1000), 'ERR TIMEOUT');
    assert.equal(ask(peer.at, c.ep.ip, 80), `in1: you are ${peer.ep.ip}`);
    c.proc.kill('SIGTERM');
    peer.proc.kill('SIGTERM');
    await Promise.all([exited(c.proc), exited(peer.proc)]);
    ok(['network', 'rm', 'inner']);
  });

  test('modes: none, host, container:NAME, bridge (default network created on first use)', async () => {
    const none = cli(['run', '--network', 'none', '--', 'ip', '-br', 'link']);
    assert.equal(none.code, 0, none.stderr);
    assert.deepEqual(none.stdout.trim().split('\n').map((l) => l.split(/\s+/)[0]), ['lo']);
    assert.match(none.stdout, /LOOPBACK,UP/);

    const host = cli(['run', '--network', 'host', '--', 'ip', '-br', 'link']);
    assert.equal(host.code, 0, host.stderr);
    assert.match(host.stdout, /tswt-h0/);

    const c1 = await serverContainer('j1', 'n1');
    const joined = cli(['run', '--network', 'container:j1', '--', 'ip', '-4', '-br', 'addr', 'show', 'dev', 'eth0']);
    assert.equal(joined.code, 0, joined.stderr);
    assert.match(joined.stdout, new RegExp(`${c1.ep.ip.replace(/\./g, '\\.')}/16`));
    const pubJoin = cli(['run', '--network', 'container:j1', '-p', '8090:80', '--', 'true']);
    assert.equal(pubJoin.code, 65);
    assert.match(pubJoin.stderr, /not allowed with --network container:j1/);
    const missing = cli(['run', '--network', 'container:ghost', '--', 'true']);
    assert.equal(missing.code, 65);
    assert.match(missing.stderr, /no running container named "ghost"/);
    c1.proc.kill('SIGTERM');
    await exited(c1.proc);

    const br = cli(['run', '--', 'sh', '-c', 'ip -4 -br addr show dev eth0; ip route']);
    assert.equal(br.code, 0, br.stderr);
    const bridge = inspect('bridge');
    assert.equal(bridge.subnet, '172.19.0.0/16');
    assert.match(br.stdout, /172\.19\.0\.2\/16/);
    assert.match(br.stdout, /default via 172\.19\.0\.1 dev eth0/);
    assert.match(sh('ip', ['-d', 'link', 'show', 'dev', bridge.bridge]), /bridge/);

    // CMD's status is passed through; a missing CMD is 127
    assert.equal(cli(['run', '--network', 'n1', '--', 'sh', '-c', 'exit 7']).code, 7);
    assert.equal(cli(['run', '--network', 'none', '--', '/nonexistent/cmd']).code, 127);
  });

  test('the default path: bridge as root, userspace without root; --network userspace is the TAP path either way', async (t) => {
    // Root here: uid 0 with CAP_NET_ADMIN in the user namespace that owns this network namespace.
    const def = cli(['run', '--', 'ip', '-br', 'addr']);
    assert.equal(def.code, 0, def.stderr);
    const br = inspect('bridge');
    assert.match(def.stdout, /^eth0@\S+ +UP +172\.19\.0\.\d+\/16 /m, 'eth0 on the bridge network');
    assert.equal(br.subnet, '172.19.0.0/16');
    assert.doesNotMatch(def.stdout, /tap0/);
    assert.deepEqual(inspect('bridge').endpoints, [], 'the endpoint went with CMD');

    const noDataPlane = dataPlaneMissing();
    if (noDataPlane) {
      t.diagnostic(`userspace half skipped: ${noDataPlane}`);
      return;
    }
    const us = cli(['run', '--network', 'userspace', '--', 'ip', '-br', 'addr']);
    assert.equal(us.code, 0, us.stderr);
    assert.match(us.stdout, /^tap0 +\S+ +10\.0\.2\.100\/24 /m);
    assert.doesNotMatch(us.stdout, /eth0/);

    // Not root: a nested user namespace as uid 5 (mapped, so no capabilities after exec), and root of
    // a nested user namespace that does not own this network namespace (CapEff full, but useless here).
    const asUid5 = ['unshare', '--user', '--map-user=5', '--map-group=5', '--'];
    const asNestedRoot = ['unshare', '--user', '--map-root-user', '--'];
    const probe = spawnSync(asUid5[0]!, [...asUid5.slice(1), 'true']);
    if (probe.status !== 0) {
      t.diagnostic(`non-root half skipped: unshare --map-user not available (${String(probe.stderr).trim()})`);
      return;
    }
    for (const prefix of [asUid5, asNestedRoot]) {
      const who = prefix.join(' ');
      const r = cli(['run', '--map-user-only', '--', 'sh', '-c', 'id -u; ip -br addr'], {}, prefix);
      assert.equal(r.code, 0, `${who}: ${r.stderr}`);
      assert.match(r.stdout, /^tap0 +\S+ +10\.0\.2\.100\/24 /m, who);
      assert.doesNotMatch(r.stdout, /eth0/, who);
      // The kernel path asked for explicitly says what is missing and what to do.
      const k = cli(['run', '--network', 'bridge', '--', 'true'], {}, prefix);
      assert.equal(k.code, 69, `${who}: ${k.stderr}`);
      assert.match(k.stderr, /^tapswitch: run --network bridge needs CAP_NET_ADMIN over this network namespace.*--network userspace \(the default without root\)$/m, who);
    }
    const nested = cli(['run', '--network', 'bridge', '--', 'true'], {}, asNestedRoot);
    assert.match(nested.stderr, /belongs to another user namespace/);
    assert.deepEqual(inspect('bridge').endpoints, []);
  });

  test('the kernel run honours the rootless run\'s flags: --mtu, -o mtu, --log-level, --stats, --dns-forward', async () => {
    // --mtu: both ends of the veth
    const m = await serverContainer('mtu1', 'n1', ['--mtu', '1400']);
    assert.equal(m.ep.mtu, 1400);
    assert.match(sh(m.at.prefix[0]!, [...m.at.prefix.slice(1), 'ip', '-o', 'link', 'show', 'dev', 'eth0']), / mtu 1400 /);
    assert.match(sh('ip', ['-o', 'link', 'show', 'dev', m.ep.hostVeth]), / mtu 1400 /);
    assert.equal(ask(m.at, OUTSIDE_IP, 7000), `internet: you are ${HOST_IP}`);
    m.proc.kill('SIGTERM');
    assert.equal(await exited(m.proc), 143);
    // network create -o mtu (Docker's com.docker.network.driver.mtu): the bridge and its endpoints' default
    ok(['network', 'create', '-o', 'com.docker.network.driver.mtu=1300', 'small']);
    const small = inspect('small');
    assert.equal(small.mtu, 1300);
    assert.match(sh('ip', ['-o', 'link', 'show', 'dev', small.bridge]), / mtu 1300 /);
    const d1 = cli(['run', '--network', 'small', '--', 'ip', '-o', 'link', 'show', 'dev', 'eth0']);
    assert.equal(d1.code, 0, d1.stderr);
    assert.match(d1.stdout, / mtu 1300 /);
    const d2 = cli(['run', '--network', 'small', '--mtu', '1200', '--', 'cat', '/sys/class/net/eth0/mtu']);
    assert.equal(d2.code, 0, d2.stderr);
    assert.equal(d2.stdout.trim(), '1200', 'run --mtu wins; /sys is CMD\'s own network namespace\'s');
    ok(['network', 'rm', 'small']);
    for (const [args, re] of [
      [['network', 'create', '-o', 'mtu=20', 'x'], /invalid MTU: 20/],
      [['network', 'create', '-o', 'com.docker.network.bridge.name=x', 'x'], /unknown driver option/],
      [['run', '--network', 'n1', '--mtu', '67', '--', 'true'], /invalid MTU: 67/],
      [['run', '--network', 'none', '--mtu', '1400', '--', 'true'], /--mtu is not allowed with --network none/],
    ] as Array<[string[], RegExp]>) {
      const r = cli(args);
      assert.equal(r.code, 65, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, re);
    }

    // --log-level: quiet by default; info says what was set up; debug shows every ip/nft command
    const quiet = cli(['run', '--network', 'n1', '--', 'true']);
    assert.equal(quiet.code, 0);
    assert.equal(quiet.stderr, '');
    const info = cli(['run', '--network', 'n1', '--name', 'logged', '--log-level', 'info', '--', 'true']);
    assert.equal(info.code, 0, info.stderr);
    assert.match(info.stderr, /^tapswitch: info: container logged: eth0 172\.17\.0\.\d+ 02:42:ac:11:00:[0-9a-f]{2} on network n1 \(host end tsw-v[0-9a-f]{10}\)/m);
    assert.doesNotMatch(info.stderr, /debug/);
    const dbg = cli(['run', '--network', 'n1', '--log-level', 'debug', '--', 'true']);
    assert.equal(dbg.code, 0, dbg.stderr);
    assert.match(dbg.stderr, /^tapswitch: debug: exec: ip link add name tsw-v[0-9a-f]{10} type veth peer name eth0 address 02:42:ac:11:00:[0-9a-f]{2} netns tsw-[0-9a-f]{12}$/m);
    assert.match(dbg.stderr, /^tapswitch: debug: exec: ip netns del tsw-[0-9a-f]{12}$/m);

    // --stats: eth0's kernel counters at exit, counting what CMD sent and received
    const n1 = inspect('n1');
    const st = cli(['run', '--network', 'n1', '--stats', '--', process.execPath, '-e', CLIENT_JS, n1.gateway, '7100', 'tcp', '3000']);
    assert.equal(st.code, 0, st.stderr);
    assert.match(st.stdout, /^hostsvc: you are 172\.17\.0\.\d+$/m);
    assert.match(st.stderr, /^tapswitch: stats:$/m);
    const counter = (name: string): number => Number(new RegExp(`^ +${name} +(\\d+)$`, 'm').exec(st.stderr)?.[1] ?? NaN);
    assert.ok(counter('eth0_tx_packets') >= 3, `tx packets: ${st.stderr}`);
    assert.ok(counter('eth0_rx_bytes') > 'hostsvc: you are 172.17.0.2'.length, `rx bytes: ${st.stderr}`);
    const noEth = cli(['run', '--network', 'none', '--stats', '--', 'true']);
    assert.equal(noEth.code, 65);
    assert.match(noEth.stderr, /--stats is not allowed with --network none: `--network none` gives the container only lo/);

    // resolv.conf: the host's nameservers the container can reach (not its loopback ones), search
    // kept; --dns-forward ADDR instead. Run under a stand-in host resolv.conf (nested mount namespace).
    const hostResolv = fs.readFileSync('/etc/resolv.conf', 'utf8');
    const withResolv = (text: string): string[] => {
      fs.writeFileSync('/run/tsw-test-resolv.conf', text);
      return ['unshare', '--mount', '--', 'sh', '-c', 'mount --bind /run/tsw-test-resolv.conf /etc/resolv.conf && exec "$0" "$@"'];
    };
    const nameservers = (out: string): string[] => out.split('\n').filter((l) => l.startsWith('nameserver '));
    const r1 = cli(['run', '--network', 'n1', '--', 'cat', '/etc/resolv.conf'], {},
      withResolv('nameserver 127.0.0.53\nnameserver 198.51.100.2\nsearch example.test\n'));
    assert.equal(r1.code, 0, r1.stderr);
    assert.deepEqual(nameservers(r1.stdout), ['nameserver 198.51.100.2']);
    assert.match(r1.stdout, /^search example\.test$/m);
    assert.equal(r1.stderr, '');
    const r2 = cli(['run', '--network', 'n1', '--dns-forward', '198.51.100.9', '--', 'cat', '/etc/resolv.conf'], {},
      withResolv('nameserver 198.51.100.2\n'));
    assert.deepEqual(nameservers(r2.stdout), ['nameserver 198.51.100.9']);
    const r3 = cli(['run', '--network', 'n1', '--', 'true'], {}, withResolv('nameserver 127.0.0.53\n'));
    assert.equal(r3.code, 0, r3.stderr);
    assert.match(r3.stderr, /^tapswitch: warn: the container has no nameserver: the host's nameservers \(127\.0\.0\.53\) are on its loopback.*\(pass --dns-forward ADDR\)$/m);
    // a joined container gets one too
    const j = await serverContainer('resolv1', 'n1');
    const r4 = cli(['run', '--network', 'container:resolv1', '--dns-forward', '198.51.100.7', '--', 'cat', '/etc/resolv.conf']);
    assert.deepEqual(nameservers(r4.stdout), ['nameserver 198.51.100.7']);
    j.proc.kill('SIGTERM');
    await exited(j.proc);
    for (const [args, re] of [
      [['--dns-forward', '198.51.100.9:5353'], /cannot use a port other than 53/],
      [['--dns-forward', '127.0.0.53'], /a loopback address is the container's own/],
    ] as Array<[string[], RegExp]>) {
      const r = cli(['run', '--network', 'n1', ...args, '--', 'true']);
      assert.equal(r.code, 65, r.stderr);
      assert.match(r.stderr, re);
    }
    fs.unlinkSync('/run/tsw-test-resolv.conf');
    assert.equal(fs.readFileSync('/etc/resolv.conf', 'utf8'), hostResolv, 'the host\'s resolv.conf is untouched');
  });

  test('the kernel run: environment, working directory, exit statuses, signals passed on; flags of the userspace path refused', async () => {
    const env = spawnSync(process.execPath, [KERNEL_CLI, 'run', '--network', 'n1', '--', 'sh', '-c', 'pwd; echo "$TSW_PROBE"'],
      { cwd: '/run', env: { ...process.env, TSW_PROBE: 'passed through' }, encoding: 'utf8' });
    assert.equal(env.status, 0, env.stderr);
    assert.equal(env.stdout, '/run\npassed through\n');

    assert.equal(cli(['run', '--network', 'n1', '--', 'sh', '-c', 'exit 9']).code, 9);
    assert.equal(cli(['run', '--network', 'n1', '--', '/nonexistent/cmd']).code, 127);
    fs.writeFileSync('/run/tsw-noexec', '#!/bin/sh\nexit 0\n', { mode: 0o644 });
    assert.equal(cli(['run', '--network', 'n1', '--', '/run/tsw-noexec']).code, 126);
    fs.unlinkSync('/run/tsw-noexec');
    assert.equal(cli(['run', '--network', 'n1', '--', 'sh', '-c', 'kill -KILL $$']).code, 137);
    assert.equal(cli(['run', '--network', 'host', '--', 'sh', '-c', 'exit 4']).code, 4);

    // SIGTERM/SIGINT/SIGHUP reach CMD; its own status comes back; the endpoint goes with it
    for (const [sig, script, want] of [
      ['SIGTERM', 'trap "exit 42" TERM; echo ready; while :; do sleep 0.05; done', 42],
      ['SIGINT', 'echo ready; exec sleep 1000', 130],
      ['SIGHUP', 'echo ready; exec sleep 1000', 129],
    ] as const) {
      const c = await startRun(['--network', 'n1', '--name', 'sig', '--', 'sh', '-c', script]);
      assert.deepEqual(inspect('n1').endpoints.map((e) => e.container), ['sig']);
      c.kill(sig);
      assert.equal(await exited(c), want, sig);
      assert.deepEqual(inspect('n1').endpoints, [], `${sig}: endpoint removed`);
    }

    // A signal during set-up abandons it: CMD never runs, the endpoint is removed, 128+N
    const early = cli(['run', '--network', 'n1', '--name', 'early', '--', 'sh', '-c', 'echo CMD ran'],
      { TAPSWITCH_TEST_SIGNAL: 'container-create:after-endpoint' });
    assert.equal(early.code, 143, early.stderr);
    assert.equal(early.stdout, '');
    assert.deepEqual(inspect('n1').endpoints, []);
    assert.doesNotMatch(sh('ip', ['-br', 'link']), /tsw-v/);

    // Flags of the userspace path: refused before anything is created, naming why and the way out
    for (const [args, re] of [
      [['--network', 'n1', '--queues', '2'], /^tapswitch: --queues does not apply to --network n1: .*the kernel forwards the packets; pass --network userspace/],
      [['--network', 'n1', '--cidr', '10.9.0.0/24'], /^tapswitch: --cidr does not apply to --network n1: .*network create --subnet CIDR/],
      [['--map-user-only'], /^tapswitch: --map-user-only does not apply to the kernel path, the default as root: .*no new user namespace/],
      [['--network', 'userspace', '--name', 'x'], /^tapswitch: --name does not apply to --network userspace: .*pass --network bridge/],
    ] as Array<[string[], RegExp]>) {
      const r = cli(['run', ...args, '--', 'true']);
      assert.equal(r.code, 64, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, re);
      assert.equal(r.stderr.trimEnd().split('\n').length, 1);
    }
    assert.deepEqual(inspect('n1').endpoints, []);
  });

  test('the host\'s loopback is out of reach (--disable-host-loopback is always in force here), even for a forged destination', async () => {
    // A host service bound to 127.0.0.1 only, and a control service on every address.
    const HOSTLO_JS = `const d = require('node:dgram');
      for (const [port, addr] of [[7301, '127.0.0.1'], [7302, '0.0.0.0']]) {
        const u = d.createSocket('udp4');
        u.on('message', (m, r) => console.log('GOT ' + port + ' ' + m + ' from ' + r.address));
        u.bind(port, addr, () => { if (port === 7302) console.log('ready'); });
      }`;
    const { spawn } = await import('node:child_process');
    const { track, waitLine, lines } = await import('../helpers/kernel-sandbox');
    const srv = track(spawn(process.execPath, ['-e', HOSTLO_JS], { stdio: ['ignore', 'pipe', 'pipe'] }));
    const got: string[] = [];
    const ready = waitLine(srv, /^ready$/);
    lines(srv, (l) => got.push(l));
    await ready;
    const gw = inspect('n1').gateway;
    // Inside: route 127.0.0.0/8 out of eth0 to the gateway (root there may), then send to the host's
    // 127.0.0.1:7301 and, as a control that the path works, to the gateway's 7302.
    const SEND_JS = `const u = require('node:dgram').createSocket('udp4');
      u.send('forged', 7301, '127.0.0.1', () => u.send('control', 7302, '${gw}', () => setTimeout(() => process.exit(0), 300)));`;
    const script = [
      'echo 1 > /proc/sys/net/ipv4/conf/eth0/route_localnet',
      'ip route del local 127.0.0.0/8 dev lo table local',
      'ip route del local 127.0.0.1 dev lo table local',
      `ip route add 127.0.0.0/8 via ${gw} dev eth0`,
      'ip -o route get 127.0.0.1',
      `exec "${process.execPath}" -e "$0"`,
    ].join(' && ');
    for (const flags of [['--disable-host-loopback'], []]) {
      got.length = 0;
      const r = cli(['run', '--network', 'n1', ...flags, '--', 'sh', '-c', script, SEND_JS]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /127\.0\.0\.1 via 172\.17\.0\.1 dev eth0/);
      for (let i = 0; i < 40 && !got.some((l) => l.startsWith('GOT 7302')); i++) await new Promise((res) => setTimeout(res, 50));
      await new Promise((res) => setTimeout(res, 200));
      assert.deepEqual(got.map((l) => l.replace(/from .*/, 'from X')), ['GOT 7302 control from X'], `${flags.join(' ')}: ${got.join('; ')}`);
    }
    srv.kill('SIGKILL');
  });

  test('IPAM: allocation, release, --ip and --mac, veth details', async () => {
    const a = await serverContainer('a', 'n2');
    const b = await serverContainer('b', 'n2');
    assert.deepEqual([a.ep.ip, b.ep.ip], ['172.18.0.2', '172.18.0.3']);
    a.proc.kill('SIGTERM');
    await exited(a.proc);
    const c = await serverContainer('c', 'n2');
    assert.equal(c.ep.ip, '172.18.0.2', 'the released address is reused');
    const taken = cli(['run', '--network', 'n2', '--ip', '172.18.0.3', '--', 'true']);
    assert.equal(taken.code, 65);
    assert.match(taken.stderr, /172\.18\.0\.3 is already in use/);
    const outside = cli(['run', '--network', 'n2', '--ip', '172.99.0.3', '--', 'true']);
    assert.equal(outside.code, 65);
    const dup = cli(['run', '--network', 'n2', '--name', 'b', '--', 'true']);
    assert.equal(dup.code, 65);
    assert.match(dup.stderr, /named "b" is running/);
    const given = cli(['run', '--network', 'n2', '--ip', '172.18.9.9', '--mac', '02:aa:bb:cc:dd:ee', '--',
      'sh', '-c', 'ip -br addr show dev eth0; ip -br link show dev eth0; ip -br link show dev lo']);
    assert.equal(given.code, 0, given.stderr);
    assert.match(given.stdout, /172\.18\.9\.9\/16/);
    assert.match(given.stdout, /02:aa:bb:cc:dd:ee/);
    assert.match(given.stdout, /^lo +UNKNOWN/m);
    // host end: on the bridge, hairpin on
    const hv = sh('ip', ['-d', '-j', 'link', 'show', 'master', inspect('n2').bridge]);
    const ports = JSON.parse(hv) as Array<{ ifname: string; linkinfo?: { info_slave_data?: { hairpin?: boolean } } }>;
    assert.equal(ports.length, 2);
    for (const p of ports) {
      assert.match(p.ifname, /^tsw-v[0-9a-f]{10}$/);
      assert.equal(p.linkinfo?.info_slave_data?.hairpin, true);
    }
    b.proc.kill('SIGTERM');
    c.proc.kill('SIGTERM');
    await Promise.all([exited(b.proc), exited(c.proc)]);
  });

  test('kill -9 mid-run and mid-create: the next command repairs', async () => {
    const { SERVER_JS } = await import('../helpers/kernel-sandbox');
    const run = await startRun(['--network', 'n1', '--name', 'victim', '-p', '7777:80', '--', process.execPath, '-e', SERVER_JS, 'victim', '80', '0']);
    const ep = endpoint('n1', 'victim');
    assert.equal(ask(outside, HOST_IP, 7777), `victim: you are ${OUTSIDE_IP}`);
    const childPid = Number(sh('pgrep', ['-P', String(run.pid), '-f', 'victim']).trim().split('\n')[0]);
    run.kill('SIGKILL');
    await exited(run);
    // the orphaned CMD keeps running, but its endpoint is reaped by the next command
    ok(['network', 'ls']);
    assert.deepEqual(inspect('n1').endpoints, []);
    assert.doesNotMatch(sh('ip', ['-br', 'link']), /tsw-v/);
    assert.ok(!fs.existsSync(`/run/netns/${ep.netns}`));
    assert.doesNotMatch(sh('nft', ['list', 'table', 'inet', 'tapswitch']), /7777/);
    try {
      process.kill(childPid, 'SIGKILL');
    } catch { /* already gone */ }

    // mid `network create`, after the bridge exists but before it is recorded
    const crash = cli(['network', 'create', 'doomed'], { TAPSWITCH_TEST_CRASH: 'network-create:after-bridge' });
    assert.equal(crash.code, null, 'killed by SIGKILL');
    assert.match(sh('ip', ['-br', 'link']), /tsw-br-/);
    const st = JSON.parse(fs.readFileSync('/run/tapswitch/kernel.json', 'utf8')) as { intents: unknown[] };
    assert.equal(st.intents.length, 1);
    const names = (JSON.parse(ok(['network', 'ls', '--json'])) as Array<{ name: string }>).map((n) => n.name);
    assert.ok(!names.includes('doomed'));
    const bridges = sh('ip', ['-br', 'link']).split('\n').filter((l) => l.startsWith('tsw-br-')).length;
    assert.equal(bridges, names.length, 'only recorded networks have bridges');

    // mid `run`, after the endpoint exists but before it is recorded
    const crash2 = cli(['run', '--network', 'n1', '--', 'true'], { TAPSWITCH_TEST_CRASH: 'container-create:after-endpoint' });
    assert.equal(crash2.code, null);
    assert.match(sh('ip', ['-br', 'link']), /tsw-v/);
    ok(['network', 'ls']);
    assert.doesNotMatch(sh('ip', ['-br', 'link']), /tsw-v/);
    assert.deepEqual(fs.readdirSync('/run/netns'), []);

    // the nft table flushed behind our back is restored by the next command
    sh('nft', ['flush', 'ruleset']);
    ok(['network', 'ls']);
    assert.match(sh('nft', ['list', 'tables']), /table inet tapswitch/);

    // a container whose netns was deleted behind our back loses its endpoint
    const r2 = await startRun(['--network', 'n1', '--name', 'orphan', '--', process.execPath, '-e', SERVER_JS, 'orphan', '80', '0']);
    const ep2 = endpoint('n1', 'orphan');
    sh('ip', ['netns', 'del', ep2.netns]);
    ok(['network', 'ls']);
    assert.deepEqual(inspect('n1').endpoints, []);
    assert.doesNotMatch(sh('ip', ['-br', 'link']), /tsw-v/);
    r2.kill('SIGTERM');
    assert.equal(await exited(r2), 143);

    // a stale lock left by a dead process does not block
    fs.writeFileSync('/run/tapswitch/kernel.lock', '999999999 1\n');
    ok(['network', 'ls']);
  });

  test('an iptables FORWARD policy DROP is detected and refused until our bridges are let through', () => {
    sh('nft', ['-f', '-'], 'table ip filter {\n chain FORWARD {\n  type filter hook forward priority 0; policy drop;\n }\n}\n');
    const r = cli(['network', 'create', 'blocked']);
    assert.equal(r.code, 69, r.stderr);
    assert.match(r.stderr, /forward chain ip filter FORWARD drops by default/);
    assert.match(r.stderr, /nft insert rule ip filter FORWARD oifname "tsw-br-\*" accept/);
    sh('nft', ['insert', 'rule', 'ip', 'filter', 'FORWARD', 'oifname', 'tsw-br-*', 'accept']);
    sh('nft', ['insert', 'rule', 'ip', 'filter', 'FORWARD', 'iifname', 'tsw-br-*', 'accept']);
    ok(['network', 'create', 'blocked']);
    ok(['network', 'rm', 'blocked']);
    sh('nft', ['delete', 'table', 'ip', 'filter']);
  });

  test('concurrent commands serialize on the lock: distinct subnets and addresses', async () => {
    const { spawn } = await import('node:child_process');
    const { KERNEL_CLI } = await import('../helpers/kernel-sandbox');
    const go = (args: string[]): Promise<{ code: number | null; out: string; err: string }> => new Promise((resolve) => {
      const c = spawn(process.execPath, [KERNEL_CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '', err = '';
      c.stdout.on('data', (d: Buffer) => { out += d.toString(); });
      c.stderr.on('data', (d: Buffer) => { err += d.toString(); });
      c.on('close', (code) => resolve({ code, out, err }));
    });
    const creates = await Promise.all(['p1', 'p2', 'p3', 'p4'].map((n) => go(['network', 'create', n])));
    for (const r of creates) assert.equal(r.code, 0, r.err);
    const nets = JSON.parse(ok(['network', 'ls', '--json'])) as Array<{ name: string; subnet: string }>;
    const subnets = nets.map((n) => n.subnet);
    assert.equal(new Set(subnets).size, subnets.length, `overlap in ${subnets.join(' ')}`);
    // six containers alive at once (each waits for a go file), started concurrently
    const gate = '/run/tsw-test-go';
    const pending = [1, 2, 3, 4, 5, 6].map(() =>
      go(['run', '--network', 'p1', '--', 'sh', '-c', `ip -4 -br addr show dev eth0; while [ ! -e ${gate} ]; do sleep 0.05; done`]));
    let eps: Endpoint[] = [];
    for (let i = 0; i < 200 && eps.length < 6; i++) {
      await new Promise((r) => setTimeout(r, 50));
      eps = inspect('p1').endpoints;
    }
    fs.writeFileSync(gate, '');
    const runs = await Promise.all(pending);
    fs.unlinkSync(gate);
    for (const r of runs) assert.equal(r.code, 0, r.err);
    const addrs = eps.map((e) => e.ip);
    assert.equal(new Set(addrs).size, 6, `duplicate address among ${addrs.join(' ')}`);
    assert.deepEqual(runs.map((r) => /(\d+\.\d+\.\d+\.\d+)\//.exec(r.out)?.[1]).sort(), [...addrs].sort());
    const rms = await Promise.all(['p1', 'p2', 'p3', 'p4'].map((n) => go(['network', 'rm', n])));
    for (const r of rms) assert.equal(r.code, 0, r.err);
  });

  test('removing every network leaves nothing behind', () => {
    const names = (JSON.parse(ok(['network', 'ls', '--json'])) as Array<{ name: string }>).map((n) => n.name);
    assert.deepEqual(names.sort(), ['bridge', 'n1', 'n2']);
    assert.equal(ok(['network', 'rm', ...names]).trim().split('\n').length, 3);
    const after0 = snapshot();
    assert.equal(after0.links, before0.links);
    assert.equal(after0.tables, before0.tables);
    assert.deepEqual(after0.netns, []);
    const st = JSON.parse(fs.readFileSync('/run/tapswitch/kernel.json', 'utf8')) as { networks: unknown[]; containers: unknown[]; intents: unknown[]; table: boolean };
    assert.deepEqual([st.networks, st.containers, st.intents, st.table], [[], [], [], false]);
  });
}
