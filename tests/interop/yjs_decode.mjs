// Read a binary Yjs v1 update on stdin (e.g. `rtctl docs export ID --format update`)
// and print what the real `yjs` package makes of it, as one JSON line:
//
//   {text: doc.getText('content').toString(), meta: doc.getMap('meta').toJSON()}
//
//   rtctl docs export D --format update | node tests/interop/yjs_decode.mjs
//
// Exit 1 (message on stderr) when the input is not an update yjs can apply completely.
import * as Y from "yjs";

// JSON.stringify replacer for what yjs values may hold (as rtctl.docs.export renders them):
// a BigInt as a number, binary as base64.
const jsonSafe = (_key, v) => (typeof v === "bigint" ? Number(v)
  : v instanceof Uint8Array ? Buffer.from(v).toString("base64") : v);

const chunks = [];
process.stdin.on("data", (chunk) => chunks.push(chunk));
process.stdin.on("end", () => {
  const update = new Uint8Array(Buffer.concat(chunks));
  const doc = new Y.Doc();
  try {
    Y.applyUpdate(doc, update);
  } catch (err) {
    process.stderr.write(`yjs_decode: not a Yjs update: ${err.message}\n`);
    process.exit(1);
  }
  if (doc.store.pendingStructs !== null || doc.store.pendingDs !== null) {
    process.stderr.write("yjs_decode: the update depends on history it does not contain\n");
    process.exit(1);
  }
  const line = { text: doc.getText("content").toString(), meta: doc.getMap("meta").toJSON() };
  process.stdout.write(JSON.stringify(line, jsonSafe) + "\n", () => process.exit(0));
});
