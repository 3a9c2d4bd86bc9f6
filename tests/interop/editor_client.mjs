// A Yjs note editor as a browser would run it (socket.io-client + yjs), for end-to-end
// fault tests of the hub: it survives disconnects and a slow hub (socket.io-client
// reconnects by itself), keeps typing while offline, and makes edits that can each be
// found in the final text. Two shapes:
//
//   owui  Open WebUI's note editor provider, SocketIOCollaborationProvider in
//         src/lib/components/common/RichTextInput/Collaboration.ts (open-webui commit
//         65ebc7c732c2c9bd04e3ddbcd7ef068a99d25af1), its socket logic unchanged, with a
//         fake editor where it uses tiptap: join without an ack; remote updates applied
//         with no origin (so echoed back, as Open WebUI does); an empty state ([0,0])
//         answered with the whole document (binary), else applied with origin 'server';
//         each local update sent after a tick, as an array of byte values, without an
//         ack, and only while connected: edits made offline are never sent on their
//         own (they reach the hub only if it asks for them, by an empty state).
//   sync  a y-protocols provider over Socket.IO: on every (re)connect it joins (with
//         an ack) and sends sync step 1; answers the server's step 1 with step 2;
//         applies step 2 / updates / states / relayed updates with origin 'remote';
//         sends each local update while connected as binary, with an ack.
//
// The document is doc.getXmlFragment('prosemirror'): paragraphs (Y.XmlElement
// 'paragraph'), each with a Y.XmlText. Its text is every XmlText's string in order,
// paragraphs joined with "\n". Edit i inserts the marker `<tag><i>;` (e.g. `a17;`) into
// the first paragraph's XmlText at 0 or right after a ';' (seeded), so no marker is ever
// split; with no paragraph yet, the same transaction creates one. Each edit is its own
// transaction; edits go on on schedule whether connected or not.
//
// At the end (after the last edit) it waits until it is connected and in sync (owui:
// it got ydoc:document:state since it last connected; sync: it got step 2 since it last
// connected and has no ack outstanding) and no remote update / state / sync message came
// for --wait-quiet-ms, then prints ONE JSON line:
//
//   {shape, tag, text, markers, state, state_vector, client_id, connects, disconnects,
//    errors, refused, ack_timeouts, acked, sent, pending}
//
// markers: every marker this client made; state / state_vector: base64 of
// Y.encodeStateAsUpdate(doc) / Y.encodeStateVector(doc); connects: how many times it
// connected; disconnects: the reason of each disconnect, in order; errors: every `error`
// event {event, code, message}; refused: every ack {ok: false} as {event, code, message}
// (sync); ack_timeouts: acks that never came (timed out, or lost to a disconnect: sync);
// acked: ydoc:document:update acks {ok: true} (sync); sent: ydoc:document:update events
// emitted (owui: the per-update ones and whole-document answers to an empty state);
// pending: yjs holds updates back because what they build on never arrived.
//
//   node tests/interop/editor_client.mjs --shape owui|sync --url URL --token TOKEN --doc ID [options]
//
//   --shape owui|sync           which client (required)
//   --path P                    Socket.IO path (default /socket.io)
//   --reconnection-delay-ms MS  socket.io-client reconnectionDelay (default 1000, as Open
//                               WebUI; reconnectionDelayMax stays 5000)
//   --edits N                   edits to make (default 0)
//   --interval-ms MS            pause between edits; 0: a burst (default 0)
//   --start-delay-ms MS         pause before the first edit (default 0)
//   --tag T                     marker prefix: letters, digits, '_' or '-', not ending in
//                               a digit (default m)
//   --seed S                    seed of the edit positions (default 1)
//   --client-id N               the Yjs clientID (default: random, as Yjs picks it)
//   --initial-content TEXT      owui: the note's initial content, set when the hub's state
//                               is empty, the editor is empty and this is the only session
//                               (lines become paragraphs; default none)
//   --awareness                 owui: run Open WebUI's SimpleAwareness (JSON bytes) and
//                               emit ydoc:awareness:update as it does (default off)
//   --user-id ID, --user-name N owui: what the join claims (the hub goes by the token)
//   --ack-timeout-ms MS         sync: how long an ack may take (default 30000)
//   --max-connect-errors N      exit 1 after N connect_error in a row (default 20)
//   --reconnect-after-server-disconnect
//                               call socket.connect() again (after the reconnection delay)
//                               when the server disconnected the socket ("io server
//                               disconnect") or refused its connection: socket.io-client
//                               does not reconnect by itself then, nor does Open WebUI.
//                               Without it, such a client fails at the end instead of
//                               waiting forever (default off)
//   --wait-quiet-ms MS          quiet period at the end (default 3000)
//   --timeout-ms MS             give up on the whole run after MS (default 180000)
//
// Exit status: 0 with the JSON line; 1 on a failure (timed out, --max-connect-errors
// reached, left disconnected by the server, a malformed sync message), message on stderr;
// 2 on bad arguments. A disconnect is never a failure by itself.
import { io } from "socket.io-client";
import * as Y from "yjs";
import {
  ProtocolError, STEP1, STEP2, UPDATE, answerStep1, b64, parseCli, readSyncMessage, rng, sleep,
  syncMessage, toBytes,
} from "./common.mjs";

