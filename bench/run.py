"""The Button's fan-out benchmark: the product against three yardsticks, same client, same run.

    python bench/run.py                       # N = 100, 1000, 5000, 10000; 3 repeats
    python bench/run.py --n 50 --repeats 1    # the smoke run CI does
    python bench/run.py --servers button --n 10000 --note "Acme Corp!"   # presses with a note
    git worktree add /tmp/before <commit>
    python bench/run.py --servers button button-before --before /tmp/before --n 10000
                                              # the product against an earlier commit of itself

Servers run pinned to core 0, the client to core 1 (taskset, when there are two cores).
Writes bench/results/results.json, bench/results/results.md and bench/results/latency.png.
"""
import argparse
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results")
TICK = os.sysconf("SC_CLK_TCK")
BEFORE = {"root": None}  # --before: the checkout that "button-before" runs


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pinned(core, cmd):
    if shutil.which("taskset") and os.cpu_count() >= 2:
        return ["taskset", "-c", str(core)] + cmd
    return cmd


def server_command(name, port, db, ping_interval=None):
    """The command line of a server, and the method its press takes.

    button-nobeat is the product without its heartbeat frame (nobeat_server.py); ping_interval
    (seconds) applies to the product only, the yardsticks always ping every 20 s.
    """
    py = sys.executable
    if name in ("button", "button-nobeat", "button-before", "button-device"):
        script = {"button": os.path.join(ROOT, "websocketserver.py"),
                  "button-device": os.path.join(ROOT, "websocketserver.py"),
                  "button-nobeat": os.path.join(HERE, "nobeat_server.py"),
                  "button-before": os.path.join(BEFORE["root"] or "--before not given", "websocketserver.py")}[name]
        cmd = [py, script, "--port=%d" % port, "--address=127.0.0.1", "--button=none", "--admin-token=bench",
               "--max-connections=20000", "--db=" + db, "--logging=warning"]
        if ping_interval is not None:
            cmd.append("--ping-interval=%g" % ping_interval)
        with open(script if name != "button-nobeat" else os.path.join(ROOT, "websocketserver.py")) as f:
            if "viewers_per_address" in f.read():  # every viewer here comes from 127.0.0.1 (older trees: no limit)
                cmd.append("--viewers-per-address=0")
        return cmd, "POST"
    if name == "naive-tornado":
        return [py, os.path.join(HERE, "yard_naive.py"), str(port)], "POST"
    if name == "websockets":
        return [py, os.path.join(HERE, "yard_websockets.py"), str(port)], "GET"
    if name == "node-ws":
        return ["node", os.path.join(HERE, "yard_node.js"), str(port)], "POST"
    raise ValueError(name)


