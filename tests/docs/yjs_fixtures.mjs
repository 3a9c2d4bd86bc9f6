// Documents built with the real `yjs` package, for tests/docs/test_export.py.
//
//   node tests/docs/yjs_fixtures.mjs        (cwd: the repository root)
//
// Prints one JSON object per line:
//   {name, update, json, text, kinds}
// update: base64 of Y.encodeStateAsUpdate(doc) (a v1 update; some fixtures use
//         Y.mergeUpdates instead); json: root name -> toJSON() of the root as the
//         builder typed it, normalised the way rtctl.docs.export documents
//         (Uint8Array -> base64, sub-document -> {subdoc: guid}, undefined dropped
//         from objects / null in arrays, BigInt -> number, NaN/Infinity -> null);
// text:   what `rtctl docs export --format text` must print (Y.Text strings and
//         XML fragments' text blocks as lines, roots in name order, a blank line
//         between roots); kinds: root name -> text | map | array | xmlfragment.
import * as Y from "yjs";

// mulberry32: a small deterministic PRNG
const rng = (seed) => () => {
  seed |= 0;
  seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};

const norm = (v) => {
  if (v === undefined) return null;
  if (typeof v === "bigint") return Number(v);
  if (typeof v === "number") return Number.isFinite(v) ? v : null;
  if (v instanceof Uint8Array) return Buffer.from(v).toString("base64");
  if (v instanceof Y.Doc) return { subdoc: v.guid };
  if (v instanceof Y.AbstractType) return norm(v.toJSON());
  if (Array.isArray(v)) return v.map(norm);
  if (v !== null && typeof v === "object") {
    const out = {};
    for (const [k, x] of Object.entries(v)) if (x !== undefined) out[k] = norm(x);
    return out;
  }
  return v;
};

const newDoc = (clientID, opts = {}) => {
  const doc = new Y.Doc(opts);
  doc.clientID = clientID;
  return doc;
};

const sync = (a, b) => {
  Y.applyUpdate(b, Y.encodeStateAsUpdate(a, Y.encodeStateVector(b)));
  Y.applyUpdate(a, Y.encodeStateAsUpdate(b, Y.encodeStateVector(a)));
};

// Plain text of an XML fragment: one line per text block (an element holding text or
// nothing), containers (elements holding only elements) recursed into.
const plain = (xmlText) =>
  xmlText
    .toDelta()
    .map((op) => (typeof op.insert === "string" ? op.insert : ""))
    .join("");
const inlineText = (el) =>
  el
    .toArray()
    .map((c) =>
      c instanceof Y.XmlText
        ? plain(c)
        : c instanceof Y.XmlElement
          ? ["hard_break", "hardbreak", "br"].includes(c.nodeName.toLowerCase())
            ? "\n"
            : inlineText(c)
          : "",
    )
    .join("");
const blockLines = (t) => {
  const lines = [];
  let inline = null;
  for (const c of t.toArray()) {
    if (c instanceof Y.XmlText) {
      inline = (inline ?? "") + plain(c);
    } else if (c instanceof Y.XmlElement) {
      if (inline !== null) lines.push(inline);
      inline = null;
      const kids = c.toArray();
      if (kids.length && kids.every((k) => k instanceof Y.XmlElement)) lines.push(...blockLines(c));
      else lines.push(inlineText(c));
    }
  }
  if (inline !== null) lines.push(inline);
  return lines;
};

const emit = (name, doc, kinds, { update, text } = {}) => {
  const json = {};
  const texts = [];
  for (const root of Object.keys(kinds).sort()) {
    const kind = kinds[root];
    const t =
      kind === "text"
        ? doc.getText(root)
        : kind === "map"
          ? doc.getMap(root)
          : kind === "array"
            ? doc.getArray(root)
            : doc.getXmlFragment(root);
    json[root] = norm(t.toJSON());
    if (kind === "text") texts.push(t.toString());
    if (kind === "xmlfragment") texts.push(blockLines(t).join("\n"));
  }
  const u = update ?? Y.encodeStateAsUpdate(doc);
  const line = {
    name,
    update: Buffer.from(u).toString("base64"),
    json,
    text: text ?? texts.join("\n\n"),
    kinds,
  };
  process.stdout.write(JSON.stringify(line) + "\n");
};

