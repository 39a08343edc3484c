// A client to run inside the container (or anywhere): one action, result as one JSON line on stdout.
//   tcp HOST PORT [PAYLOAD]   connect, send PAYLOAD, half-close, collect everything until the server closes
//   udp HOST PORT PAYLOAD     send one datagram, wait for one reply (2 s)
//   resolve NAME              resolve an A record through the system resolver config (/etc/resolv.conf)
//   tcp-sha HOST PORT BYTES   send BYTES of deterministic data, half-close, return the server's reply
// On failure: {"error": "<code or message>"} and exit status 1.
import * as net from 'node:net';
import * as dgram from 'node:dgram';
import * as dns from 'node:dns';
import { deterministicBytes } from './common';

function done(result: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(result.error === undefined ? 0 : 1);
}

function fail(e: unknown): void {
  const err = e as NodeJS.ErrnoException;
  done({ error: err.code ?? err.message ?? String(e) });
}

const [action, a1 = '', a2 = '', a3 = ''] = process.argv.slice(2);
setTimeout(() => done({ error: 'TIMEOUT' }), 20_000).unref();

if (action === 'tcp' || action === 'tcp-sha') {
  const sock = net.connect({ host: a1, port: Number(a2) });
  const chunks: Buffer[] = [];
  let local = '';
  sock.on('connect', () => {
    local = `${sock.localAddress}:${sock.localPort}`;
    if (action === 'tcp') {
      sock.end(a3);
    } else {
      const total = Number(a3);
      let sent = 0;
      const pump = () => {
        while (sent < total) {
          const len = Math.min(65536, total - sent);
          const ok = sock.write(deterministicBytes(sent, len));
          sent += len;
          if (!ok) return void sock.once('drain', pump);
        }
        sock.end();
      };
      pump();
    }
  });
  sock.on('data', (d: Buffer) => chunks.push(d));
  sock.on('error', fail);
  sock.on('close', (hadError) => {
    if (!hadError) done({ data: Buffer.concat(chunks).toString('latin1'), local });
  });
} else if (action === 'udp') {
  const sock = dgram.createSocket('udp4');
  sock.on('message', (m) => done({ data: m.toString('latin1') }));
  sock.on('error', fail);
  setTimeout(() => done({ error: 'NO_REPLY' }), 2000).unref();
  sock.send(a3, Number(a2), a1);
} else if (action === 'resolve') {
  dns.promises.resolve4(a1).then((addresses) => done({ addresses, servers: dns.getServers() }), fail);
} else {
  done({ error: `unknown action ${action}` });
}
