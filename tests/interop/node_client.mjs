// A Socket.IO client as a browser app would write it (socket.io-client), driven by
// tests/interop/test_node_client.py. It reports everything it sees as one JSON object
// per line on stdout; the Python test asserts on those lines and drives the server
// side through the admin API. Closing stdin ends the run.
//
//   node node_client.mjs URL TOKEN CHANNEL
//
// Lines: {"event": "connected", "sid"} | {"event": "connect_error", "message", "data"}
//        {"event": "channel:join:ack", "ack"} | {"event": "events:channel", "data"}
//        {"event": "events", "data", "acked"} | {"event": "done"}
import { io } from "socket.io-client";

const [url, token, channel] = process.argv.slice(2);
const LIFETIME_MS = 30_000; // a hung test must never leave this process behind

const report = (event, fields = {}) =>
  process.stdout.write(JSON.stringify({ event, ...fields }) + "\n");

const lifetime = setTimeout(() => {
  report("timeout");
  process.exit(2);
}, LIFETIME_MS);

const socket = io(url, { auth: { token }, reconnection: false, timeout: 5000 });

function finish(code = 0) {
  clearTimeout(lifetime);
  socket.close();
  report("done");
  process.exit(code);
}

socket.on("connect_error", (err) => {
  report("connect_error", { message: err.message, data: err.data ?? null });
  finish(0);
});

socket.on("connect", async () => {
  report("connected", { sid: socket.id });
  const ack = await socket.timeout(5000).emitWithAck("channel:join", { channel_id: channel });
  report("channel:join:ack", { ack });
  socket.emit("events:channel", {
    channel_id: channel,
    message_id: "m1",
    data: { type: "message", data: { content: "hello from node" } },
    user: { id: "mallory", name: "Not Me" }, // a client cannot choose who it is
  });
});

socket.on("events:channel", (data) => report("events:channel", { data }));

// Server-to-client events; with an ack callback they are RPC calls to answer.
socket.on("events", (data, ack) => {
  report("events", { data, acked: typeof ack === "function" });
  if (typeof ack === "function") ack({ echo: data, from: "node" });
});

socket.on("error", (data) => report("error", { data }));
socket.on("disconnect", (reason) => report("disconnect", { reason }));

process.stdin.on("end", () => finish(0));
process.stdin.resume();
