// Clients for bench/hook_storm.py: N Socket.IO clients, token i % T, all on URL A.
// When one is disconnected it connects again to URL B (a load balancer sending it to
// a live node), as a whole fleet does after a node is killed. Prints JSON lines:
// {phase: 'connected', ms} once all are connected, {phase: 'reconnected', ms, errors}
// once all have reconnected. Ends when stdin closes.
//   node bench/storm_clients.js --a URL --b URL --tokens FILE --clients N
'use strict';

const { io } = require('socket.io-client');
const fs = require('node:fs');
const { parseArgs } = require('node:util');

const { values: opt } = parseArgs({
  options: {
    a: { type: 'string' }, b: { type: 'string' },
    tokens: { type: 'string' }, clients: { type: 'string', default: '1000' },
  },
});
const tokens = fs.readFileSync(opt.tokens, 'utf8').trim().split('\n');
const n = Number(opt.clients);
const say = (o) => process.stdout.write(JSON.stringify(o) + '\n');
let connected = 0;
let moved = 0;
let errors = 0;
let stormStart = 0;
const started = performance.now();

function open(url, token, onConnect) {
  const socket = io(url, { auth: { token }, transports: ['websocket'], reconnection: false,
    timeout: 20000 });
  socket.once('connect', () => onConnect(socket));
  socket.once('connect_error', (err) => {
    errors += 1;
    say({ phase: 'error', message: String(err && err.message) });
    setTimeout(() => open(url, token, onConnect), 200);
  });
  return socket;
}

for (let i = 0; i < n; i += 1) {
  const token = tokens[i % tokens.length];
  open(opt.a, token, (socket) => {
    connected += 1;
    if (connected === n) say({ phase: 'connected', ms: performance.now() - started });
    socket.once('disconnect', () => {
      if (!stormStart) stormStart = performance.now();
      open(opt.b, token, () => {
        moved += 1;
        if (moved === n) say({ phase: 'reconnected', ms: performance.now() - stormStart, errors });
      });
    });
  });
}
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
