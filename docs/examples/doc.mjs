// A minimal collaborative editor: join a document, append a line to its text, print the
// whole text, and exit. Run it twice (or from two terminals) to see edits merge.
// Usage: node doc.mjs TOKEN [DOCUMENT] [TEXT] [URL]
//   DOCUMENT defaults to note:1, TEXT to "hello from node", URL to http://127.0.0.1:7480;
//   the token needs the document, e.g. rtctl token issue --user alice --doc 'note:*'
import { io } from "socket.io-client";
import * as Y from "yjs";

const [token = process.env.TOKEN, docId = "note:1", text = "hello from node"] =
  process.argv.slice(2);
const url = process.argv[5] ?? process.env.RTCTL_URL ?? "http://127.0.0.1:7480";
if (!token) {
  console.error("usage: node doc.mjs TOKEN [DOCUMENT] [TEXT] [URL]");
  process.exit(2);
}

const doc = new Y.Doc();
const content = doc.getText("content");
const socket = io(url, { auth: { token }, reconnection: false });

socket.on("connect_error", (err) => {
  console.error("connect_error", err.message, JSON.stringify(err.data ?? null));
  process.exit(1);
});
socket.on("error", (err) => console.error("error", JSON.stringify(err)));

// The hub answers a join with the whole document as one Yjs update.
socket.once("ydoc:document:state", async ({ state }) => {
  Y.applyUpdate(doc, new Uint8Array(state));
  let update = null;
  doc.once("update", (u) => (update = u));
  content.insert(content.length, (content.length ? "\n" : "") + text);
  // stored durably before the ack, then relayed to everyone else in the document
  const ack = await socket.emitWithAck("ydoc:document:update", {
    document_id: docId,
    update: Array.from(update),
  });
  console.log("update ->", JSON.stringify(ack));
  console.log(content.toString());
  socket.close();
});

socket.on("connect", async () => {
  const joined = await socket.emitWithAck("ydoc:document:join", { document_id: docId });
  if (!joined?.ok) {
    console.error("ydoc:document:join ->", JSON.stringify(joined));
    process.exit(1);
  }
});