def proc_stat(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICK
    with open("/proc/%d/status" % pid) as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return cpu, rss


def wait_up(port, proc, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited: %s" % proc.returncode)
        try:
            urllib.request.urlopen("http://127.0.0.1:%d/healthz" % port, timeout=1).read()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not start")


def client_command(kind, port, n, presses, spacing, method, note=None, by=None, hello=False, path=None):
    flags = ["--port=%d" % port, "--n=%d" % n, "--presses=%d" % presses, "--spacing=%s" % spacing,
             "--method=" + method]
    if path is not None:
        if kind == "node":
            raise ValueError("a device's URL needs the Python client")
        flags.append("--path=" + path)
    if hello:
        flags.append("--hello")
    if kind == "node":
        if note is not None or hello:
            raise ValueError("--note and --hello need the Python client")
        return ["node", os.path.join(HERE, "client.js")] + flags
    if note is not None:
        flags.append("--note=" + note)
    if by is not None:
        flags.append("--by=" + by)
    return [sys.executable, os.path.join(HERE, "client.py")] + flags


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # children inherit it


def device_url(port):
    """button-device: the product pressed through a device's own URL (POST /hook/<secret>, no token)."""
    import urllib.request

    request = urllib.request.Request("http://127.0.0.1:%d/api/devices" % port, method="POST",
                                     data=json.dumps({"name": "Bench", "kind": "button"}).encode(),
                                     headers={"Authorization": "Bearer bench"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())["url"]


def run_one(name, n, presses, spacing, idle_s, client_kind="python", note=None, ping_interval=None,
            during_idle=None, by=None, hello=False):
    """One server, one client: connect n viewers, idle idle_s seconds, press; the figures as a dict.

    during_idle(server_pid), if given, replaces the idle sleep (it must take idle_s) and returns
    more figures for the result.
    """
    port = free_port()
    tmp = tempfile.mkdtemp()
    cmd, method = server_command(name, port, os.path.join(tmp, "counter.db"), ping_interval)
    server = subprocess.Popen(pinned(0, cmd), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_up(port, server)
        path = device_url(port) if name == "button-device" else None
        cpu0, rss0 = proc_stat(server.pid)
        client = subprocess.Popen(
            pinned(1, client_command(client_kind, port, n, presses, spacing, method, note, by, hello, path)),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = client.stdout.readline()
        if line.strip() != "READY":
            raise RuntimeError("client failed: %r" % line)
        cpu1, rss1 = proc_stat(server.pid)
        # the idle window being measured
        extra = during_idle(server.pid) if during_idle else (time.sleep(idle_s) or {})
        cpu2, _ = proc_stat(server.pid)
        client.stdin.write("go\n")
        client.stdin.flush()
        out = json.loads(client.stdout.readline())
        cpu3, _ = proc_stat(server.pid)  # before the client's exit closes N sockets
        client.stdin.close()  # the client exits now
        client.wait()
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    per_press = []
    missed = 0
    for p in out["presses"]:
        lat = p["latencies_ms"]
        missed += n - out["failed"] - p["received"]
        if lat:
            per_press.append({"p50": statistics.median(lat), "p99": lat[min(len(lat) - 1, int(len(lat) * 0.99))],
                              "max": lat[-1]})
    med = {k: statistics.median(p[k] for p in per_press) for k in ("p50", "p99", "max")} if per_press else {}
    result = {
        "server": name, "n": n, "failed": out["failed"], "missed": missed, "connect_s": out["connect_s"],
        "latency_ms": med, "rss_kb_per_conn": round((rss1 - rss0) / n, 2),
        "idle_cpu_pct": round(100 * (cpu2 - cpu1) / idle_s, 2), "idle_s": idle_s,
        # The press window includes the spacing sleeps, in which the server only idles.
        "cpu_ms_per_press": round(1000 * (cpu3 - cpu2) / max(1, len(out["presses"])), 2),
        # The client's own CPU per press: well under the latency means it kept up.
        "client_cpu_ms_per_press": round(1000 * out["cpu_s"] / max(1, len(out["presses"])), 2),
    }
    result.update(extra)
    if note is not None:
        result["note"] = note
    if by is not None:
        result["by"] = by
    if ping_interval is not None:
        result["ping_interval"] = ping_interval
    if hello:
        result["hello"] = True
    return result


def summarize(runs):
    table = {}
    for r in runs:
        table.setdefault((r["server"], r["n"]), []).append(r)
    rows = []
    for (server, n), rs in sorted(table.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        def stat(f, rs=rs):
            values = [f(r) for r in rs if f(r) is not None]
            return (statistics.median(values), min(values), max(values)) if values else (None, None, None)
        rows.append({
            "server": server, "n": n, "repeats": len(rs),
            "max_ms": stat(lambda r: r["latency_ms"].get("max")),
            "p50_ms": stat(lambda r: r["latency_ms"].get("p50")),
            "p99_ms": stat(lambda r: r["latency_ms"].get("p99")),
            "rss_kb_per_conn": stat(lambda r: r["rss_kb_per_conn"]),
            "idle_cpu_pct": stat(lambda r: r["idle_cpu_pct"]),
            "cpu_ms_per_press": stat(lambda r: r["cpu_ms_per_press"]),
            "client_cpu_ms_per_press": stat(lambda r: r.get("client_cpu_ms_per_press")),
            "failed": sum(r["failed"] for r in rs), "missed": sum(r["missed"] for r in rs),
        })
    return rows


def markdown(rows):
    def f(t):
        med, lo, hi = t
        return "–" if med is None else "%.1f (%.1f–%.1f)" % (med, lo, hi)
    best = {}
    for r in rows:
        if r["server"] == "node-ws":
            best[r["n"]] = r["max_ms"][0]
    lines = ["| N | server | press → last client ms | p50 ms | p99 ms | ratio to node-ws (last client) "
             "| RSS KB/conn | idle CPU % | CPU ms/press | client CPU ms/press | failed | missed |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = "–"
        if best.get(r["n"]) and r["max_ms"][0] is not None:
            ratio = "%.2f" % (r["max_ms"][0] / best[r["n"]])
        lines.append("| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d | %d |" % (
            r["n"], r["server"], f(r["max_ms"]), f(r["p50_ms"]), f(r["p99_ms"]), ratio,
            f(r["rss_kb_per_conn"]), f(r["idle_cpu_pct"]), f(r["cpu_ms_per_press"]),
            f(r["client_cpu_ms_per_press"]), r["failed"], r["missed"]))
    return "\n".join(lines) + "\n"


def plot(rows, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot", file=sys.stderr)
        return
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for server in sorted({r["server"] for r in rows}):
        pts = sorted((r["n"], r["max_ms"][0]) for r in rows if r["server"] == server and r["max_ms"][0] is not None)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=server)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("connected clients (N)")
    ax.set_ylabel("press → last client, median over presses (ms)")
    ax.set_title("The Button fan-out: latency against N")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, nargs="+", default=[100, 1000, 5000, 10000])
    p.add_argument("--servers", nargs="+", default=["button", "naive-tornado", "websockets", "node-ws"])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--presses", type=int, default=10)
    p.add_argument("--spacing", type=float, default=0.3)
    p.add_argument("--idle", type=float, default=3.0, help="seconds of idle CPU measurement")
    p.add_argument("--idle-at-max", type=float, default=21.0,
                   help="seconds of idle CPU measurement at the largest N: longer than the 20 s ping "
                        "interval, so that the window holds a ping to every viewer")
    p.add_argument("--client", choices=["python", "node"], default="python",
                   help="load client: client.py (raw sockets and epoll, the default: the cheapest) "
                        "or client.js (Node with ws)")
    p.add_argument("--note", default=None,
                   help='press with the JSON body {"note": NOTE} rather than an empty one (Python client only)')
    p.add_argument("--by", default=None, help='press with "by": BY in the JSON body (Python client only)')
    p.add_argument("--hello", action="store_true",
                   help="each viewer says hello (a screen of its own) once it has the state, as the countdown "
                        "page does: the connect storm of pages naming their screens (Python client only)")
    p.add_argument("--ping-interval", type=float, default=None,
                   help="the product's --ping-interval (default: its own, 20 s); the yardsticks keep 20 s")
    p.add_argument("--before", default=None,
                   help='a checkout of an earlier commit (git worktree add DIR COMMIT): server "button-before" runs it')
    p.add_argument("--out", default=RESULTS)
    args = p.parse_args()
    BEFORE["root"] = args.before
    raise_nofile()
    if ("node-ws" in args.servers or args.client == "node") and not os.path.isdir(os.path.join(HERE, "node_modules", "ws")):
        subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund"], cwd=HERE, check=True)
    runs = []
    for n in args.n:
        for _rep in range(args.repeats):
            for server in args.servers:  # interleaved, so drift hits every server alike
                idle = args.idle_at_max if n == max(args.n) and len(args.n) > 1 else args.idle
                r = run_one(server, n, args.presses, args.spacing, idle, args.client, args.note,
                            args.ping_interval, by=args.by, hello=args.hello)
                print(json.dumps(r), flush=True)
                runs.append(r)
    rows = summarize(runs)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"runs": runs, "summary": rows}, f, indent=1)
    md = markdown(rows)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(md)
    plot(rows, os.path.join(args.out, "latency.png"))
    print(md)
    bad = [r for r in rows if r["failed"] or r["missed"]]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
