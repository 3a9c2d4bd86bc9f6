// The tiptap editor of Open WebUI's note page, reduced to what the collaboration provider
// (collaboration.mjs) and the note page use of it, acting on the Yjs document as
// y-prosemirror's plugins would: ySyncPlugin writes the editor's content into the
// XmlFragment 'prosemirror' (a paragraph element per block, holding an XmlText) in
// transactions whose origin is its plugin key; yCursorPlugin puts the selection into the
// awareness field 'cursor' as relative positions. Not taken from Open WebUI.
import * as Y from "yjs";

export const ySyncPluginKey = { key: "y-sync$" }; // the transactions' origin

const plain = (xmlText) =>
  xmlText.toDelta().map((d) => (typeof d.insert === "string" ? d.insert : "")).join("");

function blockText(node) {
  if (node instanceof Y.XmlText) return plain(node);
  if (node instanceof Y.XmlElement) return node.toArray().map(blockText).join("");
  return "";
}

export class EditorStub {
  constructor(doc, awareness) {
    this.doc = doc;
    this.awareness = awareness;
    this.fragment = doc.getXmlFragment("prosemirror");
    this.storage = {};
    this.schema = null;
    this.commands = { setContent: (content) => this.setContent(content) };
  }

  // one line per block
  lines() {
    return this.fragment.toArray().map(blockText);
  }

  // tiptap's editor.getText(): blocks separated by a blank line
  getText() {
    return this.lines().join("\n\n");
  }

  // editor.commands.setContent(html): the text of each line becomes a paragraph
  setContent(content) {
    const text = String(content).replace(/<\/p>\s*<p>/g, "\n").replace(/<[^>]*>/g, "");
    this.doc.transact(() => {
      if (this.fragment.length > 0) this.fragment.delete(0, this.fragment.length);
      this.fragment.insert(0, text.split("\n").map((line) => paragraph(line)));
    }, ySyncPluginKey);
  }

  // the user types `text` at the start or the end of the document, which moves the cursor
  type(text, where = "end") {
    let xmlText;
    let index;
    this.doc.transact(() => {
      if (this.fragment.length === 0) this.fragment.insert(0, [paragraph("")]);
      const block = this.fragment.get(where === "start" ? 0 : this.fragment.length - 1);
      xmlText = block.toArray().find((c) => c instanceof Y.XmlText);
      if (xmlText === undefined) {
        xmlText = new Y.XmlText();
        block.insert(0, [xmlText]);
      }
      index = where === "start" ? 0 : xmlText.length;
      xmlText.insert(index, text);
    }, ySyncPluginKey);
    const at = Y.relativePositionToJSON(
      Y.createRelativePositionFromTypeIndex(xmlText, index + text.length),
    );
    if (this.awareness) this.awareness.setLocalStateField("cursor", { anchor: at, head: at });
  }
}

function paragraph(line) {
  const element = new Y.XmlElement("paragraph");
  const xmlText = new Y.XmlText();
  if (line) xmlText.insert(0, line);
  element.insert(0, [xmlText]);
  return element;
}
