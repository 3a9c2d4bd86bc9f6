// What the load generators (bench/clients.js, bench/redis_clients.js) share: connecting
// many Socket.IO clients, joining them to a channel, the fan-out measurement, percentiles.
'use strict';

const { io } = require('socket.io-client');

// JSON lines on stdout; results (not phase marks) carry the server's `error` events by code.
function createOutput() {
  const serverErrors = {}; // SPEC §4 `error` events by code, e.g. rate_limited
  const out = (obj) => {
    const errs = Object.keys(serverErrors).length ? { server_errors: serverErrors } : {};
    process.stdout.write(`${JSON.stringify({ ...obj, ...(obj.phase ? {} : errs) })}\n`);
  };
  return { out, serverErrors };
}

function connectOne(url, token, { serverErrors, deflate = false }) {
  return new Promise((resolve, reject) => {
    const s = io(url, {
      auth: { token },
      transports: ['websocket'],
      forceNew: true, // one TCP connection per client, no multiplexing
      reconnection: false,
      timeout: 20000,
      perMessageDeflate: deflate ? { threshold: 0 } : false,
    });
    s.on('error', (e) => {
      serverErrors[e?.code] = (serverErrors[e?.code] || 0) + 1;
    });
    s.once('connect', () => resolve(s));
    s.once('connect_error', (err) => {
      s.close();
      reject(err);
    });
  });
}

// Connects jobs[i] = [url, token] with at most `concurrency` handshakes in flight, until
// `deadline` (performance.now() ms); the sockets keep the jobs' order.
async function connectMany(jobs, { concurrency, deadline, ...options }) {
  const sockets = new Array(jobs.length).fill(null);
  const errors = {};
  let next = 0;
  async function worker() {
    while (next < jobs.length && performance.now() < deadline) {
      const i = next;
      next += 1;
      try {
        sockets[i] = await connectOne(...jobs[i], options);
      } catch (err) {
        errors[err.message] = (errors[err.message] || 0) + 1;
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, jobs.length) }, worker));
  const ok = sockets.filter(Boolean);
  return { sockets: ok, failed: jobs.length - ok.length, errors };
}

function percentiles(samples, count) {
  const a = samples.subarray(0, count).sort();
  const at = (q) => (count ? a[Math.min(count - 1, Math.floor(q * count))] : null);
  return { p50_ms: at(0.5), p99_ms: at(0.99), max_ms: count ? a[count - 1] : null };
}

// Every socket joins `channel`, at most `inFlight` joins waiting for their ack at a time.
async function joinAll(sockets, inFlight, channel = 'bench') {
  const errors = {};
  let failed = 0;
  for (let i = 0; i < sockets.length; i += inFlight) {
    const acks = await Promise.allSettled(
      sockets
        .slice(i, i + inFlight)
        .map((s) => s.timeout(10000).emitWithAck('channel:join', { channel_id: channel })),
    );
    for (const a of acks) {
      if (a.status !== 'fulfilled' || a.value?.ok !== true) {
        failed += 1;
        const why = a.status === 'fulfilled' ? a.value?.error?.code : String(a.reason);
        errors[why] = (errors[why] || 0) + 1;
      }
    }
  }
  return { failed, errors };
}

// sockets[0] sends `messages` events:channel messages to `channel`, which `members` of the
// sockets joined. At most `window` messages are outstanding, where a message is outstanding
// until every member has received it. Prints the start and end phase marks around it.
async function measureFanout(sockets, { members, messages, window, deadline, out,
                                        channel = 'bench', body = 'x'.repeat(100) }) {
  const lat = new Float64Array(sockets.length * messages);
  const got = new Uint32Array(messages);
  let received = 0;
  let badUser = 0;
  let sent = 0;
  let done = 0;
  let first = 0;
  let last = 0;
  let finish;
  const finished = new Promise((r) => {
    finish = r;
  });
  const pump = () => {
    while (sent - done < window && sent < messages) {
      if (sent === 0) first = performance.now();
      sockets[0].emit('events:channel', {
        channel_id: channel,
        data: { type: 'bench', data: { seq: sent, t: performance.now(), body } },
      });
      sent += 1;
    }
  };
  for (const s of sockets) {
    s.on('events:channel', (p) => {
      const now = performance.now();
      const m = p.data.data;
      if (received < lat.length) lat[received] = now - m.t;
      received += 1;
      if (typeof p.user?.id !== 'string') badUser += 1;
      last = now;
      got[m.seq] += 1;
      if (got[m.seq] === members) {
        done += 1;
        if (done === messages) finish();
        else pump();
      }
    });
  }
  const cpu0 = process.cpuUsage();
  out({ phase: 'start' });
  const timer = setTimeout(finish, Math.max(0, deadline - performance.now()));
  pump();
  await finished;
  clearTimeout(timer);
  out({ phase: 'end' });
  const cpu = process.cpuUsage(cpu0);
  const wall = (last - first) / 1000;
  return {
    messages, window, sent, expected: members * messages, received, bad_user: badUser,
    wall_s: wall, deliveries_per_s: wall > 0 ? received / wall : 0,
    client_cpu_s: (cpu.user + cpu.system) / 1e6, ...percentiles(lat, Math.min(received, lat.length)),
  };
}

module.exports = { createOutput, connectOne, connectMany, percentiles, joinAll, measureFanout };
