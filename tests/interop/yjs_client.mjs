// A Yjs client as a browser editor would be (socket.io-client + yjs), for end-to-end
// tests of the hub's collaborative documents. It joins one document, makes seeded
// random edits (each its own transaction, sent as it happens), optionally goes offline
// for more edits and syncs them back with y-protocols step 1 / step 2, waits for the
// other clients to go quiet, and prints ONE JSON line:
//
//   {text, meta, state, state_vector, acked, seqs, sync_seqs, errors, refused, client_id,
//    sent, offline, pending}
//
// text: doc.getText('content').toString(); meta: doc.getMap('meta').toJSON();
// state / state_vector: base64 of Y.encodeStateAsUpdate(doc) / Y.encodeStateVector(doc);
// acked: ydoc:document:update events the server acknowledged with {ok: true} (seqs: the
// seq of each, in ack order; sent: how many were sent); sync_seqs: seqs the server gave
// the sync step 2 messages answering its step 1 (a step 2 carries the whole delete set,
// so it is sent, and may be stored, even when nothing is new); offline: edits made while
// disconnected (pushed by such a step 2); errors: every `error` event {event, code,
// message}; refused: every ack {ok: false}, as {event, code, message}; pending: true
// when yjs holds updates back because what they build on never arrived (then `state`
// lacks them).
//
//   node tests/interop/yjs_client.mjs --url URL --token TOKEN --doc ID [options]
//
//   --edits N            random edits while online (default 0)
//   --interval-ms MS     pause between edits (default 0)
//   --form json|binary   updates and sync messages as arrays of byte values, or as
//                        binary attachments (default json)
//   --seed S             seed of the edit generator (default 1)
//   --client-id N        the Yjs clientID (default: random, as Yjs picks it)
//   --sync               join with y-protocols sync (step 1 -> step 2) instead of
//                        waiting for ydoc:document:state
//   --offline-edits K    then disconnect, make K edits, reconnect and sync them back
//   --wait-quiet-ms MS   at the end, wait until no remote update arrived for MS (default 0)
//   --state-timeout-ms   how long to wait for the state / a sync reply (default 10000)
//   --timeout-ms MS      give up on the whole run after MS (default 120000)
//   --fail-on-error      exit 1 on an `error` event or a refused ack too (by default
//                        they are only reported)
//
// Exit status: 0 with the JSON line; 1 on a protocol error (no state in time, an ack
// that never came, a malformed payload, a refused connection, an unexpected
// disconnect), message on stderr; 2 on bad arguments.
import { io } from "socket.io-client";
import * as Y from "yjs";
import {
  ProtocolError, STEP1, STEP2, UPDATE, answerStep1, b64, parseCli, readSyncMessage, rng, sleep,
  syncMessage, toBytes,
} from "./common.mjs";

// JSON.stringify replacer for what yjs values may hold (as rtctl.docs.export renders them):
// a BigInt as a number, binary as base64.
const jsonSafe = (_key, v) => (typeof v === "bigint" ? Number(v)
  : v instanceof Uint8Array ? Buffer.from(v).toString("base64") : v);

const REMOTE = "remote";

const USAGE = "usage: yjs_client.mjs --url URL --token TOKEN --doc ID [--edits N] [--interval-ms MS]"
  + " [--form json|binary] [--seed S] [--client-id N] [--sync] [--offline-edits K]"
  + " [--wait-quiet-ms MS] [--state-timeout-ms MS] [--timeout-ms MS] [--fail-on-error]";

