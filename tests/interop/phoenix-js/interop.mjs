// Interoperability check: the official `phoenix` JS client joins, pushes, heartbeats and
// leaves on a running proxmox-monitor-server.
//
// Usage: node interop.mjs PORT HOST_NAME TOKEN
// Exits 0 when everything the client saw matches what a Phoenix server would do, 1 otherwise
// (printing the step that failed). Run by server/tests/interop_phoenix_js.rs.

import { Socket } from "phoenix";
import WebSocket from "ws";

const [port, hostName, token] = process.argv.slice(2);
if (!port || !hostName || !token) {
  console.error("usage: node interop.mjs PORT HOST_NAME TOKEN");
  process.exit(2);
}

const log = (...args) => console.log("[interop]", ...args);
const fail = (what) => {
  console.error(`[interop] FAIL: ${what}`);
  process.exit(1);
};
setTimeout(() => fail("did not finish within 20 s"), 20000).unref();

// Short heartbeats so the test also sees them answered; no reconnects hiding a failure.
const socket = new Socket(`ws://127.0.0.1:${port}/socket`, {
  transport: WebSocket,
  heartbeatIntervalMs: 250,
  reconnectAfterMs: () => 60000,
  rejoinAfterMs: () => 60000,
  timeout: 5000,
});

let heartbeatReplies = 0;
socket.onMessage((msg) => {
  if (msg.topic === "phoenix" && msg.event === "phx_reply") {
    if (msg.payload.status !== "ok") fail(`heartbeat answered ${JSON.stringify(msg.payload)}`);
    heartbeatReplies += 1;
  }
});
socket.onError((e) => fail(`socket error: ${e && e.message ? e.message : e}`));

const step = (push, what) =>
  new Promise((resolve) => {
    push
      .receive("ok", (resp) => resolve({ status: "ok", resp }))
      .receive("error", (resp) => resolve({ status: "error", resp }))
      .receive("timeout", () => fail(`${what}: timed out`));
  });

const waitFor = (cond, what, ms = 5000) =>
  new Promise((resolve) => {
    const started = Date.now();
    const tick = () => {
      if (cond()) return resolve();
      if (Date.now() - started > ms) fail(`${what}: not within ${ms} ms`);
      setTimeout(tick, 20);
    };
    tick();
  });

socket.connect();

// 1. A wrong token is refused with the reason agents match on.
const refused = socket.channel(`host:${hostName}`, { token: "wrong", agent_version: "phoenix-js" });
const r1 = await step(refused.join(), "join with a wrong token");
if (r1.status !== "error" || r1.resp.reason !== "invalid_token") {
  fail(`join with a wrong token gave ${JSON.stringify(r1)}`);
}
await step(refused.leave(), "leaving the refused channel");
log("wrong token refused: invalid_token");

// 2. The right token joins.
const channel = socket.channel(`host:${hostName}`, { token, agent_version: "phoenix-js" });
let closed = false;
channel.onClose(() => {
  closed = true;
});
channel.onError((e) => fail(`channel error: ${JSON.stringify(e)}`));
const r2 = await step(channel.join(), "join");
if (r2.status !== "ok") fail(`join gave ${JSON.stringify(r2)}`);
log("joined", `host:${hostName}`);

// 3. A push is stored and acknowledged.
const sample = {
  collected_at: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
  data: { hostname: hostName, load1: 0.5, load5: 0.25, load15: 0.125 },
};
const r3 = await step(channel.push("metric:fast", sample), "metric:fast push");
if (r3.status !== "ok") fail(`metric:fast push gave ${JSON.stringify(r3)}`);
log("metric:fast acknowledged");

// 4. An event the server does not know is refused, not ignored.
const r4 = await step(channel.push("no_such_event", {}), "unknown event push");
if (r4.status !== "error") fail(`unknown event gave ${JSON.stringify(r4)}`);
log("unknown event refused:", r4.resp.reason);

// 5. Heartbeats are answered.
await waitFor(() => heartbeatReplies >= 2, "two heartbeat replies");
log(`heartbeats answered: ${heartbeatReplies}`);

// 6. Leave is acknowledged and the channel closes.
const r6 = await step(channel.leave(), "leave");
if (r6.status !== "ok") fail(`leave gave ${JSON.stringify(r6)}`);
await waitFor(() => closed, "channel close after leave");
log("left");

if (!socket.isConnected()) fail("socket dropped during the run");
socket.disconnect(() => {
  log("OK");
  process.exit(0);
});
