"""A press with a note, and the heartbeat's idle cost: the product only, arms interleaved.

    python bench/note_beat.py                                    # N = 10000, 4 arms, 3 repeats (~14 min)
    python bench/note_beat.py --ping-interval 20 --idle 21 --arms beat nobeat --out bench/results/beat-20s.json
    python bench/note_beat.py --toggle --repeats 2 --out bench/results/beat_toggle-5s.json
    python bench/note_beat.py --n 200 --repeats 1 --idle 1       # a quick run

Arms (each a run of bench/run.py's run_one with the same load client, client.py):
  beat         websocketserver.py as shipped, presses with an empty body;
  beat+note    the same, every press POSTs {"note": "Acme Corp!"} (--note);
  nobeat       bench/nobeat_server.py: the product with PING_AND_BEAT set to the bare ping
               frame, so each ping goes without its {"event":"beat"} text frame;
  nobeat+note  that, with the note.
With --toggle, each repeat is instead one nobeat_server.py with N viewers whose idle time is
--windows windows of --idle s, beat off and on in the order off, on, on, off, off, on, ... (SIGUSR1
swaps it): both ways over the same sockets, so the difference is not lost in run-to-run spread.
Every arm uses the same --ping-interval (default here 5 s, to hold several ping rounds in a
short idle window). Prints a Markdown table of medians (min-max) and the heartbeat's cost per
beat; writes bench/results/note_beat.json.
"""
import argparse
import json
import os
import signal
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import run as bench  # noqa: E402  (bench/run.py: server start, load client, CPU and RSS readings)

ARMS = {"beat": ("button", None), "beat+note": ("button", "Acme Corp!"),
        "nobeat": ("button-nobeat", None), "nobeat+note": ("button-nobeat", "Acme Corp!")}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=10000)
    p.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--presses", type=int, default=10)
    p.add_argument("--spacing", type=float, default=0.3)
    p.add_argument("--ping-interval", type=float, default=5.0, help="the product's --ping-interval, every arm")
    p.add_argument("--idle", type=float, default=10.0, help="idle window, s (a whole number of ping intervals)")
    p.add_argument("--toggle", action="store_true", help="beat off and on in alternate windows of one server")
    p.add_argument("--windows", type=int, default=8, help="with --toggle: idle windows per repeat (even)")
    p.add_argument("--out", default=os.path.join(HERE, "results", "note_beat.json"))
    args = p.parse_args()
    bench.raise_nofile()
    if args.toggle:
        return toggled(args)
    runs = []
    for _rep in range(args.repeats):
        for arm in args.arms:  # interleaved, so drift hits every arm alike
            server, note = ARMS[arm]
            r = bench.run_one(server, args.n, args.presses, args.spacing, args.idle, note=note,
                              ping_interval=args.ping_interval)
            r["product"], r["server"] = server, arm  # summarize() groups by "server"
            print(json.dumps(r), flush=True)
            runs.append(r)
    rows = bench.summarize(runs)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"ping_interval": args.ping_interval, "idle_s": args.idle, "runs": runs, "summary": rows},
                  f, indent=1)
    print(markdown(rows, args.n, args.ping_interval))
    return 1 if any(r["failed"] or r["missed"] for r in rows) else 0


def toggled(args):
    order = [k % 4 in (1, 2) for k in range(args.windows)]  # off, on, on, off: linear drift cancels

    def windows(pid):
        out = []
        beat = False
        for on in order:
            if on != beat:
                os.kill(pid, signal.SIGUSR1)
                beat = on
            cpu0, _ = bench.proc_stat(pid)
            time.sleep(args.idle)
            cpu1, _ = bench.proc_stat(pid)
            out.append({"beat": on, "cpu_pct": round(100 * (cpu1 - cpu0) / args.idle, 2)})
        if beat:
            os.kill(pid, signal.SIGUSR1)
        on = [w["cpu_pct"] for w in out if w["beat"]]
        off = [w["cpu_pct"] for w in out if not w["beat"]]
        return {"windows": out, "beat_on_pct": round(statistics.mean(on), 2),
                "beat_off_pct": round(statistics.mean(off), 2),
                "beat_cost_pct": round(statistics.mean(on) - statistics.mean(off), 2)}

    runs = []
    for _rep in range(args.repeats):
        r = bench.run_one("button-nobeat", args.n, args.presses, args.spacing, args.idle * len(order),
                          ping_interval=args.ping_interval, during_idle=windows)
        r["server"] = "toggle"
        print(json.dumps(r), flush=True)
        runs.append(r)
    beats_per_s = args.n / args.ping_interval
    with open(args.out, "w") as f:
        json.dump({"ping_interval": args.ping_interval, "window_s": args.idle, "runs": runs}, f, indent=1)
    print("| repeat | idle CPU %, beat on (mean of windows) | beat off | on − off | µs a beat |")
    print("|---|---|---|---|---|")
    for i, r in enumerate(runs, 1):
        print("| %d | %.2f | %.2f | %+.2f | %+.1f |" % (i, r["beat_on_pct"], r["beat_off_pct"], r["beat_cost_pct"],
                                                    1e4 * r["beat_cost_pct"] / beats_per_s))
    cost = statistics.median(r["beat_cost_pct"] for r in runs)
    print("median: %+.2f %% idle CPU at N = %d (%d beats/s): %+.1f µs a beat" % (
        cost, args.n, beats_per_s, 1e4 * cost / beats_per_s))
    return 1 if any(r["failed"] or r["missed"] for r in runs) else 0


def markdown(rows, n, ping_interval):
    def f(t):
        med, lo, hi = t
        return "–" if med is None else "%.1f (%.1f–%.1f)" % (med, lo, hi)
    by = {r["server"]: r for r in rows}
    lines = ["| arm | repeats | press → last client ms | p50 ms | idle CPU % | CPU ms/press | failed | missed |",
             "|---|---|---|---|---|---|---|---|"]
    for arm in ARMS:
        if arm in by:
            r = by[arm]
            lines.append("| %s | %d | %s | %s | %s | %s | %d | %d |" % (
                arm, r["repeats"], f(r["max_ms"]), f(r["p50_ms"]), f(r["idle_cpu_pct"]),
                f(r["cpu_ms_per_press"]), r["failed"], r["missed"]))
    for beat in ("beat", "nobeat"):
        if beat in by and beat + "+note" in by:
            lines.append("\n%s: note / no note, press → last client: %.2f" % (
                beat, by[beat + "+note"]["max_ms"][0] / by[beat]["max_ms"][0]))
    if "beat" in by and "nobeat" in by:
        beats_per_s = n / ping_interval
        extra = (by["beat"]["idle_cpu_pct"][0] - by["nobeat"]["idle_cpu_pct"][0]) / 100  # CPU s per s
        lines.append("heartbeat: %+.2f %% idle CPU at N = %d, %d beats/s: %+.1f µs a beat" % (
            100 * extra, n, beats_per_s, 1e6 * extra / beats_per_s))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