// -- a formatted Y.Text with emoji, embeds, deletions and an attribute ----------------------
{
  const doc = newDoc(11);
  const t = doc.getText("content");
  t.insert(0, "Hello world! 👋🏽 ");
  t.format(0, 5, { bold: true });
  t.format(6, 5, { italic: true, color: "red" });
  t.insert(t.length, "Ünïcödé 𝄞 and CJK 漢字");
  t.insertEmbed(5, { image: "cat.png" });
  t.delete(2, 2); // inside a formatted run
  t.insert(3, "\n", { header: 1 });
  t.format(0, t.length, { bold: null });
  t.setAttribute("lang", "en");
  // split a surrogate pair's neighbours, not the pair: delete the character after 👋🏽
  const s = t.toString();
  t.delete(s.indexOf("👋🏽") + 4, 1);
  emit("text_formatting", doc, { content: "text" });
}

// -- Y.Map with nested values, nested types, overwrites, deletions --------------------------
{
  const doc = newDoc(22);
  const m = doc.getMap("meta");
  m.set("title", "Report");
  m.set("count", 42);
  m.set("negative", -7);
  m.set("ratio", 0.25);
  m.set("precise", 0.1);
  m.set("big", 2 ** 40);
  m.set("huge", 1e300);
  m.set("bigint", 12345678901234n);
  m.set("flag", true);
  m.set("off", false);
  m.set("nothing", null);
  m.set("undef", undefined);
  m.set("nested", { a: [1, 2, { b: "c" }], d: { e: null, f: undefined }, g: [undefined] });
  m.set("bytes", new Uint8Array([0, 1, 2, 250, 255]));
  const inner = new Y.Map();
  m.set("inner", inner);
  inner.set("x", 1);
  inner.set("y", "two");
  const arr = new Y.Array();
  inner.set("list", arr);
  arr.push([1, "a", { k: "v" }]);
  const text = new Y.Text();
  inner.set("note", text);
  text.insert(0, "nested text");
  m.set("title", "Final report"); // overwrite
  m.set("gone", "x");
  m.delete("gone");
  m.set("count", 43);
  const sub = new Y.Doc({ guid: "sub-doc-guid" });
  m.set("sub", sub);
  emit("map_nested", doc, { meta: "map" });
}

// -- Y.Array: pushes, inserts, deletes, nested types ----------------------------------------
{
  const doc = newDoc(33);
  const a = doc.getArray("items");
  a.push([1, 2, 3, "four", { five: 5 }, [6], null, true]);
  a.insert(2, ["inserted", 2.5]);
  a.delete(0, 1);
  const m = new Y.Map();
  a.insert(1, [m]);
  m.set("k", "v");
  const inner = new Y.Array();
  a.push([inner]);
  inner.push(["deep", new Uint8Array([1, 2, 3])]);
  a.delete(5, 2);
  emit("array", doc, { items: "array" });
}

// -- an XmlFragment as y-prosemirror stores a ProseMirror document --------------------------
const paragraph = (name, text, attrs = {}) => {
  const el = new Y.XmlElement(name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== null) el.insert(0, [new Y.XmlText(text)]);
  return el;
};
const buildProsemirror = (doc) => {
  const frag = doc.getXmlFragment("prosemirror");
  const h = paragraph("heading", "Release notes", { level: 1 });
  const p1 = paragraph("paragraph", "The quick brown fox");
  const p2 = paragraph("paragraph", null); // empty paragraph: an empty line
  const p3 = new Y.XmlElement("paragraph");
  const list = new Y.XmlElement("bullet_list");
  const quote = new Y.XmlElement("blockquote");
  frag.insert(0, [h, p1, p2, p3, list, quote]);
  const t1 = p1.get(0);
  t1.format(4, 5, { strong: true });
  t1.format(10, 5, { link: { href: "https://example.com", title: null } });
  t1.insert(t1.length, " jumps 🦊");
  t1.delete(0, 4); // "The "
  p3.insert(0, [new Y.XmlText("line one"), new Y.XmlElement("hard_break"), new Y.XmlText("line two")]);
  p3.get(2).format(0, 4, { em: true, color: "red" });
  for (const item of ["first item", "second item"]) {
    const li = new Y.XmlElement("list_item");
    li.insert(0, [paragraph("paragraph", item)]);
    list.push([li]);
  }
  quote.insert(0, [paragraph("paragraph", "quoted"), paragraph("code_block", "a = 1\nb = 2")]);
  return frag;
};
{
  const doc = newDoc(44);
  buildProsemirror(doc);
  emit(
    "prosemirror",
    doc,
    { prosemirror: "xmlfragment" },
    {
      text: [
        "Release notes",
        "quick brown fox jumps 🦊",
        "",
        "line one\nline two",
        "first item",
        "second item",
        "quoted",
        "a = 1\nb = 2",
      ].join("\n"),
    },
  );
}

