// Load generator for bench/docs_bench.py (collaborative documents). JSON lines on stdout.
//   node bench/docs_load.js e2e --urls U1[,U2] --token T --doc D --observers 100 --writers 4
//        --window 4 --updates 2000
//     Observers and writers are spread round-robin over the URLs and all join document D.
//     Each writer owns a Yjs document and sends small typing updates (binary) with at most
//     --window acks outstanding; the ack's seq tags the update, observers note when each seq
//     reached them. Writers and observers share this process's clock (performance.now()).
//     --array sends each update as a JSON array of byte values (relayed as such) instead.
//     Prints {phase: 'start'} / {phase: 'end'} around the measured window, then the result.
//   node bench/docs_load.js join --urls U --token T --doc D --repeat 5 [--array]
//     Two clients (connected before any timing). A's first join of D (on a fresh daemon: the
//     document is cold), then B leaves and joins again --repeat times while A holds the
//     document (warm), then both leave (the daemon unloads it) and A joins and leaves
//     --repeat times (cold document, warm daemon). Each time: join emit -> state received.
//     --array asks for the state as a JSON array of byte values instead of binary.
//     --prewarm X: A first joins and leaves document X (timed too), so that D's first join
//     no longer pays what any first join on a fresh daemon pays.
'use strict';

const Y = require('yjs');
const { createOutput, connectMany, percentiles } = require('./loadgen');
const { parseArgs } = require('node:util');

const { positionals, values: opt } = parseArgs({
  allowPositionals: true,
  options: {
    urls: { type: 'string', default: 'http://127.0.0.1:7480' },
    token: { type: 'string', default: 'bench' },
    doc: { type: 'string', default: 'bench-doc' },
    observers: { type: 'string', default: '100' },
    writers: { type: 'string', default: '4' },
    window: { type: 'string', default: '4' },
    updates: { type: 'string', default: '2000' },
    repeat: { type: 'string', default: '5' },
    array: { type: 'boolean', default: false },
    prewarm: { type: 'string' },
    timeout: { type: 'string', default: '120' },
    concurrency: { type: 'string', default: '20' }, // handshakes in flight
  },
});
const mode = positionals[0];
const urls = opt.urls.split(',');
const deadline = performance.now() + Number(opt.timeout) * 1000;
const { out, serverErrors } = createOutput();
const connect = (n) => connectMany(
  Array.from({ length: n }, (_, i) => [urls[i % urls.length], opt.token]),
  { concurrency: Number(opt.concurrency), deadline, serverErrors },
);

// Join `doc` and resolve when its state arrived: {ms, state_bytes, ack}.
function join(s, doc, binary = true) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const timer = setTimeout(() => reject(new Error(`join ${doc}: no state in 60 s`)), 60000);
    const onState = (p) => {
      if (p.document_id !== doc) return;
      const ms = performance.now() - t0;
      s.off('ydoc:document:state', onState);
      clearTimeout(timer);
      const bytes = p.state.byteLength ?? p.state.length;
      resolve({ ms, state_bytes: bytes, binary: Buffer.isBuffer(p.state) });
    };
    s.on('ydoc:document:state', onState);
    s.timeout(60000).emitWithAck('ydoc:document:join', { document_id: doc, binary })
      .then((ack) => {
        if (!ack?.ok) {
          clearTimeout(timer);
          reject(new Error(`join refused: ${JSON.stringify(ack)}`));
        }
      }, reject);
  });
}

async function leave(s, doc) {
  const ack = await s.timeout(30000).emitWithAck('ydoc:document:leave', { document_id: doc });
  if (!ack?.ok) throw new Error(`leave refused: ${JSON.stringify(ack)}`);
}

// A writer's pre-made updates: typing at the end of its own text, now and then a backspace.
function typing(n, seed) {
  const doc = new Y.Doc();
  const text = doc.getText('t');
  const updates = [];
  let u = null;
  doc.on('update', (x) => { u = x; });
  let r = seed * 7919 + 1;
  const rnd = () => { r = (r * 1103515245 + 12345) % 2147483648; return r / 2147483648; };
  for (let i = 0; i < n; i += 1) {
    if (text.length > 2 && rnd() < 0.1) text.delete(text.length - 1, 1);
    else text.insert(text.length, 'abcdefghij '.slice(0, 1 + Math.floor(rnd() * 3)));
    updates.push(u);
  }
  return updates;
}