const REMOTE = "remote"; // sync: origin of what came from the hub
const SERVER = "server"; // owui: origin Open WebUI gives the state it applies

const USAGE = "usage: editor_client.mjs --shape owui|sync --url URL --token TOKEN --doc ID"
  + " [--path P] [--reconnection-delay-ms MS] [--edits N] [--interval-ms MS]"
  + " [--start-delay-ms MS] [--tag T] [--seed S] [--client-id N] [--initial-content TEXT]"
  + " [--awareness] [--user-id ID] [--user-name NAME] [--ack-timeout-ms MS]"
  + " [--max-connect-errors N] [--reconnect-after-server-disconnect] [--wait-quiet-ms MS]"
  + " [--timeout-ms MS]";

function parseOptions(argv) {
  const { values, int, usage } = parseCli(argv, {
    shape: { type: "string" },
    url: { type: "string" },
    token: { type: "string" },
    doc: { type: "string" },
    path: { type: "string", default: "/socket.io" },
    "reconnection-delay-ms": { type: "string", default: "1000" },
    edits: { type: "string", default: "0" },
    "interval-ms": { type: "string", default: "0" },
    "start-delay-ms": { type: "string", default: "0" },
    tag: { type: "string", default: "m" },
    seed: { type: "string", default: "1" },
    "client-id": { type: "string" },
    "initial-content": { type: "string" },
    awareness: { type: "boolean", default: false },
    "user-id": { type: "string", default: "editor" },
    "user-name": { type: "string", default: "Editor" },
    "ack-timeout-ms": { type: "string", default: "30000" },
    "max-connect-errors": { type: "string", default: "20" },
    "reconnect-after-server-disconnect": { type: "boolean", default: false },
    "wait-quiet-ms": { type: "string", default: "3000" },
    "timeout-ms": { type: "string", default: "180000" },
  }, USAGE, "editor_client");
  if (!["owui", "sync"].includes(values.shape)) usage("--shape is owui or sync");
  if (!values.url) usage("--url is required");
  if (values.token === undefined) usage("--token is required");
  if (!values.doc) usage("--doc is required");
  if (!values.path.startsWith("/")) usage("--path must start with '/'");
  // no ';' (the marker's end) and no trailing digit (where the tag ends and the index
  // begins): a marker reads back unambiguously
  if (!/^[A-Za-z0-9_-]*[A-Za-z_-]$/.test(values.tag)) {
    usage("--tag is letters, digits, '_' or '-', and does not end in a digit");
  }
  const clientId = values["client-id"] === undefined ? null : int("client-id", 1);
  if (clientId !== null && clientId >= 2 ** 53) usage("--client-id is too large");
  if (values.shape === "sync" && values.awareness) usage("--awareness is for --shape owui");
  if (values.shape === "sync" && values["initial-content"] !== undefined) {
    usage("--initial-content is for --shape owui");
  }
  return {
    shape: values.shape,
    url: values.url,
    token: values.token,
    doc: values.doc,
    path: values.path,
    reconnectionDelayMs: int("reconnection-delay-ms", 1),
    edits: int("edits"),
    intervalMs: int("interval-ms"),
    startDelayMs: int("start-delay-ms"),
    tag: values.tag,
    seed: int("seed", -(2 ** 31)),
    clientId,
    initialContent: values["initial-content"] ?? null,
    awareness: values.awareness,
    userId: values["user-id"],
    userName: values["user-name"],
    ackTimeoutMs: int("ack-timeout-ms", 1),
    maxConnectErrors: int("max-connect-errors", 1),
    reconnectAfterServer: values["reconnect-after-server-disconnect"],
    waitQuietMs: int("wait-quiet-ms"),
    timeoutMs: int("timeout-ms", 1),
  };
}

