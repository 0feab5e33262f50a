// Yardstick: a Node `ws` server with the same feed and press route as The Button (in memory).
"use strict";
const http = require("http");
const { WebSocketServer, WebSocket } = require("ws");

const port = Number(process.argv[2]);
const goal = 20;
let count = goal;
let presses = 0;
const state = () => JSON.stringify({ count, goal, presses, event: "press" });

const server = http.createServer((req, res) => {
  if (req.method === "POST" && req.url === "/api/press") {
    req.resume();
    req.on("end", () => {
      count = count <= 0 ? goal : count - 1;
      presses += 1;
      const msg = state();
      for (const client of wss.clients) {
        if (client.readyState === WebSocket.OPEN) client.send(msg);
      }
      res.writeHead(200, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(msg) });
      res.end(msg);
    });
  } else {
    res.writeHead(200);
    res.end("ok");
  }
});
const wss = new WebSocketServer({ server, path: "/websocket", perMessageDeflate: false });
wss.on("connection", (ws) => {
  ws.isAlive = true;
  ws.on("pong", () => (ws.isAlive = true));
  ws.send(JSON.stringify({ count, goal, presses, event: "state" }));
});
// Pings every 20 s like the other servers (ws sends none by itself): ws's documented
// heartbeat, which drops a client that has not answered the previous ping.
setInterval(() => {
  for (const ws of wss.clients) {
    if (!ws.isAlive) ws.terminate();
    else {
      ws.isAlive = false;
      ws.ping();
    }
  }
}, 20000);
server.listen(port, "127.0.0.1");
process.on("SIGTERM", () => process.exit(0));
