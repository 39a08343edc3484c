// Runs INSIDE a container namespace (as `tapswitch run -- node container-client.js SPEC`) and probes
// the network through tapswitch with the kernel's own stack. Prints one JSON object: a result per
// probe, so the test asserts on what the container really saw.
//
// SPEC is JSON: { probes: Probe[], parallel?: boolean } where each probe names what to do (see the
// switch below); with parallel, all probes run at once.
import * as net from 'node:net';
import * as dgram from 'node:dgram';
import * as dns from 'node:dns';
import { createHash } from 'node:crypto';
import { deterministicBytes } from './servers/common';

type Probe =
  | { kind: 'tcp-upload'; host: string; port: number; bytes: number }
  | { kind: 'tcp-download'; host: string; port: number; bytes: number }
  | { kind: 'tcp-connect'; host: string; port: number }
  | { kind: 'udp-echo'; host: string; port: number; payload: string }
  | { kind: 'dns-udp'; server: string; name: string }
  | { kind: 'dns-tcp'; server: string; name: string };

type Result = Record<string, unknown>;

function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

/** Connect and collect: greeting line, every byte after it, and how the connection ended. */
function tcpSession(host: string, port: number, send: Buffer | null, timeoutMs = 60_000): Promise<Result> {
  return new Promise((resolve) => {
    const sock = net.connect({ host, port });
    const chunks: Buffer[] = [];
    const started = Date.now();
    const timer = setTimeout(() => { sock.destroy(); resolve({ error: 'TIMEOUT' }); }, timeoutMs);
    sock.on('connect', () => { if (send) sock.end(send); });
    sock.on('data', (d: Buffer) => chunks.push(d));
    sock.on('error', (e: NodeJS.ErrnoException) => { clearTimeout(timer); resolve({ error: e.code ?? e.message }); });
    sock.on('end', () => {
      clearTimeout(timer);
      const all = Buffer.concat(chunks);
      const nl = all.indexOf(10);
      const greeting = nl >= 0 ? all.subarray(0, nl).toString() : all.toString();
      const rest = nl >= 0 ? all.subarray(nl + 1) : Buffer.alloc(0);
      resolve({ greeting, restText: rest.length < 512 ? rest.toString() : undefined, restBytes: rest.length, restSha256: sha256(rest), ms: Date.now() - started });
      sock.end();
    });
  });
}

function udpEcho(host: string, port: number, payload: string): Promise<Result> {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    const timer = setTimeout(() => { s.close(); resolve({ error: 'TIMEOUT' }); }, 5000);
    s.on('message', (msg, rinfo) => { clearTimeout(timer); s.close(); resolve({ reply: msg.toString(), from: `${rinfo.address}:${rinfo.port}` }); });
    s.on('error', (e: NodeJS.ErrnoException) => { clearTimeout(timer); s.close(); resolve({ error: e.code }); });
    s.send(payload, port, host);
  });
}

function dnsUdp(server: string, name: string): Promise<Result> {
  const r = new dns.promises.Resolver({ timeout: 3000, tries: 2 });
  r.setServers([server]);
  return r.resolve4(name).then((a) => ({ addresses: a }), (e: NodeJS.ErrnoException) => ({ error: e.code }));
}

/** A raw DNS-over-TCP A query (RFC 1035 §4.2.2: two-byte length prefix). */
function dnsTcp(server: string, name: string): Promise<Result> {
  const labels = name.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)]));
  const q = Buffer.concat([Buffer.from([0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]), ...labels, Buffer.from([0, 0, 1, 0, 1])]);
  const len = Buffer.alloc(2);
  len.writeUInt16BE(q.length);
  return new Promise((resolve) => {
    const sock = net.connect({ host: server, port: 53 });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => { sock.destroy(); resolve({ error: 'TIMEOUT' }); }, 5000);
    sock.on('connect', () => sock.write(Buffer.concat([len, q])));
    sock.on('data', (d: Buffer) => {
      chunks.push(d);
      const all = Buffer.concat(chunks);
      if (all.length >= 2 && all.length >= 2 + all.readUInt16BE(0)) {
        clearTimeout(timer);
        sock.destroy();
        const m = all.subarray(2);
        const ancount = m.readUInt16BE(6);
        // The answer's RDATA is the last 4 bytes for a single A record.
        resolve({ id: m.readUInt16BE(0), ancount, address: ancount > 0 ? [...m.subarray(m.length - 4)].join('.') : null });
      }
    });
    sock.on('error', (e: NodeJS.ErrnoException) => { clearTimeout(timer); resolve({ error: e.code }); });
  });
}

async function runProbe(p: Probe): Promise<Result> {
  switch (p.kind) {
    case 'tcp-upload': {
      const data = deterministicBytes(0, p.bytes);
      return { ...(await tcpSession(p.host, p.port, data)), sentSha256: sha256(data) };
    }
    case 'tcp-download': return { ...(await tcpSession(p.host, p.port, null)), expectSha256: sha256(deterministicBytes(0, p.bytes)) };
    case 'tcp-connect': return tcpSession(p.host, p.port, Buffer.from('hello\n'), 15_000);
    case 'udp-echo': return udpEcho(p.host, p.port, p.payload);
    case 'dns-udp': return dnsUdp(p.server, p.name);
    case 'dns-tcp': return dnsTcp(p.server, p.name);
  }
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2] ?? '{"probes":[]}') as { probes: Probe[]; parallel?: boolean };
  const results: Result[] = [];
  if (spec.parallel) results.push(...(await Promise.all(spec.probes.map(runProbe))));
  else for (const p of spec.probes) results.push(await runProbe(p));
  process.stdout.write(`${JSON.stringify({ results })}\n`);
}

void main();
