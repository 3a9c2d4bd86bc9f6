// Load generator for bench/redis_bench.py (Redis mode). JSON lines on stdout.
//   node bench/redis_clients.js targets --urls U --tokens-file F
//     one client per token (one user each) on U; every client counts `bench:t` events.
//     Prints {phase: 'ready', clients}; then for each stdin line {"expect": N, "idle_ms": I}
//     waits until N events arrived (or none for I ms), prints that round's result and resets.
//   node bench/redis_clients.js fanout --urls U1,U2 --token T --clients N --messages M --window K
//     N clients spread round-robin over the URLs join channel `bench`; client 0 (on U1) sends
//     M `events:channel` messages, at most K outstanding (as bench/clients.js fanout).
//   node bench/redis_clients.js burst --urls U --token T --clients N --concurrency C
//     N clients connect with C handshakes in flight, then all N join a channel at once;
//     prints how many connects and joins the server refused, and why.
// --concurrency C: handshakes (and channel joins) in flight (default 50).
// Latency: `bench:t` carries t = the driver's CLOCK_MONOTONIC in ms (Python time.monotonic());
// process.hrtime is CLOCK_MONOTONIC too, so driver and receivers share one clock.
// fanout uses performance.now() of this one process, like bench/clients.js.
'use strict';

const fs = require('node:fs');
const readline = require('node:readline');
const {
  createOutput, connectMany, percentiles, joinAll, measureFanout,
} = require('./loadgen');
const { parseArgs } = require('node:util');

const { positionals, values: opt } = parseArgs({
  allowPositionals: true,
  options: {
    urls: { type: 'string', default: 'http://127.0.0.1:7480' },
    token: { type: 'string', default: 'bench' },
    'tokens-file': { type: 'string' },
    clients: { type: 'string', default: '100' },
    messages: { type: 'string', default: '100' },
    window: { type: 'string', default: '4' },
    timeout: { type: 'string', default: '60' },
    concurrency: { type: 'string', default: '50' }, // handshakes in flight
  },
});
const mode = positionals[0];
const urls = opt.urls.split(',');
const deadline = performance.now() + Number(opt.timeout) * 1000;
const BODY = 'x'.repeat(100);
const monoMs = () => Number(process.hrtime.bigint()) / 1e6;

const { out, serverErrors } = createOutput();
const connect = (jobs) =>
  connectMany(jobs, { concurrency: Number(opt.concurrency), deadline, serverErrors });

async function burst() {
  const n = Number(opt.clients);
  const t0 = performance.now();
  const jobs = Array.from({ length: n }, (_, i) => [urls[i % urls.length], opt.token]);
  const { sockets, failed, errors } = await connect(jobs);
  const connectS = (performance.now() - t0) / 1000;
  const joins = await joinAll(sockets, sockets.length);
  out({
    clients: sockets.length, connect_failed: failed, connect_errors: errors, connect_s: connectS,
    join_failed: joins.failed, join_errors: joins.errors,
  });
  for (const s of sockets) s.close();
}

async function targets() {
  const tokens = JSON.parse(fs.readFileSync(opt['tokens-file'], 'utf8'));
  const jobs = tokens.map((t, i) => [urls[i % urls.length], t]);
  const { sockets, failed, errors } = await connect(jobs);
  let lat = new Float64Array(1 << 16);
  let received = 0;
  let first = 0;
  let last = 0;
  let wake = null;
  for (const s of sockets) {
    s.on('bench:t', (m) => {
      const now = monoMs();
      if (received === lat.length) {
        const bigger = new Float64Array(lat.length * 2);
        bigger.set(lat);
        lat = bigger;
      }
      lat[received] = now - m.t;
      if (received === 0) first = now;
      received += 1;
      last = now;
      if (wake) wake();
    });
  }
  out({ phase: 'ready', clients: sockets.length, connect_failed: failed, connect_errors: errors });
  const rl = readline.createInterface({ input: process.stdin });
  for await (const line of rl) {
    if (!line.trim()) continue;
    const { expect, idle_ms: idleMs = 2000 } = JSON.parse(line);
    const cpu0 = process.cpuUsage();
    // wait for `expect` receptions, or for the stream to go quiet for idleMs
    while (received < expect && performance.now() < deadline) {
      const before = received;
      await new Promise((r) => {
        wake = () => {
          if (received >= expect) r();
        };
        setTimeout(r, idleMs);
      });
      wake = null;
      if (received === before) break;
    }
    const cpu = process.cpuUsage(cpu0);
    out({
      received, expected: expect, first_ms: first, last_ms: last,
      client_cpu_s: (cpu.user + cpu.system) / 1e6, ...percentiles(lat, received),
    });
    received = 0;
    first = 0;
    last = 0;
  }
  for (const s of sockets) s.close();
}

// N clients spread round-robin over the URLs join channel `bench`; client 0 sends.
async function fanout() {
  const n = Number(opt.clients);
  const jobs = Array.from({ length: n }, (_, i) => [urls[i % urls.length], opt.token]);
  const { sockets, failed, errors } = await connect(jobs);
  const { failed: joinFailed } = await joinAll(sockets, Number(opt.concurrency));
  const result = await measureFanout(sockets, {
    members: sockets.length - joinFailed, messages: Number(opt.messages),
    window: Number(opt.window), deadline, out, body: BODY,
  });
  out({ clients: sockets.length, connect_failed: failed, connect_errors: errors,
        join_failed: joinFailed, ...result });
  for (const s of sockets) s.close();
}

const modes = { targets, fanout, burst };
if (!modes[mode]) {
  console.error(`usage: redis_clients.js ${Object.keys(modes).join('|')} [--options]`);
  process.exit(2);
}
modes[mode]().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
setTimeout(() => {
  console.error('redis_clients.js: hard timeout');
  process.exit(3);
}, (Number(opt.timeout) + 30) * 1000).unref();
