// Runs inside the container for the worker-crash test: opens a TCP flow, asks the data-plane worker
// to crash (TAPSWITCH_TEST_HOOKS=1: a datagram to gateway:9), then reports what became of the old
// flow and whether a new one works. Prints one JSON line.
import * as net from 'node:net';
import * as dgram from 'node:dgram';
import * as fs from 'node:fs';

const [host, portText] = [process.argv[2]!, process.argv[3]!];
const port = Number(portText);

function connect(): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = watch(net.connect({ host, port }, () => resolve(s)));
    s.once('error', reject);
  });
}

/** How a socket ended (first error code, or CLOSED), recorded whenever it happens. */
const fate = new WeakMap<net.Socket, string>();
function watch(s: net.Socket): net.Socket {
  s.on('error', (e: NodeJS.ErrnoException) => { if (!fate.has(s)) fate.set(s, e.code ?? e.message); });
  s.on('close', () => { if (!fate.has(s)) fate.set(s, 'CLOSED'); });
  return s;
}

/**
 * Write a line and wait for its echo, or report how the connection ended. The reset of an old flow
 * may come before we write (the guest's delayed ACK can reach the new worker first): it counts.
 */
function roundTrip(s: net.Socket, line: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve) => {
    const ended = fate.get(s);
    if (ended !== undefined) return resolve(ended);
    let got = '';
    const done = (r: string) => { clearTimeout(timer); clearInterval(poll); s.removeListener('data', onData); resolve(r); };
    const onData = (d: Buffer) => { got += d.toString(); if (got.includes(line)) done('ECHOED'); };
    const timer = setTimeout(() => done('TIMEOUT'), timeoutMs);
    const poll = setInterval(() => { const f = fate.get(s); if (f !== undefined) done(f); }, 20);
    s.on('data', onData);
    s.write(`${line}\n`);
  });
}

async function main(): Promise<void> {
  const old = await connect();
  const before = await roundTrip(old, 'before-crash', 5000);
  const u = dgram.createSocket('udp4');
  await new Promise<void>((r) => u.send('tapswitch-test-crash', 9, '10.0.2.2', () => r()));
  u.close();
  // Give the control plane time to see the death and start a fresh worker.
  await new Promise((r) => setTimeout(r, 1500));
  const after = await roundTrip(old, 'after-crash', 8000);
  old.destroy();
  const fresh = await connect().then((s) => roundTrip(s, 'fresh-flow', 5000).finally(() => s.destroy()), (e: NodeJS.ErrnoException) => e.code ?? 'ERR');
  const snmp = fs.readFileSync('/proc/net/snmp', 'utf8').split('\n').filter((l) => l.startsWith('Tcp:'));
  process.stdout.write(`${JSON.stringify({ before, after, fresh, guestTcp: snmp[1] })}\n`);
}

void main();
