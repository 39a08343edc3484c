// A tiny TCP request/response pair for latency measurements, run as its own process (on the host or
// inside a container). Protocol: the client sends one byte and waits for one byte back. A request
// byte of 'c' asks the server to close after replying (connect-request-response: the server closes
// first so the client side, which runs in the container, collects no TIME_WAIT sockets).
//
//   node rr-tool.js server PORT                  -> prints "listening PORT" once ready
//   node rr-tool.js rr   HOST PORT COUNT         -> one connection, COUNT round trips (after 200 warm-up)
//   node rr-tool.js crr  HOST PORT SECONDS       -> a new connection per request, one at a time
//   node rr-tool.js load HOST PORT CONNS SECONDS -> CONNS connections doing round trips concurrently
//
// Clients print one JSON line: {"n":..,"seconds":..,"rate":..,"p50us":..,"p99us":..,"errors":..}.
import * as net from 'node:net';
import { percentileSorted } from './stats';

const PING = Buffer.from('p');
const CLOSE = Buffer.from('c');

function server(port: number): void {
  const srv = net.createServer({ noDelay: true }, (sock) => {
    sock.setNoDelay(true);
    sock.on('data', (d) => {
      // One reply byte per request byte (requests never overlap within a connection).
      for (let i = 0; i < d.length; i++) {
        if (d[i] === 0x63) {
          sock.end(PING);
          return;
        }
        sock.write(PING);
      }
    });
    sock.on('error', () => sock.destroy());
  });
  srv.listen(port, '0.0.0.0', () => process.stdout.write(`listening ${port}\n`));
}

interface Result { n: number; seconds: number; rate: number; p50us: number; p99us: number; errors: number; firstError?: string }

function finish(samplesNs: number[], seconds: number, errors: number, firstError?: string): void {
  const us = Float64Array.from(samplesNs, (x) => x / 1000).sort();
  const r: Result = {
    n: us.length,
    seconds,
    rate: us.length / seconds,
    p50us: percentileSorted(us, 50),
    p99us: percentileSorted(us, 99),
    errors,
    ...(firstError !== undefined ? { firstError } : {}),
  };
  process.stdout.write(`${JSON.stringify(r)}\n`);
  process.exit(0);
}

function rr(host: string, port: number, count: number): void {
  const warmup = 200;
  const samples: number[] = [];
  const sock = net.connect({ host, port, noDelay: true });
  let t0 = 0n;
  let start = 0n;
  let done = 0;
  const send = () => {
    t0 = process.hrtime.bigint();
    sock.write(PING);
  };
  sock.on('connect', () => {
    start = process.hrtime.bigint();
    send();
  });
  sock.on('data', (d) => {
    for (let i = 0; i < d.length; i++) {
      const now = process.hrtime.bigint();
      done++;
      if (done === warmup) start = now;
      if (done > warmup) samples.push(Number(now - t0));
      if (done >= warmup + count) {
        sock.destroy();
        finish(samples, Number(now - start) / 1e9, 0);
        return;
      }
      send();
    }
  });
  sock.on('error', (e) => {
    process.stderr.write(`rr: ${e.message}\n`);
    process.exit(1);
  });
}

function crr(host: string, port: number, seconds: number): void {
  const samples: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  const start = process.hrtime.bigint();
  const deadline = start + BigInt(Math.round(seconds * 1e9));
  const one = () => {
    const t0 = process.hrtime.bigint();
    if (t0 >= deadline) {
      finish(samples, Number(t0 - start) / 1e9, errors, firstError);
      return;
    }
    let got = false;
    const sock = net.connect({ host, port, noDelay: true });
    sock.on('connect', () => sock.write(CLOSE));
    sock.on('data', () => {
      if (!got) {
        got = true;
        samples.push(Number(process.hrtime.bigint() - t0));
      }
    });
    sock.on('error', (e) => {
      errors++;
      firstError ??= e.message;
    });
    sock.on('close', () => {
      if (errors > 1000) {
        process.stderr.write(`crr: too many errors (${firstError})\n`);
        process.exit(1);
      }
      setImmediate(one);
    });
    sock.on('end', () => sock.end());
  };
  one();
}

function load(host: string, port: number, conns: number, seconds: number): void {
  const samples: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  let open = conns;
  let start = 0n;
  let deadline = 0n;
  let connected = 0;
  const sockets: net.Socket[] = [];
  const end = () => {
    const now = process.hrtime.bigint();
    for (const s of sockets) s.destroy();
    finish(samples, Number(now - start) / 1e9, errors, firstError);
  };
  for (let c = 0; c < conns; c++) {
    const sock = net.connect({ host, port, noDelay: true });
    sockets.push(sock);
    let t0 = 0n;
    const send = () => {
      t0 = process.hrtime.bigint();
      sock.write(PING);
    };
    sock.on('connect', () => {
      connected++;
      if (connected === conns) {
        // Start the clock once everyone is connected; everyone then sends.
        start = process.hrtime.bigint();
        deadline = start + BigInt(Math.round(seconds * 1e9));
        setTimeout(end, seconds * 1000 + 50);
        for (const s of sockets) s.emit('go');
      }
    });
    sock.on('go', send);
    sock.on('data', (d) => {
      for (let i = 0; i < d.length; i++) {
        const now = process.hrtime.bigint();
        if (now < deadline) {
          samples.push(Number(now - t0));
          send();
        }
      }
    });
    sock.on('error', (e) => {
      errors++;
      firstError ??= e.message;
    });
    sock.on('close', () => {
      open--;
      if (open === 0 && connected < conns) {
        process.stderr.write(`load: connections failed (${firstError})\n`);
        process.exit(1);
      }
    });
  }
}

function main(argv: string[]): void {
  const [mode, a, b, c, d] = argv;
  const num = (s: string | undefined, what: string): number => {
    const n = Number(s);
    if (!Number.isFinite(n) || n <= 0) {
      process.stderr.write(`rr-tool: bad ${what}: ${s}\n`);
      process.exit(64);
    }
    return n;
  };
  switch (mode) {
    case 'server': return server(num(a, 'port'));
    case 'rr': return rr(a ?? '', num(b, 'port'), num(c, 'count'));
    case 'crr': return crr(a ?? '', num(b, 'port'), num(c, 'seconds'));
    case 'load': return load(a ?? '', num(b, 'port'), num(c, 'connections'), num(d, 'seconds'));
    default:
      process.stderr.write('usage: rr-tool server PORT | rr HOST PORT COUNT | crr HOST PORT SECONDS | load HOST PORT CONNS SECONDS\n');
      process.exit(64);
  }
}

if (require.main === module) main(process.argv.slice(2));
