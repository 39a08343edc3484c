// A tiny authoritative DNS server for tests, over UDP and TCP on the same port.
// Answers A queries for --name (default tapswitch.test) with --address (default 198.51.100.7), TTL 60;
// anything else gets NXDOMAIN. It logs each question with the client's address as a JSON line on
// stdout so tests can check what reached it. Prints {"ready":true,"port":N} once both sockets listen.
// Usage: node dns-server.js [--host H] [--port P] [--name N] [--address A]
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import { argValue, ready } from './common';

const host = argValue('--host', '0.0.0.0');
const wantPort = Number(argValue('--port', '53'));
const name = argValue('--name', 'tapswitch.test').toLowerCase().replace(/\.$/, '');
const address = argValue('--address', '198.51.100.7').split('.').map(Number);

/** Parse the question of a query; null when malformed. */
function question(q: Buffer): { id: number; qname: string; qtype: number; end: number } | null {
  if (q.length < 12 || q.readUInt16BE(4) !== 1) return null;
  const labels: string[] = [];
  let off = 12;
  for (;;) {
    const len = q[off];
    if (len === undefined || len > 63) return null;
    off++;
    if (len === 0) break;
    if (off + len > q.length) return null;
    labels.push(q.subarray(off, off + len).toString('latin1'));
    off += len;
  }
  if (off + 4 > q.length) return null;
  return { id: q.readUInt16BE(0), qname: labels.join('.').toLowerCase(), qtype: q.readUInt16BE(off), end: off + 4 };
}

function answer(q: Buffer): Buffer | null {
  const qq = question(q);
  if (!qq) return null;
  const hit = qq.qname === name && qq.qtype === 1;
  const header = Buffer.alloc(12);
  header.writeUInt16BE(qq.id, 0);
  const rd = (q[2] as number) & 0x01;
  header[2] = 0x84 | rd; // QR, AA, RD copied
  header[3] = hit ? 0x00 : 0x03; // NOERROR / NXDOMAIN
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(hit ? 1 : 0, 6);
  const body = q.subarray(12, qq.end);
  if (!hit) return Buffer.concat([header, body]);
  const rr = Buffer.alloc(16);
  rr.writeUInt16BE(0xc00c, 0); // name: pointer to the question
  rr.writeUInt16BE(1, 2); // A
  rr.writeUInt16BE(1, 4); // IN
  rr.writeUInt32BE(60, 6);
  rr.writeUInt16BE(4, 10);
  Buffer.from(address).copy(rr, 12);
  return Buffer.concat([header, body, rr]);
}

function note(proto: string, from: string, q: Buffer): void {
  const qq = question(q);
  process.stdout.write(`${JSON.stringify({ query: qq?.qname ?? null, proto, from })}\n`);
}

const udp = dgram.createSocket('udp4');
udp.on('message', (msg, rinfo) => {
  note('udp', rinfo.address, msg);
  const a = answer(msg);
  if (a) udp.send(a, rinfo.port, rinfo.address);
});

const tcp = net.createServer((sock) => {
  sock.on('error', () => {});
  let buf = Buffer.alloc(0);
  sock.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
      const msg = buf.subarray(2, 2 + buf.readUInt16BE(0));
      buf = buf.subarray(2 + msg.length);
      note('tcp', sock.remoteAddress ?? '', msg);
      const a = answer(msg);
      if (a) {
        const len = Buffer.alloc(2);
        len.writeUInt16BE(a.length);
        sock.write(Buffer.concat([len, a]));
      }
    }
  });
});

udp.bind(wantPort, host, () => {
  const port = udp.address().port;
  tcp.listen(port, host, () => ready(port));
});
