"""Load client: N WebSocket viewers, then K presses; prints per-press latency to every viewer as JSON.

Runs in its own process (pinned to its own core by run.py). Protocol with run.py: prints
"READY" once every viewer has its initial state, waits for a line on stdin, then presses.
"""
import argparse
import asyncio
import json
import struct
import sys
import time

HANDSHAKE = (b"GET /websocket HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


class Viewer:
    def __init__(self, results):
        self.results = results  # presses value -> list of receipt times, shared

    async def connect(self, port):
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", port)
        self.writer.write(HANDSHAKE)
        head = await self.reader.readuntil(b"\r\n\r\n")
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise ConnectionError(head.split(b"\r\n", 1)[0].decode())
        await self.next_message()

    async def next_message(self):
        while True:
            b0, b1 = await self.reader.readexactly(2)
            n = b1 & 0x7F
            if n == 126:
                (n,) = struct.unpack("!H", await self.reader.readexactly(2))
            elif n == 127:
                (n,) = struct.unpack("!Q", await self.reader.readexactly(8))
            payload = await self.reader.readexactly(n)
            opcode = b0 & 0x0F
            if opcode == 0x9:  # ping: answer with a pong (masked with a zero key, as allowed)
                self.writer.write(struct.pack("!BB", 0x8A, 0x80 | len(payload)) + b"\0\0\0\0" + payload)
            elif opcode == 0x8:
                raise ConnectionError("closed by server")
            elif opcode == 0x1:
                return payload

    async def listen(self, waiting):
        try:
            while True:
                payload = await self.next_message()
                now = time.perf_counter()
                presses = json.loads(payload)["presses"]
                self.results.setdefault(presses, []).append(now)
                w = waiting.get(presses)
                if w is not None:
                    w[0] -= 1
                    if w[0] == 0:
                        w[1].set()
        except (ConnectionError, asyncio.IncompleteReadError):
            return


async def press(port, method, token):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(("%s /api/press HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
                  "Content-Length: 0\r\nConnection: close\r\n\r\n" % (method, token)).encode())
    data = await reader.read()
    writer.close()
    body = data.split(b"\r\n\r\n", 1)[1]
    return json.loads(body)["presses"]


async def main(args):
    results = {}
    viewers = [Viewer(results) for _ in range(args.n)]
    gate = asyncio.Semaphore(args.ramp)
    failed = 0

    async def open_one(v):
        nonlocal failed
        async with gate:
            try:
                await v.connect(args.port)
                return True
            except (OSError, ConnectionError, asyncio.IncompleteReadError):
                failed += 1
                return False

    t = time.perf_counter()
    ok = await asyncio.gather(*(open_one(v) for v in viewers))
    connect_s = time.perf_counter() - t
    live = [v for v, good in zip(viewers, ok) if good]
    waiting = {}
    tasks = [asyncio.ensure_future(v.listen(waiting)) for v in live]
    print("READY", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    presses = []
    for _ in range(args.presses):
        await asyncio.sleep(args.spacing)
        done = asyncio.Event()
        t0 = time.perf_counter()
        pending = [len(live), done]
        # The new presses value is known from the answer; receipts before it are already recorded.
        value = await press(args.port, args.method, args.token)
        already = len(results.get(value, []))
        pending[0] -= already
        waiting[value] = pending
        if pending[0] > 0:
            try:
                await asyncio.wait_for(done.wait(), timeout=args.timeout)
            except asyncio.TimeoutError:
                pass
        times = sorted(r - t0 for r in results.get(value, []))
        presses.append({"received": len(times), "latencies_ms": [round(x * 1000, 3) for x in times]})
    for task in tasks:
        task.cancel()
    print(json.dumps({"n": args.n, "failed": failed, "connect_s": round(connect_s, 3), "presses": presses}))


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--presses", type=int, default=10)
    p.add_argument("--spacing", type=float, default=0.3)
    p.add_argument("--ramp", type=int, default=200)
    p.add_argument("--timeout", type=float, default=15.0)
    p.add_argument("--method", default="POST")
    p.add_argument("--token", default="bench")
    asyncio.run(main(p.parse_args()))
