// Load generator for bench/run.py. One mode per invocation; prints JSON lines on stdout:
// {phase: 'start'} and {phase: 'end'} around the measured window, then the result.
//   node bench/clients.js fanout --url U --token T --clients N --messages M --window K
//   node bench/clients.js echo   --url U --token T --clients C --seconds S
//   node bench/clients.js idle   --url U --token T --clients N   (holds until stdin closes)
// All timestamps are performance.now() (monotonic hrtime) taken in this one process.
'use strict';

const {
  createOutput, connectMany, percentiles, joinAll, measureFanout,
} = require('./loadgen');
const { parseArgs } = require('node:util');

const { positionals, values: opt } = parseArgs({
  allowPositionals: true,
  options: {
    url: { type: 'string', default: 'http://127.0.0.1:5001' },
    token: { type: 'string', default: 'bench' },
    clients: { type: 'string', default: '100' },
    messages: { type: 'string', default: '100' },
    window: { type: 'string', default: '4' },
    seconds: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '1' },
    timeout: { type: 'string', default: '60' },
    deflate: { type: 'boolean', default: false },
  },
});
const mode = positionals[0];
const nClients = Number(opt.clients);
const deadline = performance.now() + Number(opt.timeout) * 1000;
const CHANNEL = 'bench';
const BODY = 'x'.repeat(100); // a chat-message-sized text field

const { out: emit, serverErrors } = createOutput();

// Connects n clients to --url with --token, at most `concurrency` handshakes in flight.
function connectAll(n, concurrency = 100) {
  const jobs = Array.from({ length: n }, () => [opt.url, opt.token]);
  return connectMany(jobs, { concurrency, deadline, serverErrors, deflate: opt.deflate });
}

// One sender, every client (sender included) a member. At most `window` messages are
// outstanding, where a message is outstanding until every member has received it.
async function fanout() {
  const { sockets, failed, errors } = await connectAll(nClients);
  const { failed: joinFailed } = await joinAll(sockets, sockets.length, CHANNEL);
  const result = await measureFanout(sockets, {
    members: sockets.length - joinFailed, messages: Number(opt.messages),
    window: Number(opt.window), deadline, out: emit, channel: CHANNEL, body: BODY,
  });
  emit({
    mode, clients: sockets.length, connect_failed: failed, connect_errors: errors,
    join_failed: joinFailed, ...result,
  });
  for (const s of sockets) s.close();
}

// C clients, each doing sequential heartbeat acks; only round trips started after warmup count.
async function echo() {
  const seconds = Number(opt.seconds);
  const { sockets, failed, errors } = await connectAll(nClients);
  const lat = [];
  let timeouts = 0;
  const start = performance.now() + Number(opt.warmup) * 1000;
  const end = start + seconds * 1000;
  let cpu0;
  const warm = new Promise((r) => setTimeout(r, start - performance.now())).then(() => {
    cpu0 = process.cpuUsage();
    emit({ phase: 'start' });
  });
  await Promise.all(
    sockets.map(async (s) => {
      while (performance.now() < end) {
        const t0 = performance.now();
        try {
          await s.timeout(5000).emitWithAck('heartbeat', {});
          if (t0 >= start) lat.push(performance.now() - t0);
        } catch {
          timeouts += 1;
        }
      }
    }),
  );
  await warm;
  emit({ phase: 'end' });
  const cpu = process.cpuUsage(cpu0);
  emit({
    mode, clients: sockets.length, connect_failed: failed, connect_errors: errors,
    seconds, round_trips: lat.length, round_trips_per_s: lat.length / seconds, timeouts,
    client_cpu_s: (cpu.user + cpu.system) / 1e6, ...percentiles(Float64Array.from(lat), lat.length),
  });
  for (const s of sockets) s.close();
}

// Opens N idle connections, reports, then holds them until stdin closes or SIGTERM.
async function idle() {
  const t0 = performance.now();
  const { sockets, failed, errors } = await connectAll(nClients);
  emit({
    mode, clients: sockets.length, connect_failed: failed, connect_errors: errors,
    connect_s: (performance.now() - t0) / 1000,
  });
  const release = () => {
    for (const s of sockets) s.close();
    process.exit(0);
  };
  process.stdin.on('end', release);
  process.on('SIGTERM', release);
  process.stdin.resume();
}

const modes = { fanout, echo, idle };
if (!modes[mode]) {
  console.error(`usage: clients.js ${Object.keys(modes).join('|')} [--options]`);
  process.exit(2);
}
modes[mode]().catch((err) => {
  console.error(err);
  process.exit(1);
});
if (mode !== 'idle') {
  setTimeout(() => {
    console.error('clients.js: hard timeout');
    process.exit(3);
  }, (Number(opt.timeout) + 30) * 1000).unref();
}