async function e2e() {
  const nObs = Number(opt.observers);
  const nWri = Number(opt.writers);
  const total = Number(opt.updates);
  const window = Number(opt.window);
  const doc = opt.doc;
  // writers first, so writer i is on urls[i % n]; observers after them, also round-robin
  const { sockets, failed, errors } = await connect(nWri + nObs);
  if (failed) throw new Error(`connect failed for ${failed}: ${JSON.stringify(errors)}`);
  const writers = sockets.slice(0, nWri);
  const observers = sockets.slice(nWri);
  const perWriter = Array.from({ length: nWri }, (_, i) =>
    Math.floor(total / nWri) + (i < total % nWri ? 1 : 0));
  const made = perWriter.map((n, i) => typing(n, i + 1)
    .map((u) => (opt.array ? Array.from(u) : u)));
  const updateBytes = made.flat().reduce((a, x) => a + (x.byteLength ?? x.length), 0);

  const recv = new Float64Array(nObs * (total + 1)); // recv[o * (total + 1) + seq]
  const sentAt = new Float64Array(total + 1);
  const ackMs = new Float64Array(total);
  let received = 0;
  let outOfRange = 0;
  let lastRecv = 0;
  let acked = 0;
  let ackErrors = {};
  let firstSend = 0;
  let done;
  const finished = new Promise((r) => { done = r; });
  const expected = total * nObs;
  observers.forEach((s, o) => {
    s.on('ydoc:document:update', (p) => {
      const now = performance.now();
      const seq = p.seq;
      if (seq >= 1 && seq <= total) recv[o * (total + 1) + seq] = now;
      else outOfRange += 1;
      received += 1;
      lastRecv = now;
      if (received >= expected) done();
    });
  });
  for (const s of sockets) await join(s, doc);
  // a bare round trip to writer 0's daemon (heartbeat ack), for scale
  const rtt = new Float64Array(200);
  for (let i = 0; i < rtt.length; i += 1) {
    const t = performance.now();
    await writers[0].timeout(10000).emitWithAck('heartbeat', {});
    rtt[i] = performance.now() - t;
  }
  const bare = percentiles(rtt, rtt.length);

  out({ phase: 'start' });
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  firstSend = t0;
  let idleTimer = null;
  const armIdle = () => {
    clearTimeout(idleTimer);
    idleTimer = setTimeout(done, 5000); // nothing for 5 s: report what arrived
  };
  armIdle();
  const writerDone = writers.map((s, w) => new Promise((resolve) => {
    let next = 0;
    let inFlight = 0;
    const pump = () => {
      while (inFlight < window && next < made[w].length) {
        const update = made[w][next];
        next += 1;
        inFlight += 1;
        const t = performance.now();
        s.timeout(30000).emitWithAck('ydoc:document:update', { document_id: doc, update })
          .then((ack) => {
            const now = performance.now();
            if (ack?.ok && ack.seq >= 1 && ack.seq <= total) {
              sentAt[ack.seq] = t;
              ackMs[acked] = now - t;
              acked += 1;
            } else {
              const why = ack?.error?.code || JSON.stringify(ack);
              ackErrors[why] = (ackErrors[why] || 0) + 1;
            }
          }, (err) => {
            ackErrors[String(err)] = (ackErrors[String(err)] || 0) + 1;
          })
          .finally(() => {
            inFlight -= 1;
            armIdle();
            if (next >= made[w].length && inFlight === 0) resolve();
            else pump();
          });
      }
    };
    pump();
  }));
  await Promise.all(writerDone);
  const ackedAt = performance.now();
  await finished;
  clearTimeout(idleTimer);
  out({ phase: 'end' });
  const cpu = process.cpuUsage(cpu0);
  const lat = new Float64Array(expected);
  const byUrl = urls.map(() => ({ lat: new Float64Array(expected), n: 0 }));
  let n = 0;
  let missing = 0;
  for (let o = 0; o < nObs; o += 1) {
    const mine = byUrl[(nWri + o) % urls.length]; // observer o is socket nWri + o
    for (let seq = 1; seq <= total; seq += 1) {
      const r = recv[o * (total + 1) + seq];
      if (r && sentAt[seq]) {
        lat[n] = r - sentAt[seq];
        mine.lat[mine.n] = lat[n];
        mine.n += 1;
        n += 1;
      } else missing += 1;
    }
  }
  const wall = (lastRecv - firstSend) / 1000;
  const prop = percentiles(lat, n);
  const acks = percentiles(ackMs, acked);
  out({
    observers: nObs, writers: nWri, window, updates: total, acked, ack_errors: ackErrors,
    update_bytes: updateBytes, received, expected, missing, out_of_range: outOfRange,
    wall_s: wall, acked_s: (ackedAt - t0) / 1000,
    updates_per_s: acked / wall, deliveries_per_s: received / wall,
    p50_ms: prop.p50_ms, p99_ms: prop.p99_ms, max_ms: prop.max_ms,
    ack_p50_ms: acks.p50_ms, ack_p99_ms: acks.p99_ms,
    rtt_p50_ms: bare.p50_ms, rtt_p99_ms: bare.p99_ms,
    by_url: byUrl.map((u) => percentiles(u.lat, u.n)), // observers on urls[i]
    client_cpu_s: (cpu.user + cpu.system) / 1e6,
    client_util: (cpu.user + cpu.system) / 1e6 / ((performance.now() - t0) / 1000),
  });
  for (const s of sockets) s.close();
}

async function joins() {
  const doc = opt.doc;
  const repeat = Number(opt.repeat);
  const binary = !opt.array;
  const { sockets, failed, errors } = await connect(2);
  if (failed) throw new Error(`connect failed: ${JSON.stringify(errors)}`);
  const [a, b] = sockets;
  let prewarmMs = null;
  if (opt.prewarm) {
    prewarmMs = (await join(a, opt.prewarm, binary)).ms;
    await leave(a, opt.prewarm);
  }
  const first = await join(a, doc, binary);
  const warm = [];
  for (let i = 0; i < repeat; i += 1) {
    const r = await join(b, doc, binary);
    warm.push(r.ms);
    await leave(b, doc);
  }
  await leave(a, doc); // nobody left in it: the daemon drops its copy
  const cold = [];
  for (let i = 0; i < repeat; i += 1) {
    const r = await join(a, doc, binary);
    cold.push(r.ms);
    await leave(a, doc);
  }
  out({
    first_ms: first.ms, state_bytes: first.state_bytes, binary: first.binary, prewarm_ms: prewarmMs,
    warm_ms: warm, cold_again_ms: cold,
  });
  for (const s of sockets) s.close();
}

const modes = { e2e, join: joins };
if (!modes[mode]) {
  process.stderr.write(`usage: node bench/docs_load.js e2e|join [options]\n`);
  process.exit(2);
}
modes[mode]().then(() => process.exit(0), (err) => {
  out({ error: String(err?.stack || err) });
  process.exit(1);
});
