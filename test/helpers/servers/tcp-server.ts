// Test TCP server. Greets every connection with `you are <addr>:<port>\n` (so tests prove NAT: the
// source address the server saw), then, by --mode:
//   echo       echo everything back
//   sha256     on half-close, reply with the hex SHA-256 and byte count of everything received
//   send:N     send N bytes of deterministic data (byte i = i*7 mod 251), then close
// Prints one JSON line {"ready":true,"port":N} on stdout once listening.
// Usage: node tcp-server.js [--host H] [--port P] [--mode M]
import * as net from 'node:net';
import { createHash } from 'node:crypto';
import { argValue, deterministicBytes, ready } from './common';

const host = argValue('--host', '0.0.0.0');
const port = Number(argValue('--port', '0'));
const mode = argValue('--mode', 'echo');

const server = net.createServer((sock) => {
  sock.on('error', () => {});
  sock.write(`you are ${sock.remoteAddress}:${sock.remotePort}\n`);
  if (mode === 'echo') {
    sock.pipe(sock);
  } else if (mode === 'sha256') {
    const hash = createHash('sha256');
    let n = 0;
    sock.on('data', (d: Buffer) => {
      hash.update(d);
      n += d.length;
    });
    sock.on('end', () => sock.end(`sha256 ${hash.digest('hex')} ${n}\n`));
  } else if (mode.startsWith('send:')) {
    const total = Number(mode.slice(5));
    const chunk = 64 * 1024;
    let sent = 0;
    const pump = () => {
      while (sent < total) {
        const len = Math.min(chunk, total - sent);
        const ok = sock.write(deterministicBytes(sent, len));
        sent += len;
        if (!ok) return void sock.once('drain', pump);
      }
      sock.end();
    };
    pump();
  } else {
    sock.destroy();
  }
});
server.listen(port, host, () => ready((server.address() as net.AddressInfo).port));