const opt = parseOptions(process.argv.slice(2));

// -- plumbing --------------------------------------------------------------------------


let socket = null;
let finished = false;

const errors = []; // `error` events {event, code, message}
const refused = []; // acks {ok: false} (sync)
const disconnects = []; // reasons
const markers = [];
let connects = 0;
let connectErrors = 0; // in a row
let ackTimeouts = 0;
let acked = 0;
let sent = 0;
let lastRemoteAt = 0;

function fail(message) {
  if (finished) return;
  finished = true;
  process.stderr.write(`editor_client: ${message}\n`);
  if (errors.length) process.stderr.write(`editor_client: errors seen: ${JSON.stringify(errors)}\n`);
  try {
    socket?.close();
  } catch {
    // closing is best effort on the way out
  }
  process.exit(1);
}

const lifetime = setTimeout(() => fail(`timed out after ${opt.timeoutMs} ms (${whereWeAre()})`),
  opt.timeoutMs);
process.on("uncaughtException", (err) => fail(err instanceof ProtocolError ? err.message
  : `internal error: ${err?.stack ?? err}`));
process.on("unhandledRejection", (err) => fail(err instanceof ProtocolError ? err.message
  : `internal error: ${err?.stack ?? err}`));

const warn = (message) => process.stderr.write(`editor_client: ${message}\n`);


function noteError(data) {
  errors.push({ event: data?.event ?? null, code: data?.code ?? null, message: data?.message ?? null });
}

// -- the document ----------------------------------------------------------------------

const doc = new Y.Doc();
if (opt.clientId !== null) doc.clientID = opt.clientId;
const fragment = doc.getXmlFragment("prosemirror");

const plain = (xmlText) => xmlText.toDelta()
  .map((d) => (typeof d.insert === "string" ? d.insert : "")).join("");

function nodeText(node) {
  if (node instanceof Y.XmlText) return plain(node);
  if (node instanceof Y.XmlElement) return node.toArray().map(nodeText).join("");
  return "";
}

// The editor's text: every XmlText's string in order, paragraphs joined with "\n".
const editorText = () => fragment.toArray().map(nodeText).join("\n");

function firstParagraph() {
  for (const child of fragment.toArray()) {
    if (child instanceof Y.XmlElement && child.nodeName === "paragraph") return child;
  }
  return null;
}

function makeEdit(i, rand) {
  const marker = `${opt.tag}${i};`;
  markers.push(marker);
  doc.transact(() => {
    let paragraph = firstParagraph();
    if (paragraph === null) {
      paragraph = new Y.XmlElement("paragraph");
      fragment.insert(fragment.length, [paragraph]);
    }
    let xmlText = paragraph.toArray().find((c) => c instanceof Y.XmlText);
    if (xmlText === undefined) {
      xmlText = new Y.XmlText();
      paragraph.insert(0, [xmlText]);
    }
    const s = plain(xmlText);
    const at = [0];
    for (let k = 0; k < s.length; k++) if (s[k] === ";") at.push(k + 1);
    xmlText.insert(at[Math.floor(rand() * at.length)], marker);
  });
}

// -- the socket (as Open WebUI's +layout.svelte makes it) ------------------------------

function makeSocket() {
  return io(opt.url, {
    reconnection: true,
    reconnectionDelay: opt.reconnectionDelayMs,
    reconnectionDelayMax: 5000,
    randomizationFactor: 0.5,
    path: opt.path,
    transports: ["websocket"],
    auth: { token: opt.token },
  });
}

let lastServerClose = null; // why socket.io-client will not reconnect by itself, if so

