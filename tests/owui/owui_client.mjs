// One browser tab of Open WebUI, run in Node against the hub: Open WebUI's own client code
// (taken from open-webui commit 65ebc7c732c2c9bd04e3ddbcd7ef068a99d25af1, fork
// yshishenya/open-webui; see the header of each module for the file and lines) on the
// exact socket.io-client and yjs versions of its package-lock.json (tests/owui/package.json).
//
//   layout.mjs         src/routes/+layout.svelte: the socket (path /ws/socket.io, auth
//                      token, user-join on connect, heartbeat every 30 s) and the `events`
//                      and `events:channel` handlers every page has
//   chat.mjs           src/lib/components/chat/Chat.svelte (page /c/<chat id>)
//   channel.mjs        src/lib/components/channel/Channel.svelte (page /channels/<id>)
//   note.mjs           src/lib/components/notes/NoteEditor.svelte (page /notes/<id>) with
//   collaboration.mjs  src/lib/components/common/RichTextInput/Collaboration.ts
//
// What the browser, svelte and Open WebUI's backend would do is recorded (runtime.mjs). The
// tab reports everything as one JSON object per line on stdout and takes commands, one JSON
// object per line, on stdin; closing stdin (or {"cmd": "close"}) leaves the page and ends
// the run. Console output of Open WebUI's code goes to stderr.
//
//   node tests/owui/owui_client.mjs --url URL --token TOKEN --user-id ID --user-name NAME
//        [--page /|/c/CHAT|/channels/ID|/notes/ID] [--transports websocket|polling]
//        [--model M] [--note-title T] [--note-content HTML] [--time-scale F]
//        [--timeout-ms MS]
//
//   --transports   websocket: Open WebUI's default (features.enable_websocket);
//                  polling: ['polling', 'websocket'], long-polling then the upgrade
//   --time-scale   the layout's timers run F times as long (0.01: the heartbeat every 0.3 s)
//
// Lines out (each {"event": NAME, ...}):
//   open {transport}: the Engine.IO connection, on its first transport
//   connect {sid, transport} | upgrade {transport} | connect_error {message, data}
//   disconnect {reason} | recv {name, args} (every event from the hub)
//   emit {name, args} (every event to the hub) | mounted {page}
//   handled {component, name, data, state}: a component's handler (layout, chat, channel,
//       note) has finished with an event; state is what the page shows now
//   toast {kind, message | title, content} | goto {path} | navigate {path} | ui {what}
//   notification {title, body} | api {name, args}: a call to Open WebUI's backend
//   backend {what, ...}: the stand-in for Open WebUI's backend (chat completions)
//   unsupported {what} | ack {cmd, ack, error} | state {layout, page}
//   uncaught {message, stack}: an exception in Open WebUI's code (the tab goes on, as a
//       browser's would) | done | timeout (then exit 2)
//
// Commands in:
//   {"cmd": "state"}                              report the page's state
//   {"cmd": "user-join"}                          emit user-join with an ack (Open WebUI
//                                                 emits it without one) and report the ack
//   {"cmd": "channel:join", "channel_id": ID}     emit channel:join with an ack (for hubs
//                                                 where user-join does not enter channels)
//   {"cmd": "submit", "prompt": TEXT}             chat: the user sends a prompt
//   {"cmd": "type"}                               channel: the user types (onChange)
//   {"cmd": "send", "content": TEXT}              channel: the user sends a message
//   {"cmd": "edit", "text": TEXT, "where": "start"|"end"}   note: the user types
//   {"cmd": "close"}                              leave the page, disconnect, exit 0
import { makeApi, makeBrowser, jsonSafe } from "./runtime.mjs";
import { mountLayout } from "./layout.mjs";
import { mountChat } from "./chat.mjs";
import { mountChannel } from "./channel.mjs";
import { mountNote } from "./note.mjs";
import { parseArgs } from "node:util";
import { createInterface } from "node:readline";

const USAGE = "usage: owui_client.mjs --url URL --token TOKEN --user-id ID --user-name NAME"
  + " [--page /|/c/CHAT|/channels/ID|/notes/ID] [--transports websocket|polling] [--model M]"
  + " [--note-title T] [--note-content HTML] [--time-scale F] [--timeout-ms MS]";