// -- a mix of every root kind ----------------------------------------------------------------
{
  const doc = newDoc(55);
  buildProsemirror(doc);
  doc.getText("content").insert(0, "Body text");
  doc.getText("notes").insert(0, "A note\nover two lines");
  doc.getMap("meta").set("owner", "ada");
  doc.getArray("tags").push(["a", "b"]);
  emit("mix", doc, {
    content: "text",
    meta: "map",
    notes: "text",
    prosemirror: "xmlfragment",
    tags: "array",
  });
}

// -- concurrent editing by several clients, partially synced: YATA ordering ---------------
const concurrent = (seed, gc) => {
  const r = rng(seed);
  const docs = [3, 1, 2, 1000001, 7].map((id) => newDoc(id, { gc }));
  const updates = [];
  for (const d of docs) d.on("update", (u) => updates.push(u));
  const words = ["a", "bb", "ccc", "😀", "é", "漢字", " ", "\n", "xyz"];
  for (let step = 0; step < 400; step++) {
    const d = docs[Math.floor(r() * docs.length)];
    const t = d.getText("content");
    const x = r();
    if (x < 0.55 || t.length === 0) {
      const w = words[Math.floor(r() * words.length)];
      t.insert(Math.floor(r() * (t.length + 1)), w, r() < 0.2 ? { bold: true } : undefined);
    } else if (x < 0.8) {
      const at = Math.floor(r() * t.length);
      t.delete(at, Math.min(1 + Math.floor(r() * 4), t.length - at));
    } else if (x < 0.85) {
      const at = Math.floor(r() * t.length);
      t.format(at, Math.min(3, t.length - at), { italic: r() < 0.5 ? true : null });
    } else if (x < 0.93) {
      d.getMap("meta").set(`k${Math.floor(r() * 5)}`, Math.floor(r() * 100));
    } else {
      const a = d.getArray("log");
      if (a.length > 3 && r() < 0.3) a.delete(Math.floor(r() * a.length), 1);
      else a.insert(Math.floor(r() * (a.length + 1)), [step]);
    }
    if (r() < 0.15) {
      const a = docs[Math.floor(r() * docs.length)];
      const b = docs[Math.floor(r() * docs.length)];
      if (a !== b) sync(a, b);
    }
  }
  for (const a of docs) for (const b of docs) if (a !== b) sync(a, b);
  return { doc: docs[0], updates };
};
for (const [seed, gc] of [
  [1, true],
  [2, true],
  [3, false],
]) {
  const { doc, updates } = concurrent(seed, gc);
  const kinds = { content: "text", log: "array", meta: "map" };
  emit(`concurrent_${seed}`, doc, kinds);
  emit(`concurrent_${seed}_merged`, doc, kinds, { update: Y.mergeUpdates(updates) });
}

// -- a large text built from many small edits --------------------------------------------
{
  const r = rng(99);
  const doc = newDoc(66);
  const t = doc.getText("content");
  for (let i = 0; i < 3000; i++) {
    if (r() < 0.7 || t.length < 10) t.insert(Math.floor(r() * (t.length + 1)), "word ");
    else t.delete(Math.floor(r() * (t.length - 5)), 3);
  }
  emit("large_text", doc, { content: "text" });
}
