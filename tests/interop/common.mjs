// What the Node test clients share: payload bytes, y-protocols sync messages, seeded
// randomness, small helpers.
import { parseArgs } from "node:util";
import * as Y from "yjs";
import * as decoding from "lib0/decoding";
import * as encoding from "lib0/encoding";

// A fault in what the hub sent: the clients turn it into exit status 1.
export class ProtocolError extends Error {}

export const STEP1 = 0;
export const STEP2 = 1;
export const UPDATE = 2;

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
export const b64 = (u8) => Buffer.from(u8).toString("base64");

// A payload's bytes: a binary attachment (Buffer / ArrayBuffer / typed array) or an
// array of byte values. Anything else is a protocol error.
export function toBytes(value, what) {
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  if (Array.isArray(value)) {
    if (!value.every((b) => Number.isInteger(b) && b >= 0 && b <= 255)) {
      throw new ProtocolError(`${what} is an array but not of byte values`);
    }
    return Uint8Array.from(value);
  }
  throw new ProtocolError(`${what} is neither binary nor an array of bytes: ${typeof value}`);
}

// mulberry32: the same sequence for the same seed
export function rng(seed) {
  let s = seed | 0;
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// A y-protocols sync message: {kind, body}.
export function readSyncMessage(value) {
  const message = toBytes(value, "ydoc:sync message");
  try {
    const dec = decoding.createDecoder(message);
    const kind = decoding.readVarUint(dec);
    const body = decoding.readVarUint8Array(dec);
    if (decoding.hasContent(dec)) throw new Error("trailing bytes");
    return { kind, body };
  } catch (err) {
    throw new ProtocolError(`malformed ydoc:sync message: ${err.message}`);
  }
}

export function syncMessage(kind, payload) {
  const enc = encoding.createEncoder();
  encoding.writeVarUint(enc, kind);
  encoding.writeVarUint8Array(enc, payload);
  return encoding.toUint8Array(enc);
}

// The step 2 answering a sync step 1: what `doc` has that the state vector lacks.
export function answerStep1(doc, stateVector) {
  try {
    return syncMessage(STEP2, Y.encodeStateAsUpdate(doc, stateVector));
  } catch (err) {
    throw new ProtocolError(`sync step 1 carries a malformed state vector: ${err.message}`);
  }
}

// Command-line options (node:util parseArgs, strict) plus --help: {values, int, usage}.
// Bad arguments print the usage and exit 2; int(name, min) reads an integer option.
export function parseCli(argv, options, usageText, name) {
  const usage = (message) => {
    process.stderr.write(`${name}: ${message}\n${usageText}\n`);
    process.exit(2);
  };
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      options: { ...options, help: { type: "boolean", default: false } },
    }));
  } catch (err) {
    usage(err.message);
  }
  if (values.help) {
    process.stdout.write(usageText + "\n");
    process.exit(0);
  }
  const int = (key, min = 0) => {
    const raw = values[key];
    if (!/^-?\d+$/.test(raw) || Number(raw) < min || !Number.isSafeInteger(Number(raw))) {
      usage(`--${key} must be an integer >= ${min}, not ${JSON.stringify(raw)}`);
    }
    return Number(raw);
  };
  return { values, int, usage };
}