function options() {
  let values;
  try {
    ({ values } = parseArgs({
      strict: true,
      options: {
        url: { type: "string" },
        token: { type: "string" },
        "user-id": { type: "string" },
        "user-name": { type: "string" },
        role: { type: "string", default: "user" },
        page: { type: "string", default: "/" },
        transports: { type: "string", default: "websocket" },
        model: { type: "string", default: "echo" },
        "note-title": { type: "string", default: "Note" },
        "note-content": { type: "string", default: "" },
        "time-scale": { type: "string", default: "1" },
        "timeout-ms": { type: "string", default: "60000" },
      },
    }));
  } catch (err) {
    process.stderr.write(`owui_client: ${err.message}\n${USAGE}\n`);
    process.exit(2);
  }
  const bad = (message) => {
    process.stderr.write(`owui_client: ${message}\n${USAGE}\n`);
    process.exit(2);
  };
  for (const key of ["url", "token", "user-id", "user-name"]) {
    if (!values[key]) bad(`--${key} is required`);
  }
  if (!["websocket", "polling"].includes(values.transports)) {
    bad("--transports is websocket or polling");
  }
  const page = /^\/(?:(c|channels|notes)\/([^/]+))?$/.exec(values.page);
  if (!page) bad("--page is /, /c/CHAT, /channels/ID or /notes/ID");
  const timeScale = Number(values["time-scale"]);
  const timeoutMs = Number(values["timeout-ms"]);
  if (!(timeScale > 0)) bad("--time-scale must be a positive number");
  if (!(Number.isInteger(timeoutMs) && timeoutMs > 0)) {
    bad("--timeout-ms must be a positive integer");
  }
  return {
    url: values.url,
    token: values.token,
    // $user, as getSessionUser answers it
    user: {
      id: values["user-id"], name: values["user-name"], role: values.role, token: values.token,
    },
    pathname: values.page,
    kind: page[1] ?? null,
    pageId: page[2] ? decodeURIComponent(page[2]) : null,
    websocket: values.transports === "websocket",
    model: values.model,
    noteTitle: values["note-title"],
    noteContent: values["note-content"],
    timeScale,
    timeoutMs,
  };
}

const opt = options();

// -- reporting -------------------------------------------------------------------------

let finished = false;
const report = (event, fields = {}) => {
  if (finished && event !== "done") return;
  process.stdout.write(JSON.stringify({ event, ...fields }) + "\n");
};

// Open WebUI's code logs a lot: to stderr, so stdout stays one JSON object per line
for (const level of ["log", "info", "debug", "warn", "error"]) {
  console[level] = (...args) => process.stderr.write(`[${level}] ${args.map((a) => {
    if (typeof a === "string") return a;
    try {
      return JSON.stringify(jsonSafe(a));
    } catch {
      return String(a);
    }
  }).join(" ")}\n`);
}

// An exception in Open WebUI's code: reported; the tab goes on, as a browser's would.
const uncaught = (err) =>
  report("uncaught", { message: String(err?.message ?? err), stack: err?.stack ?? null });
process.on("uncaughtException", uncaught);
process.on("unhandledRejection", uncaught);

const lifetime = setTimeout(() => {
  report("timeout", { after_ms: opt.timeoutMs });
  process.exit(2);
}, opt.timeoutMs);

// Events carrying Yjs updates as arrays of byte values are long: their bytes are counted.
function argsOf(name, args) {
  return args.map((a) => {
    const safe = jsonSafe(a);
    if (name.startsWith("ydoc:") && safe && typeof safe === "object" && !Array.isArray(safe)) {
      for (const key of ["update", "state"]) {
        if (Array.isArray(safe[key])) safe[key] = { array: safe[key].length };
      }
    }
    return safe;
  });
}

// -- the tab ---------------------------------------------------------------------------

// the sidebar's channels ($channels): the one this page shows
const channels = opt.kind === "channels"
  ? [{ id: opt.pageId, name: opt.pageId, type: null, unread_count: 0 }]
  : [];
const browser = makeBrowser({
  report, token: opt.token, pathname: opt.pathname, user: opt.user, channels,
});
browser.stores.config.set({ features: { enable_websocket: opt.websocket } });

let rawSocket = null;

// Open WebUI's backend answers the pages' API calls as it would for this page.
const api = makeApi(report, {
  getChannelById: (id) => (id === opt.pageId ? channels[0] : null),
  getChannelMessages: () => [],
  sendMessage: (_id, message) => ({ ...message, id: `sent-${message.temp_id}` }),
  getNoteById: (id) => id === opt.pageId ? {
    id,
    title: opt.noteTitle,
    data: { content: { json: null, html: opt.noteContent, md: opt.noteContent }, files: [] },
    access_grants: [],
    write_access: true,
  } : null,
});

