"""The polling button path: idle CPU of the polling thread and press latency (fake edge -> on_press).

    python bench/button_poll.py [--idle 10] [--presses 200]
    python bench/button_poll.py --before /tmp/bench-before [--repeats 3]

Runs the real GpioButton against the tests' fake RPi.GPIO with edge detection failing as
RPi.GPIO 0.7.1 does on kernel 6.6, so the button thread polls the pin. The same figures for the
edge path (a fake whose edge detection works) are printed beside them. Prints JSON.

``--before DIR`` measures this tree's Button.py and the one in DIR (a git worktree of an older
commit), each in its own process, interleaved ``--repeats`` times, with the same fake GPIO
(this tree's), and prints both with the medians of the idle CPU and the latency.
"""
import argparse
import json
import os
import random
import statistics
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if "--code" in sys.argv:  # the Button.py of another tree (--before runs this script with it)
    sys.path.insert(0, sys.argv[sys.argv.index("--code") + 1])
sys.path.insert(1 if "--code" in sys.argv else 0, ROOT)

from Button import GpioButton  # noqa: E402
from tests.fake_gpio import FakeGPIO  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def thread_cpu(native_id):
    """CPU seconds used so far by one thread of this process, from /proc (in clock ticks)."""
    with open("/proc/self/task/%d/stat" % native_id) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def thread_cpu_ns(native_id):
    """CPU nanoseconds used so far by one thread, from schedstat (finer than the ticks of stat)."""
    with open("/proc/self/task/%d/schedstat" % native_id) as f:
        return int(f.read().split()[0])


def percentiles(values_ms):
    ordered = sorted(values_ms)
    return {"median": round(statistics.median(ordered), 3),
            "p90": round(ordered[int(0.9 * (len(ordered) - 1))], 3),
            "p99": round(ordered[int(0.99 * (len(ordered) - 1))], 3),
            "max": round(ordered[-1], 3)}


def measure(edge_detection, presses, idle):
    """Latency of ``presses`` presses, then the button thread's CPU over ``idle`` seconds."""
    gpio = FakeGPIO(edge_detection=edge_detection)
    button = GpioButton(gpio=gpio)
    button.open()
    pressed_at = []
    seen = threading.Event()

    def on_press():
        # The button thread.
        pressed_at.append(time.perf_counter())
        seen.set()

    button.start(on_press)
    latencies = []
    try:
        for _ in range(presses):
            seen.clear()
            # A press comes at any moment, not just after a read: a random phase against the polls.
            time.sleep(random.uniform(0, 0.01))
            t0 = time.perf_counter()
            gpio.drive_low(11)  # returns at once when nothing watches edges
            if not seen.wait(2):
                raise SystemExit("a press was not seen within 2 s")
            latencies.append((pressed_at[-1] - t0) * 1000)
            gpio.drive_high(11)
            if not button.wait_settled(2):
                raise SystemExit("the button did not settle within 2 s")
        tid = button._thread.native_id  # bench only: the thread whose CPU we read
        reads0, c0, ns0, t0 = gpio.reads, thread_cpu(tid), thread_cpu_ns(tid), time.perf_counter()
        time.sleep(idle)  # the bench's idle period, not a test wait
        reads1, c1, ns1, t1 = gpio.reads, thread_cpu(tid), thread_cpu_ns(tid), time.perf_counter()
    finally:
        button.stop()
    elapsed = t1 - t0
    result = {
        "mode": button.mode,
        "poll_ms": round(getattr(button, "_poll_interval", 0) * 1000, 3),
        "presses": presses,
        "press_latency_ms": percentiles(latencies),
        "idle_seconds": round(elapsed, 2),
        "idle_cpu_pct_of_one_core": round(100 * (c1 - c0) / elapsed, 3),
        "idle_cpu_pct_of_one_core_schedstat": round(100 * (ns1 - ns0) / 1e9 / elapsed, 3),
        "reads_per_second": round((reads1 - reads0) / elapsed, 1),
    }
    if reads1 > reads0:
        result["cpu_us_per_read"] = round((ns1 - ns0) / 1000 / (reads1 - reads0), 2)
    return result


def measure_floor(idle, interval=0.012):
    """The CPU of a thread that does nothing but sleep the poll interval: the machine's own cost
    of a wake-up, which no polling loop can go below (it differs a lot between VMs)."""
    stop = threading.Event()

    def sleeper():
        while not stop.is_set():
            time.sleep(interval)

    t = threading.Thread(target=sleeper, daemon=True)
    t.start()
    time.sleep(0.2)
    ns0, t0 = thread_cpu_ns(t.native_id), time.perf_counter()
    time.sleep(idle)  # the bench's idle period
    ns1, t1 = thread_cpu_ns(t.native_id), time.perf_counter()
    stop.set()
    t.join()
    return round(100 * (ns1 - ns0) / 1e9 / (t1 - t0), 3)


def before_and_after(args):
    """This tree's Button.py against the one of ``args.before``, interleaved, each in a fresh process."""
    import subprocess

    runs = {"after": [], "before": []}
    for _ in range(args.repeats):
        for arm, code in (("before", os.path.abspath(args.before)), ("after", ROOT)):
            out = subprocess.run([sys.executable, os.path.abspath(__file__), "--code", code,
                                  "--presses", str(args.presses), "--idle", str(args.idle)],
                                 check=True, capture_output=True, text=True).stdout
            runs[arm].append(json.loads(out))
    summary = {}
    for arm, results in runs.items():
        polls = [r["poll"] for r in results]
        summary[arm] = {
            "poll_ms": polls[0].get("poll_ms"),
            "idle_cpu_pct_of_one_core_schedstat": [p["idle_cpu_pct_of_one_core_schedstat"] for p in polls],
            "idle_cpu_median": statistics.median(p["idle_cpu_pct_of_one_core_schedstat"] for p in polls),
            "press_latency_ms_median": statistics.median(p["press_latency_ms"]["median"] for p in polls),
            "press_latency_ms_max": max(p["press_latency_ms"]["max"] for p in polls),
            "cpu_us_per_read": [p.get("cpu_us_per_read") for p in polls],
            "reads_per_second": [p["reads_per_second"] for p in polls],
        }
    summary["bare_sleep_loop_idle_cpu_pct"] = [measure_floor(args.idle) for _ in range(args.repeats)]
    print(json.dumps({"summary": summary, "runs": runs, "before": args.before,
                      "cpu_count": os.cpu_count(), "python": sys.version.split()[0]}, indent=2))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--presses", type=int, default=200)
    p.add_argument("--idle", type=float, default=10.0)
    p.add_argument("--code", help="the tree whose Button.py to measure (default: this one)")
    p.add_argument("--before", help="also measure the Button.py of this tree, interleaved")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    if args.before:
        before_and_after(args)
        return
    print(json.dumps({
        "poll": measure(False, args.presses, args.idle),
        "edge": measure(True, args.presses, args.idle),
        "bare_sleep_loop_idle_cpu_pct": measure_floor(args.idle),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
    }, indent=2))


if __name__ == "__main__":
    main()
