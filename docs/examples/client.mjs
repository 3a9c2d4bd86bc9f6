// A minimal rtctl client: connect with a token, join a channel, print what arrives.
// Usage: node client.mjs TOKEN [URL]   (URL defaults to http://127.0.0.1:7480)
import { io } from "socket.io-client";

const token = process.argv[2] ?? process.env.TOKEN;
const url = process.argv[3] ?? process.env.RTCTL_URL ?? "http://127.0.0.1:7480";
if (!token) {
  console.error("usage: node client.mjs TOKEN [URL]");
  process.exit(2);
}

const socket = io(url, { auth: { token } });

socket.on("connect", async () => {
  console.log("connected", socket.id);
  const joined = await socket.emitWithAck("channel:join", { channel_id: "general" });
  console.log("channel:join ->", JSON.stringify(joined));
  const sent = await socket.emitWithAck("events:channel", {
    channel_id: "general",
    data: { type: "message", data: { content: "hello from node" } },
  });
  console.log("events:channel ->", JSON.stringify(sent));
});

// Events for this user (every session of the user gets them). When the server asks
// for a reply (server-to-client RPC), the last argument is the ack function.
socket.on("events", (event, ack) => {
  console.log("events", JSON.stringify(event));
  if (typeof ack === "function") ack({ ok: true, received: event?.data?.type });
});

// Messages relayed to the channels this session joined, including its own.
socket.on("events:channel", (event) => {
  console.log("events:channel", JSON.stringify(event));
});

// A refused request: {event, code, message}. The session stays usable.
socket.on("error", (err) => {
  console.error("error", JSON.stringify(err));
});

// Refused at connect (bad token, draining, too many sessions): err.data is {code, message}.
socket.on("connect_error", (err) => {
  console.error("connect_error", err.message, JSON.stringify(err.data ?? null));
  if (!socket.active) process.exit(1); // refused by the server: retrying will not help
});

socket.on("disconnect", (reason) => {
  console.log("disconnected:", reason);
  if (reason === "io server disconnect") process.exit(0); // kicked or revoked: do not reconnect
});
