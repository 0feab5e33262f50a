"""The integrations' cost: press -> last viewer with webhooks, MQTT and metrics on, against without.

    python bench/integrations.py                          # N = 1000, 10000; 3 repeats (~6 min)
    python bench/integrations.py --n 200 --repeats 1      # a quick run

"plain" is the server as bench/run.py starts it (/metrics is always on). "integrations"
adds --webhook to a receiver that accepts connections and never answers (every POST
hangs until its timeout, then is retried), --mqtt to a mosquitto started here, with
Home Assistant discovery and --mqtt-commands. The same epoll load client (client.py)
measures both, interleaved; figures are medians over repeats (min-max).
Writes bench/results/integrations.json and prints a Markdown table.
"""
import argparse
import json
import os
import resource
import socket
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, ROOT)

import run as bench  # noqa: E402  (bench/run.py: server start, load client, CPU and RSS readings)

from tests.mosquitto import Broker  # noqa: E402


def hanging_receiver():
    """A listening socket nobody accepts from: connections complete in the kernel, requests never get an answer."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, nargs="+", default=[1000, 10000])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--presses", type=int, default=10)
    p.add_argument("--spacing", type=float, default=0.3)
    p.add_argument("--idle", type=float, default=3.0)
    p.add_argument("--idle-at-max", type=float, default=21.0, help="idle window at the largest N (holds a ping round)")
    p.add_argument("--out", default=os.path.join(HERE, "results", "integrations.json"))
    args = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    receiver = hanging_receiver()
    broker = Broker().start()
    extra = ["--webhook=http://127.0.0.1:%d/hook" % receiver.getsockname()[1],
             "--mqtt=" + broker.url, "--mqtt-commands=true"]
    product = bench.server_command

    def server_command(name, port, db, ping_interval=None):
        cmd, method = product("button", port, db, ping_interval)
        return (cmd + extra if name == "integrations" else cmd), method

    bench.server_command = server_command  # run_one starts servers through it
    runs = []
    try:
        for n in args.n:
            for _rep in range(args.repeats):
                for name in ("plain", "integrations"):
                    idle = args.idle_at_max if n == max(args.n) and len(args.n) > 1 else args.idle
                    r = bench.run_one(name, n, args.presses, args.spacing, idle)
                    print(json.dumps(r), flush=True)
                    runs.append(r)
    finally:
        broker.cleanup()
        receiver.close()
    rows = bench.summarize(runs)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"runs": runs, "summary": rows}, f, indent=1)
    print(markdown(rows))
    return 1 if any(r["failed"] or r["missed"] for r in rows) else 0


def markdown(rows):
    def f(t):
        med, lo, hi = t
        return "–" if med is None else "%.1f (%.1f–%.1f)" % (med, lo, hi)
    plain = {r["n"]: r["max_ms"][0] for r in rows if r["server"] == "plain"}
    lines = ["| N | server | press → last client ms | p50 ms | ratio to plain | idle CPU % | CPU ms/press | failed | missed |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = "%.2f" % (r["max_ms"][0] / plain[r["n"]]) if plain.get(r["n"]) and r["max_ms"][0] else "–"
        lines.append("| %d | %s | %s | %s | %s | %s | %s | %d | %d |" % (
            r["n"], r["server"], f(r["max_ms"]), f(r["p50_ms"]), ratio, f(r["idle_cpu_pct"]),
            f(r["cpu_ms_per_press"]), r["failed"], r["missed"]))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
