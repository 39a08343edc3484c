// Test UDP server: replies to each datagram with `you are <addr>:<port>\n` followed by the payload.
// Prints {"ready":true,"port":N} once bound. Usage: node udp-echo-server.js [--host H] [--port P]
import * as dgram from 'node:dgram';
import { argValue, ready } from './common';

const sock = dgram.createSocket('udp4');
sock.on('message', (msg, rinfo) => {
  sock.send(Buffer.concat([Buffer.from(`you are ${rinfo.address}:${rinfo.port}\n`), msg]), rinfo.port, rinfo.address);
});
sock.bind(Number(argValue('--port', '0')), argValue('--host', '0.0.0.0'), () => ready(sock.address().port));