function watchConnection() {
  socket.on("connect", () => {
    connects += 1;
    connectErrors = 0;
    lastServerClose = null;
  });
  socket.on("disconnect", (reason) => {
    if (finished) return; // our own close at the end
    disconnects.push(reason);
    if (reason === "io server disconnect") serverClosed(`disconnected by the server (${reason})`);
  });
  socket.on("connect_error", (err) => {
    connectErrors += 1;
    const detail = `${err.message}${err.data ? ` ${JSON.stringify(err.data)}` : ""}`;
    if (connectErrors >= opt.maxConnectErrors) {
      fail(`${connectErrors} connect_error in a row, the last: ${detail}`);
      return;
    }
    if (!socket.active) serverClosed(`connection refused by the server: ${detail}`);
  });
  socket.on("error", noteError);
}

// The server ended the session (or refused it): socket.io-client leaves it at that.
function serverClosed(why) {
  if (!opt.reconnectAfterServer) {
    lastServerClose = why;
    return;
  }
  setTimeout(() => {
    if (!finished && !socket.connected && !socket.active) socket.connect();
  }, opt.reconnectionDelayMs);
}

// -- owui: Open WebUI's SocketIOCollaborationProvider ----------------------------------

const USER_COLORS = ["#FF6B6B", "#4ECDC4", "#45B7D1", "#96CEB4", "#FFEAA7", "#DDA0DD",
  "#98D8C8", "#F7DC6F", "#BB8FCE", "#85C1E9"];
const generateUserColor = () => USER_COLORS[Math.floor(Math.random() * USER_COLORS.length)];

// Open WebUI's SimpleAwareness: states as JSON text bytes (not y-protocols awareness).
class SimpleAwareness {
  constructor(ydoc) {
    this.doc = ydoc;
    this.clientID = ydoc.clientID ? ydoc.clientID : Math.floor(Math.random() * 0xffffffff);
    this._states = new Map();
    this._updateHandlers = [];
    this._localState = {};
    this._states.set(this.clientID, this._localState);
  }

  on(event, handler) {
    if (event === "change") this._updateHandlers.push(handler);
  }

  setLocalStateField(field, value) {
    let localState = this._states.get(this.clientID);
    if (!localState) {
      localState = {};
      this._states.set(this.clientID, localState);
    }
    localState[field] = value;
    for (const cb of this._updateHandlers) {
      cb({ added: [], updated: [this.clientID], removed: [] }, "local");
    }
  }

  applyUpdate(update, origin) {
    try {
      const obj = JSON.parse(new TextDecoder().decode(update));
      for (const [k, v] of Object.entries(obj)) this._states.set(+k, v);
      for (const cb of this._updateHandlers) {
        cb({ added: [], updated: Array.from(Object.keys(obj)).map(Number), removed: [] }, origin);
      }
    } catch (e) {
      warn(`SimpleAwareness: could not decode update: ${e.message}`);
    }
  }

  encodeUpdate(clients) {
    const obj = {};
    for (const id of clients || Array.from(this._states.keys())) {
      const st = this._states.get(id);
      if (st) obj[id] = st;
    }
    return new TextEncoder().encode(JSON.stringify(obj));
  }
}

const owui = { isConnected: false, synced: false };