function parseOptions(argv) {
  const { values, int, usage } = parseCli(argv, {
    url: { type: "string" },
    token: { type: "string", default: "" },
    doc: { type: "string" },
    edits: { type: "string", default: "0" },
    "interval-ms": { type: "string", default: "0" },
    form: { type: "string", default: "json" },
    seed: { type: "string", default: "1" },
    "client-id": { type: "string" },
    sync: { type: "boolean", default: false },
    "offline-edits": { type: "string", default: "0" },
    "wait-quiet-ms": { type: "string", default: "0" },
    "state-timeout-ms": { type: "string", default: "10000" },
    "timeout-ms": { type: "string", default: "120000" },
    "fail-on-error": { type: "boolean", default: false },
  }, USAGE, "yjs_client");
  if (!values.url) usage("--url is required");
  if (!values.doc) usage("--doc is required");
  if (!["json", "binary"].includes(values.form)) usage("--form is json or binary");
  const clientId = values["client-id"] === undefined ? null : int("client-id", 1);
  if (clientId !== null && clientId >= 2 ** 53) usage("--client-id is too large");
  return {
    url: values.url,
    token: values.token,
    doc: values.doc,
    edits: int("edits"),
    intervalMs: int("interval-ms"),
    form: values.form,
    seed: int("seed", -(2 ** 31)),
    clientId,
    sync: values.sync,
    offlineEdits: int("offline-edits"),
    waitQuietMs: int("wait-quiet-ms"),
    stateTimeoutMs: int("state-timeout-ms", 1),
    timeoutMs: int("timeout-ms", 1),
    failOnError: values["fail-on-error"],
  };
}

const opt = parseOptions(process.argv.slice(2));

// -- plumbing --------------------------------------------------------------------------


let socket = null;
let finished = false;

function fail(message) {
  if (finished) return;
  finished = true;
  process.stderr.write(`yjs_client: ${message}\n`);
  if (errors.length) process.stderr.write(`yjs_client: errors seen: ${JSON.stringify(errors)}\n`);
  try {
    socket?.close();
  } catch {
    // closing is best effort on the way out
  }
  process.exit(1);
}

const lifetime = setTimeout(() => fail(`timed out after ${opt.timeoutMs} ms`), opt.timeoutMs);
process.on("uncaughtException", (err) => fail(`internal error: ${err?.stack ?? err}`));
process.on("unhandledRejection", (err) => fail(err instanceof ProtocolError ? err.message
  : `internal error: ${err?.stack ?? err}`));


const outgoing = (u8) => (opt.form === "binary" ? u8 : Array.from(u8));


// -- the document ----------------------------------------------------------------------

const doc = new Y.Doc();
if (opt.clientId !== null) doc.clientID = opt.clientId;
const text = doc.getText("content");
const meta = doc.getMap("meta");

const errors = []; // `error` events
const refused = []; // acks {ok: false} (the hub sends an `error` event for each as well)
const seqs = [];
const syncSeqs = [];
let acked = 0;
let sent = 0; // updates sent online (ydoc:document:update)
let pendingAcks = 0;
let online = false;
let lastRemoteAt = Date.now();
const offlineUpdates = []; // made while disconnected; pushed by the sync on reconnect

function noteError(entry) {
  errors.push(entry);
  if (opt.failOnError) fail(`server error: ${JSON.stringify(entry)}`);
}

// Emit with an ack; the ack must come within the state timeout.
function emitAcked(event, payload) {
  pendingAcks += 1;
  socket.timeout(opt.stateTimeoutMs).emit(event, payload, (err, ack) => {
    pendingAcks -= 1;
    if (err) {
      fail(`no ack for ${event} within ${opt.stateTimeoutMs} ms`);
      return;
    }
    if (ack === null || typeof ack !== "object" || typeof ack.ok !== "boolean") {
      fail(`malformed ack for ${event}: ${JSON.stringify(ack)}`);
      return;
    }
    if (ack.ok) {
      if (event === "ydoc:document:update") {
        // no seq: the server already had everything in the update, so stored nothing
        if (ack.seq !== undefined && !Number.isInteger(ack.seq)) fail(`ack for ${event} has a non-integer seq: ${JSON.stringify(ack)}`);
        acked += 1;
        if (ack.seq !== undefined) seqs.push(ack.seq);
      } else if (event === "ydoc:sync" && ack.seq !== undefined) {
        if (!Number.isInteger(ack.seq)) fail(`ack for ${event} has a non-integer seq: ${JSON.stringify(ack)}`);
        syncSeqs.push(ack.seq); // a step 2 answering the server's step 1 that it stored
      }
    } else {
      const entry = { event, code: ack.error?.code ?? null, message: ack.error?.message ?? null };
      refused.push(entry);
      if (opt.failOnError) fail(`refused: ${JSON.stringify(entry)}`);
    }
  });
}