// The stand-in for POST /api/chat/completions: Open WebUI's backend starts the completion
// (here the hub's chat:completion, with the chat's messages as the backend loads them) and
// answers {task_id}; the stream then comes as `events` to the user's room.
const backend = {
  async generateOpenAIChatCompletion(_token, body) {
    report("api", { name: "generateOpenAIChatCompletion", args: [jsonSafe({
      chat_id: body.chat_id, id: body.id, model: body.model, session_id: body.session_id,
      stream: body.stream, parent_id: body.parent_id,
    })] });
    const messages = (body.messages ?? []).length > 0 ? body.messages
      : [{ role: "user", content: body.user_message?.content ?? "" }];
    let ack;
    try {
      ack = await rawSocket.timeout(10_000).emitWithAck("chat:completion", {
        chat_id: body.chat_id, message_id: body.id, model: body.model, messages,
        stream: body.stream,
      });
    } catch (err) {
      report("backend", { what: "chat:completion", error: String(err?.message ?? err) });
      throw { detail: `the hub did not answer chat:completion: ${err?.message ?? err}` };
    }
    report("backend", { what: "chat:completion", ack });
    if (ack && typeof ack.task_id === "string") return { status: true, task_id: ack.task_id };
    throw { detail: `the hub refused chat:completion: ${JSON.stringify(ack)}` };
  },
};

// Every socket the layout makes: what goes in and out, and the connection's life.
function instrument(socket) {
  rawSocket = socket;
  socket.onAny((name, ...args) => report("recv", { name, args: argsOf(name, args) }));
  socket.onAnyOutgoing((name, ...args) => report("emit", { name, args: argsOf(name, args) }));
  socket.on("connect", () => {
    report("connect", { sid: socket.id, transport: socket.io.engine?.transport?.name ?? null });
  });
  socket.on("disconnect", (reason) => report("disconnect", { reason }));
  socket.on("connect_error", (err) => {
    report("connect_error", { message: err.message, data: jsonSafe(err.data ?? null) });
  });
  socket.io.on("open", () => {
    report("open", { transport: socket.io.engine.transport.name });
    socket.io.engine.on("upgrade", (transport) => report("upgrade", { transport: transport.name }));
  });
  return socket;
}

const ctx = {
  ...browser,
  api,
  backend,
  report,
  instrument,
  url: opt.url,
  timeScale: opt.timeScale,
  model: opt.model,
  chatId: opt.kind === "c" ? opt.pageId : null,
  channelId: opt.kind === "channels" ? opt.pageId : null,
  noteId: opt.kind === "notes" ? opt.pageId : null,
};

const layout = mountLayout(ctx);
let page = null;

async function open() {
  await layout.mount();
  // a page mounts once the layout has its user and socket (+layout.svelte renders the
  // page then); the socket may still be connecting
  if (opt.kind === "c") page = mountChat(ctx);
  else if (opt.kind === "channels") page = mountChannel(ctx);
  else if (opt.kind === "notes") page = mountNote(ctx);
  if (!rawSocket.connected) {
    await new Promise((resolve) => {
      rawSocket.once("connect", resolve);
      rawSocket.on("connect_error", () => !rawSocket.active && resolve());
    });
  }
  if (page) await page.mount();
  report("mounted", { page: opt.pathname, connected: rawSocket.connected });
}

function state() {
  return {
    connected: rawSocket?.connected ?? false,
    sid: rawSocket?.id ?? null,
    page: page ? page.snapshot() : null,
  };
}

function probe(cmd, event, payload) {
  rawSocket.timeout(10_000).emit(event, payload, (err, ack) => {
    const error = err ? String(err.message ?? err) : null;
    report("ack", { cmd, ack: jsonSafe(ack ?? null), error });
  });
}

async function command(line) {
  let msg;
  try {
    msg = JSON.parse(line);
  } catch {
    report("bad_command", { line });
    return;
  }
  const needs = (kind) => {
    if (opt.kind !== kind) throw new Error(`${msg.cmd} needs a /${kind}/ page`);
  };
  try {
    switch (msg.cmd) {
      case "state":
        report("state", state());
        break;
      case "user-join":
        probe("user-join", "user-join", { auth: { token: opt.token } });
        break;
      case "channel:join":
        probe("channel:join", "channel:join", { channel_id: msg.channel_id });
        break;
      case "submit":
        needs("c");
        await page.submit(msg.prompt);
        break;
      case "type":
        needs("channels");
        await page.type();
        break;
      case "send":
        needs("channels");
        await page.send(msg.content);
        break;
      case "edit":
        needs("notes");
        page.type(msg.text, msg.where ?? "end");
        break;
      case "close":
        await finish();
        break;
      default:
        report("bad_command", { line });
    }
  } catch (err) {
    uncaught(err);
  }
}

async function finish() {
  if (finished) return;
  page?.destroy?.(); // leaving the page: ydoc:document:leave, off handlers
  await new Promise((resolve) => setTimeout(resolve, 50)); // let the leave go out
  finished = true;
  clearTimeout(lifetime);
  rawSocket?.close();
  process.stdout.write(JSON.stringify({ event: "done" }) + "\n", () => process.exit(0));
}

const ready = open().catch(uncaught);
const lines = createInterface({ input: process.stdin });
lines.on("line", (line) => {
  if (line.trim()) ready.then(() => command(line));
});
lines.on("close", () => finish());