function setupOwui() {
  const documentId = opt.doc;
  const user = { id: opt.userId, name: opt.userName };
  const awareness = opt.awareness ? new SimpleAwareness(doc) : null;
  // the fake editor: its text is the document's (tiptap's is, through ySyncPlugin)
  const editorContentGetter = () => ({ md: editorText(), html: "", json: "" });

  const joinDocument = () => {
    const userColor = generateUserColor();
    socket.emit("ydoc:document:join", {
      document_id: documentId,
      user_id: user.id,
      user_name: user.name,
      user_color: userColor,
    });
    if (awareness) {
      awareness.setLocalStateField("user", { name: `${user.name}`, color: userColor, id: socket.id });
    }
  };

  socket.on("ydoc:document:update", (data) => {
    if (data.document_id === documentId && data.socket_id !== socket.id) {
      lastRemoteAt = Date.now();
      try {
        Y.applyUpdate(doc, new Uint8Array(data.update)); // no origin: echoed back, as Open WebUI does
      } catch (error) {
        warn(`Error applying Yjs update: ${error?.message ?? error}`);
      }
    }
  });

  socket.on("ydoc:document:state", async (data) => {
    if (data.document_id === documentId) {
      lastRemoteAt = Date.now();
      try {
        if (data.state) {
          const state = new Uint8Array(data.state);
          if (state.length === 2 && state[0] === 0 && state[1] === 0) {
            const isEmptyEditor = !editorText().trim();
            if (isEmptyEditor) {
              if (opt.initialContent && (data?.sessions ?? [""]).length === 1) {
                setContent(opt.initialContent); // as editor.commands.setContent, through ySyncPlugin
              }
            } else if (fragment.length > 0) {
              sent += 1;
              socket.emit("ydoc:document:update", {
                document_id: documentId,
                user_id: user.id,
                socket_id: socket.id,
                update: Y.encodeStateAsUpdate(doc), // a Uint8Array: a binary attachment
              });
            } else {
              warn("Yjs document is empty, not sending state.");
            }
          } else {
            Y.applyUpdate(doc, state, SERVER);
          }
        }
        owui.synced = true;
      } catch (error) {
        warn(`Error applying Yjs state: ${error?.message ?? error}`);
        owui.synced = false;
        socket.emit("ydoc:document:state", { document_id: documentId });
      }
    }
  });

  if (awareness) {
    socket.on("ydoc:awareness:update", (data) => {
      if (data.document_id === documentId) {
        try {
          awareness.applyUpdate(new Uint8Array(data.update), SERVER);
        } catch (error) {
          warn(`Error applying awareness update: ${error?.message ?? error}`);
        }
      }
    });
  }

  const onConnect = () => {
    owui.isConnected = true;
    joinDocument();
  };
  const onDisconnect = () => {
    owui.isConnected = false;
    owui.synced = false;
  };
  socket.on("connect", onConnect);
  socket.on("disconnect", onDisconnect);

  doc.on("update", async (update, origin) => {
    if (origin !== SERVER && owui.isConnected) {
      await Promise.resolve(); // svelte's tick()
      sent += 1;
      socket.emit("ydoc:document:update", {
        document_id: documentId,
        user_id: user.id,
        socket_id: socket.id,
        update: Array.from(update),
        data: { content: editorContentGetter() },
      });
    }
  });

  if (awareness) {
    awareness.on("change", ({ added, updated, removed }, origin) => {
      if (origin !== SERVER && owui.isConnected) {
        const changedClients = added.concat(updated).concat(removed);
        socket.emit("ydoc:awareness:update", {
          document_id: documentId,
          user_id: socket.id,
          update: Array.from(awareness.encodeUpdate(changedClients)),
        });
      }
    });
  }

  if (socket.connected) {
    owui.isConnected = true;
    joinDocument();
  }
}

// The editor's setContent(TEXT): the document becomes TEXT, a paragraph per line.
function setContent(content) {
  doc.transact(() => {
    if (fragment.length > 0) fragment.delete(0, fragment.length);
    fragment.insert(0, content.split("\n").map((line) => {
      const paragraph = new Y.XmlElement("paragraph");
      const xmlText = new Y.XmlText();
      xmlText.insert(0, line);
      paragraph.insert(0, [xmlText]);
      return paragraph;
    }));
  }, "editor");
}

// -- sync: a y-protocols provider ------------------------------------------------------

const sync = { step2: false, pendingAcks: 0 };


// Emit with an ack: refusals recorded, a missing ack counted (the server may have
// disconnected us, or be slow); neither is fatal.
function emitAcked(event, payload) {
  sync.pendingAcks += 1;
  socket.timeout(opt.ackTimeoutMs).emit(event, payload, (err, ack) => {
    sync.pendingAcks -= 1;
    if (err) {
      ackTimeouts += 1;
      return;
    }
    if (ack === null || typeof ack !== "object" || typeof ack.ok !== "boolean") {
      fail(`malformed ack for ${event}: ${JSON.stringify(ack)}`);
      return;
    }
    if (ack.ok) {
      if (event === "ydoc:document:update") acked += 1;
    } else {
      refused.push({ event, code: ack.error?.code ?? null, message: ack.error?.message ?? null });
    }
  });
}

function applyRemote(bytes, what) {
  try {
    Y.applyUpdate(doc, bytes, REMOTE);
  } catch (err) {
    throw new ProtocolError(`${what} does not apply: ${err.message}`);
  }
}