doc.on("update", (update, origin) => {
  if (origin === REMOTE) return;
  if (!online) {
    offlineUpdates.push(update);
    return;
  }
  sent += 1;
  emitAcked("ydoc:document:update", { document_id: opt.doc, update: outgoing(update) });
});

function applyRemote(bytes, what) {
  try {
    Y.applyUpdate(doc, bytes, REMOTE);
  } catch (err) {
    throw new ProtocolError(`${what} does not apply: ${err.message}`);
  }
}

const WORDS = ["a", "b", "cd", "efg", " ", "hello ", "world ", "é", "ß", "漢字", "\n", "xyz"];

function randomEdit(rand) {
  const r = rand();
  doc.transact(() => {
    if (r < 0.15) {
      meta.set(`k${Math.floor(rand() * 5)}`, Math.floor(rand() * 1000));
    } else if (r < 0.4 && text.length > 0) {
      const at = Math.floor(rand() * text.length);
      text.delete(at, Math.min(1 + Math.floor(rand() * 3), text.length - at));
    } else {
      const word = WORDS[Math.floor(rand() * WORDS.length)];
      text.insert(Math.floor(rand() * (text.length + 1)), word);
    }
  });
}

// -- the connection --------------------------------------------------------------------

// What the current connection still waits for before the document is in sync.
let waiting = null; // {needState, needStep2, needServerStep1, resolve, timer}

function settle() {
  if (waiting && !waiting.needState && !waiting.needStep2 && !waiting.needServerStep1) {
    clearTimeout(waiting.timer);
    const { resolve } = waiting;
    waiting = null;
    resolve();
  }
}

// Join the document and wait until in sync: by its state (plain join), or by sync step 2
// (--sync, and always after a reconnect, which also needs the server's step 1 so that
// offline edits go back in the step 2 that answers it).
function joinAndSync({ viaSync, needServerStep1 }) {
  return new Promise((resolve) => {
    waiting = {
      needState: !viaSync,
      needStep2: viaSync,
      needServerStep1,
      resolve,
      timer: setTimeout(() => {
        const lacking = [];
        if (waiting?.needState) lacking.push("ydoc:document:state");
        if (waiting?.needStep2) lacking.push("sync step 2");
        if (waiting?.needServerStep1) lacking.push("the server's sync step 1");
        fail(`waited ${opt.stateTimeoutMs} ms for ${lacking.join(" and ")}; it did not come`);
      }, opt.stateTimeoutMs),
    };
    socket.timeout(opt.stateTimeoutMs).emit(
      "ydoc:document:join",
      { document_id: opt.doc, binary: opt.form === "binary" },
      (err, ack) => {
        if (err) fail(`no ack for ydoc:document:join within ${opt.stateTimeoutMs} ms`);
        else if (!ack?.ok) fail(`join refused: ${JSON.stringify(ack)}`);
      },
    );
    if (viaSync) {
      const step1 = syncMessage(STEP1, Y.encodeStateVector(doc));
      emitAcked("ydoc:sync", { document_id: opt.doc, message: outgoing(step1) });
    }
  });
}

function onState(payload) {
  if (payload?.document_id !== opt.doc) return;
  applyRemote(toBytes(payload.state, "ydoc:document:state state"), "the document state");
  lastRemoteAt = Date.now();
  if (waiting) {
    waiting.needState = false;
    settle();
  }
}

function onUpdate(payload) {
  if (payload?.document_id !== opt.doc) return;
  applyRemote(toBytes(payload.update, "ydoc:document:update update"), "a remote update");
  lastRemoteAt = Date.now();
}

