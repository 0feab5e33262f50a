"""The button path: fake GPIO edge -> stored press -> WebSocket message at a client, and idle CPU.

    python bench/button_path.py [--presses 100] [--poll]

Runs the real GpioButton (with the tests' fake RPi.GPIO), a real Repository file and the real
Tornado app in one process, with one WebSocket client on 127.0.0.1. With --poll the fake's edge
detection fails as RPi.GPIO 0.7.1's does on kernel 6.6, so the button thread polls the pin. Prints JSON.
"""
import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from tornado.httpserver import HTTPServer  # noqa: E402
from tornado.ioloop import IOLoop  # noqa: E402
from tornado.testing import bind_unused_port  # noqa: E402
from tornado.websocket import websocket_connect  # noqa: E402

from Button import GpioButton  # noqa: E402
from Repository import Repository  # noqa: E402
from tests.conftest import build_app  # noqa: E402
from tests.fake_gpio import FakeGPIO  # noqa: E402
from thebutton.feed import Feed  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def thread_cpu(native_id):
    """CPU seconds used so far by one thread of this process."""
    with open("/proc/self/task/%d/stat" % native_id) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


async def main(args):
    tmp = tempfile.mkdtemp()
    repository = Repository(os.path.join(tmp, "counter.db"), goal=1_000_000)
    feed = Feed(repository.state())
    app = build_app(repository, feed)
    sock, port = bind_unused_port("127.0.0.1")
    server = HTTPServer(app)
    server.add_sockets([sock])
    loop = IOLoop.current()
    gpio = FakeGPIO(edge_detection=not args.poll)
    button = GpioButton(gpio=gpio)
    button.open()

    def on_press():
        # The button thread; the server hands the change on through thebutton.changes instead.
        state = repository.press(source="gpio")
        loop.add_callback(feed.send_updates, state, "press")

    button.start(on_press)
    ws = await websocket_connect("ws://127.0.0.1:%d/websocket" % port)
    await ws.read_message()
    latencies = []
    for _ in range(args.presses):
        t0 = time.perf_counter()
        await loop.run_in_executor(None, gpio.drive_low, 11)  # the edge, from another thread
        msg = json.loads(await ws.read_message())
        while msg.get("event") == "beat":  # the heartbeat frames that ride with pings
            msg = json.loads(await ws.read_message())
        latencies.append((time.perf_counter() - t0) * 1000)
        assert msg["event"] == "press", msg
        await loop.run_in_executor(None, gpio.drive_high, 11)
        await loop.run_in_executor(None, button.wait_settled, 2.0)
    tid = button._thread.native_id
    c0 = thread_cpu(tid)
    await asyncio.sleep(args.idle)
    c1 = thread_cpu(tid)
    button.stop()
    ws.close()
    server.stop()
    repository.close()
    print(json.dumps({
        "presses": args.presses,
        "mode": button.mode,
        "edge_to_client_ms": {"median": round(statistics.median(latencies), 3),
                              "max": round(max(latencies), 3)},
        "debounce_ms": 50,
        "button_thread_idle_cpu_pct": round(100 * (c1 - c0) / args.idle, 3),
    }))


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--presses", type=int, default=100)
    p.add_argument("--idle", type=float, default=5.0)
    p.add_argument("--poll", action="store_true", help="read the pin by polling, as where edge detection fails")
    asyncio.run(main(p.parse_args()))
