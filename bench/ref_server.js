// Reference Node socket.io v4 server doing the bench subset of SPEC §4:
// auth.token required, channel:join, events:channel relay, heartbeat ack, GET /readyz.
// Usage: node bench/ref_server.js PORT
'use strict';

const http = require('node:http');
const { Server } = require('socket.io');

const port = Number(process.argv[2] || 5001);

const httpServer = http.createServer((req, res) => {
  if (req.url === '/readyz' || req.url === '/healthz') {
    res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
  } else {
    res.writeHead(404).end();
  }
});

const io = new Server(httpServer, { transports: ['websocket'], serveClient: false });

io.use((socket, next) => {
  const token = socket.handshake.auth?.token;
  if (typeof token !== 'string' || token === '') return next(new Error('unauthorized'));
  socket.data.user = { id: 'bench', name: 'bench' };
  next();
});

io.on('connection', (socket) => {
  socket.join(`user:${socket.data.user.id}`);

  socket.on('channel:join', (payload, ack) => {
    socket.join(`channel:${payload?.channel_id}`);
    if (typeof ack === 'function') ack({ ok: true });
  });

  socket.on('events:channel', (payload) => {
    const room = `channel:${payload?.channel_id}`;
    if (!socket.rooms.has(room)) return;
    io.to(room).emit('events:channel', { ...payload, user: socket.data.user });
  });

  socket.on('heartbeat', (_payload, ack) => {
    if (typeof ack === 'function') ack({ ok: true });
  });
});

httpServer.listen(port, '127.0.0.1', () => console.error(`ref_server listening on ${port}`));

for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