function onSync(payload) {
  if (payload?.document_id !== opt.doc) return;
  const { kind, body } = readSyncMessage(payload.message);
  if (kind === STEP1) {
    emitAcked("ydoc:sync", { document_id: opt.doc, message: outgoing(answerStep1(doc, body)) });
    if (waiting) {
      waiting.needServerStep1 = false;
      settle();
    }
  } else if (kind === STEP2 || kind === UPDATE) {
    applyRemote(body, kind === STEP2 ? "sync step 2" : "a sync update");
    lastRemoteAt = Date.now();
    if (kind === STEP2 && waiting) {
      waiting.needStep2 = false;
      settle();
    }
  } else {
    throw new ProtocolError(`unknown ydoc:sync message type ${kind}`);
  }
}

// Handlers run inside socket.io's event dispatch: turn a ProtocolError into exit 1.
const guarded = (f) => (payload) => {
  try {
    f(payload);
  } catch (err) {
    fail(err instanceof ProtocolError ? err.message : `internal error: ${err?.stack ?? err}`);
  }
};

function connect() {
  return new Promise((resolve) => {
    const onConnect = () => {
      socket.off("connect_error", onConnectError);
      online = true;
      resolve();
    };
    const onConnectError = (err) => {
      fail(`connect_error: ${err.message}${err.data ? ` ${JSON.stringify(err.data)}` : ""}`);
    };
    socket.once("connect", onConnect);
    socket.once("connect_error", onConnectError);
    socket.connect();
  });
}

async function main() {
  const rand = rng(opt.seed);
  socket = io(opt.url, {
    auth: { token: opt.token },
    transports: ["websocket"],
    reconnection: false,
    autoConnect: false,
    timeout: opt.stateTimeoutMs,
  });
  socket.on("ydoc:document:state", guarded(onState));
  socket.on("ydoc:document:update", guarded(onUpdate));
  socket.on("ydoc:sync", guarded(onSync));
  socket.on("error", (data) => {
    noteError({ event: data?.event ?? null, code: data?.code ?? null, message: data?.message ?? null });
  });
  socket.on("disconnect", (reason) => {
    online = false;
    if (reason !== "io client disconnect" && !finished) {
      fail(`disconnected by the server or the network: ${reason}`);
    }
  });

  await connect();
  await joinAndSync({ viaSync: opt.sync, needServerStep1: false });

  for (let i = 0; i < opt.edits; i++) {
    if (i > 0 && opt.intervalMs) await sleep(opt.intervalMs);
    randomEdit(rand);
  }

  if (opt.offlineEdits > 0) {
    await waitForAcks(); // what was sent online is the server's before going away
    online = false; // from here edits queue up instead of being emitted (and buffered)
    socket.disconnect();
    for (let i = 0; i < opt.offlineEdits; i++) randomEdit(rand);
    await connect();
    await joinAndSync({ viaSync: true, needServerStep1: true });
  }

  await waitForAcks();
  // a quiet period: --wait-quiet-ms in a row, from now on, with no remote update
  const quietFrom = Date.now();
  while (opt.waitQuietMs > 0 && Date.now() - Math.max(lastRemoteAt, quietFrom) < opt.waitQuietMs) {
    await sleep(Math.min(50, opt.waitQuietMs));
  }
  await waitForAcks();
  finish();
}

async function waitForAcks() {
  while (pendingAcks > 0) await sleep(5); // each ack has its own timeout
}

function finish() {
  if (finished) return;
  finished = true;
  clearTimeout(lifetime);
  socket.close();
  const line = {
    text: text.toString(),
    meta: meta.toJSON(),
    state: b64(Y.encodeStateAsUpdate(doc)),
    state_vector: b64(Y.encodeStateVector(doc)),
    acked,
    seqs,
    sync_seqs: syncSeqs,
    errors,
    refused,
    client_id: doc.clientID,
    sent,
    offline: offlineUpdates.length,
    // structs or deletions yjs holds back because what they build on never arrived
    pending: doc.store.pendingStructs !== null || doc.store.pendingDs !== null,
  };
  process.stdout.write(JSON.stringify(line, jsonSafe) + "\n", () => process.exit(0));
}

main().catch((err) => fail(err instanceof ProtocolError ? err.message : `internal error: ${err?.stack ?? err}`));
