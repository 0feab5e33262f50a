// Load client in Node with the `ws` package: N WebSocket viewers, then K presses.
// The same protocol with run.py as client.py: prints "READY" once every viewer has its
// initial state, waits for a line on stdin, presses, then prints one line of JSON with the
// latency from just before each press request to its receipt by every viewer.
"use strict";
const http = require("http");
const readline = require("readline");
const { WebSocket } = require("ws");

function parseArgs(argv) {
  const args = { port: 0, n: 100, presses: 10, spacing: 0.3, ramp: 200, timeout: 15, method: "POST", token: "bench" };
  for (const a of argv) {
    const m = /^--([a-z]+)=(.*)$/.exec(a);
    if (!m || !(m[1] in args)) throw new Error("unknown argument: " + a);
    args[m[1]] = typeof args[m[1]] === "number" ? Number(m[2]) : m[2];
  }
  if (!args.port) throw new Error("--port is required");
  return args;
}

const args = parseArgs(process.argv.slice(2));
const now = () => performance.now(); // ms, monotonic
const receipts = new Map(); // presses value -> receipt times of every viewer
let waiting = null; // { value, left, resolve } for the press being timed

// The client must stay cheaper than the servers it measures: rather than JSON.parse every
// message, read the one number it needs straight from the bytes.
const KEY = Buffer.from('"presses":');

function pressesOf(data) {
  let i = data.indexOf(KEY);
  if (i < 0) throw new Error("message without presses: " + data.toString());
  i += KEY.length;
  while (data[i] === 0x20) i++;
  let value = 0;
  for (; data[i] >= 0x30 && data[i] <= 0x39; i++) value = value * 10 + (data[i] - 0x30);
  return value;
}

function onMessage(data) {
  const t = now();
  if (data.indexOf(KEY) < 0) return; // a heartbeat ({"event":"beat"}): no state in it
  const presses = pressesOf(data);
  let list = receipts.get(presses);
  if (!list) receipts.set(presses, (list = []));
  list.push(t);
  if (waiting && waiting.value === presses && --waiting.left === 0) waiting.resolve();
}

function connect() {
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${args.port}/websocket`, { perMessageDeflate: false, skipUTF8Validation: true });
    ws.once("message", () => {
      ws.on("message", onMessage);
      resolve(ws);
    });
    ws.once("error", () => resolve(null));
    ws.once("close", () => resolve(null));
  });
}

function press() {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: "127.0.0.1", port: args.port, path: "/api/press", method: args.method, agent: false,
      headers: { Authorization: "Bearer " + args.token, "Content-Length": 0, Connection: "close" },
    }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c) => (body += c));
      res.on("end", () => (res.statusCode === 200 ? resolve(JSON.parse(body).presses)
        : reject(new Error("press answered " + res.statusCode + ": " + body))));
    });
    req.on("error", reject);
    req.end();
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const t = now();
  const viewers = [];
  let next = 0;
  async function worker() {
    while (next < args.n) {
      next += 1;
      viewers.push(await connect());
    }
  }
  await Promise.all(Array.from({ length: Math.min(args.ramp, args.n) }, worker));
  const connectS = (now() - t) / 1000;
  const live = viewers.filter((v) => v !== null);
  const failed = args.n - live.length;
  process.stdout.write("READY\n");
  const rl = readline.createInterface({ input: process.stdin });
  await new Promise((r) => rl.once("line", r));
  rl.close();
  const out = [];
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < args.presses; i++) {
    await sleep(args.spacing * 1000);
    const t0 = now();
    const value = await press();
    const already = (receipts.get(value) || []).length;
    if (already < live.length) {
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, args.timeout * 1000);
        waiting = { value, left: live.length - already, resolve: () => { clearTimeout(timer); resolve(); } };
      });
      waiting = null;
    }
    const times = (receipts.get(value) || []).map((r) => r - t0).sort((a, b) => a - b);
    out.push({ received: times.length, latencies_ms: times.map((x) => Math.round(x * 1000) / 1000) });
  }
  const cpu = process.cpuUsage(cpu0); // microseconds over the presses, sleeps included
  const line = JSON.stringify({
    n: args.n, failed, connect_s: Math.round(connectS * 1000) / 1000, cpu_s: (cpu.user + cpu.system) / 1e6, presses: out,
  }) + "\n";
  process.stdout.write(line);
  // Exit (closing every socket) only when run.py closes stdin, once it has read the
  // server's CPU time for the presses: the server's work on N closes is not part of it.
  process.stdin.on("end", () => process.exit(0));
  process.stdin.resume();
}

main().catch((e) => {
  console.error(e.stack || String(e));
  process.exit(1);
});
