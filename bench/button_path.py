"""The button path: fake GPIO edge -> stored press -> WebSocket message at a client, and idle CPU.

    python bench/button_path.py [--presses 100] [--poll] [--led] [--repeats 1]

Runs the real GpioButton (with the tests' fake RPi.GPIO), a real Repository file and the real
Tornado app in one process, with one WebSocket client on 127.0.0.1; the press goes the server's
way (the store's commit -> thebutton.changes -> the feed). With --poll the fake's edge
detection fails as RPi.GPIO 0.7.1's does on kernel 6.6, so the button thread polls the pin.
With --led the run is made twice per repeat, without and with the LED (thebutton/led.py on
pin 12 of the same fake, one more listener), interleaved. Prints JSON.
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
from thebutton.changes import Changes  # noqa: E402
from thebutton.feed import Feed  # noqa: E402
from thebutton.led import Led  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def thread_cpu(native_id):
    """CPU seconds used so far by one thread of this process."""
    with open("/proc/self/task/%d/stat" % native_id) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


async def measure(args, with_led):
    tmp = tempfile.mkdtemp()
    repository = Repository(os.path.join(tmp, "counter.db"), goal=1_000_000)
    changes = Changes(IOLoop.current())
    repository.listen(changes.publish)
    feed = Feed(repository.state())
    changes.listen(feed.on_change)
    app = build_app(repository, feed)
    sock, port = bind_unused_port("127.0.0.1")
    server = HTTPServer(app)
    server.add_sockets([sock])
    loop = IOLoop.current()
    gpio = FakeGPIO(edge_detection=not args.poll)
    button = GpioButton(gpio=gpio)
    button.open()
    led = None
    if with_led:
        led = Led(12, gpio)
        changes.listen(led.on_change)
        led.start()

    def on_press():
        # The button thread: the store commits, and its commit hands the change on (as in the server).
        repository.press(source="gpio")

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
    flashes = 0
    if led is not None:
        flashes = sum(1 for _t, level in gpio.levels_of(12) if level)
        led.stop()
    button.stop()
    ws.close()
    server.stop()
    repository.close()
    return {
        "led": with_led,
        "led_flashes": flashes,
        "presses": args.presses,
        "mode": button.mode,
        "edge_to_client_ms": {"median": round(statistics.median(latencies), 3),
                              "max": round(max(latencies), 3)},
        "debounce_ms": 50,
        "button_thread_idle_cpu_pct": round(100 * (c1 - c0) / args.idle, 3),
    }


async def main(args):
    runs = []
    for _ in range(args.repeats):
        for with_led in ((False, True) if args.led else (False,)):
            runs.append(await measure(args, with_led))
    if len(runs) == 1:
        print(json.dumps(runs[0]))
        return
    summary = {}
    for arm in ("without LED", "with LED"):
        mine = [r for r in runs if r["led"] == (arm == "with LED")]
        summary[arm] = {"median_ms": [r["edge_to_client_ms"]["median"] for r in mine],
                        "max_ms": [r["edge_to_client_ms"]["max"] for r in mine],
                        "led_flashes": [r["led_flashes"] for r in mine]}
    print(json.dumps({"summary": summary, "runs": runs}, indent=2))


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--presses", type=int, default=100)
    p.add_argument("--idle", type=float, default=5.0)
    p.add_argument("--poll", action="store_true", help="read the pin by polling, as where edge detection fails")
    p.add_argument("--led", action="store_true", help="measure without and with the LED, interleaved")
    p.add_argument("--repeats", type=int, default=1)
    asyncio.run(main(p.parse_args()))