function setupSync() {
  socket.on("connect", () => {
    sync.step2 = false;
    emitAcked("ydoc:document:join", { document_id: opt.doc, binary: true });
    emitAcked("ydoc:sync", { document_id: opt.doc, message: syncMessage(STEP1, Y.encodeStateVector(doc)) });
  });
  socket.on("disconnect", () => {
    sync.step2 = false;
  });

  socket.on("ydoc:sync", (payload) => {
    if (payload?.document_id !== opt.doc) return;
    lastRemoteAt = Date.now();
    const { kind, body } = readSyncMessage(payload.message);
    if (kind === STEP1) {
      emitAcked("ydoc:sync", { document_id: opt.doc, message: answerStep1(doc, body) });
    } else if (kind === STEP2 || kind === UPDATE) {
      applyRemote(body, kind === STEP2 ? "sync step 2" : "a sync update");
      if (kind === STEP2) sync.step2 = true;
    } else {
      throw new ProtocolError(`unknown ydoc:sync message type ${kind}`);
    }
  });
  socket.on("ydoc:document:state", (payload) => {
    if (payload?.document_id !== opt.doc) return;
    lastRemoteAt = Date.now();
    applyRemote(toBytes(payload.state, "ydoc:document:state state"), "the document state");
  });
  socket.on("ydoc:document:update", (payload) => {
    if (payload?.document_id !== opt.doc) return;
    lastRemoteAt = Date.now();
    applyRemote(toBytes(payload.update, "ydoc:document:update update"), "a remote update");
  });

  doc.on("update", (update, origin) => {
    if (origin === REMOTE || !socket.connected) return; // offline: the resync carries it
    sent += 1;
    emitAcked("ydoc:document:update", { document_id: opt.doc, update });
  });
}

// -- the run ---------------------------------------------------------------------------

const inStep = () => socket.connected
  && (opt.shape === "owui" ? owui.synced : sync.step2 && sync.pendingAcks === 0);

function whereWeAre() {
  const parts = [`connected: ${socket?.connected ?? false}`];
  if (opt.shape === "owui") parts.push(`synced: ${owui.synced}`);
  else parts.push(`step 2 since connecting: ${sync.step2}`, `acks outstanding: ${sync.pendingAcks}`);
  parts.push(`connects: ${connects}`, `disconnects: ${JSON.stringify(disconnects)}`);
  if (lastServerClose) parts.push(`last: ${lastServerClose}`);
  return parts.join(", ");
}

async function main() {
  const rand = rng(opt.seed);
  socket = makeSocket();
  watchConnection();
  if (opt.shape === "owui") setupOwui();
  else setupSync();

  if (opt.startDelayMs) await sleep(opt.startDelayMs);
  for (let i = 0; i < opt.edits; i++) {
    if (i > 0 && opt.intervalMs) await sleep(opt.intervalMs);
    makeEdit(i, rand);
  }
  const lastEditAt = Date.now();

  for (;;) {
    if (!socket.connected && !socket.active && lastServerClose && !opt.reconnectAfterServer) {
      fail(`${lastServerClose}; socket.io-client does not reconnect by itself after that`
        + ` (nor does Open WebUI): ${whereWeAre()}`);
      return;
    }
    if (inStep() && Date.now() - Math.max(lastRemoteAt, lastEditAt) >= opt.waitQuietMs) break;
    await sleep(Math.max(1, Math.min(20, opt.waitQuietMs)));
  }
  finish();
}

function finish() {
  if (finished) return;
  finished = true;
  clearTimeout(lifetime);
  socket.close();
  const line = {
    shape: opt.shape,
    tag: opt.tag,
    text: editorText(),
    markers,
    state: b64(Y.encodeStateAsUpdate(doc)),
    state_vector: b64(Y.encodeStateVector(doc)),
    client_id: doc.clientID,
    connects,
    disconnects,
    errors,
    refused,
    ack_timeouts: ackTimeouts,
    acked,
    sent,
    // structs or deletions yjs holds back because what they build on never arrived
    pending: doc.store.pendingStructs !== null || doc.store.pendingDs !== null,
  };
  process.stdout.write(JSON.stringify(line) + "\n", () => process.exit(0));
}

main().catch((err) => fail(err instanceof ProtocolError ? err.message : `internal error: ${err?.stack ?? err}`));
