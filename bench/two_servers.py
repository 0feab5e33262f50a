"""Several servers, one count: press on server A until the last viewer on server B has it.

    python bench/two_servers.py                         # N = 10000; 3 repeats of each setup
    python bench/two_servers.py --n 1000 --repeats 1    # a quick run

Setups, each with N viewers in all, the same load client (bench/client.py's epoll loop):
  sqlite-1   one server on its SQLite file, N viewers (the single-server figure)
  redis-1    one server on Redis, N viewers (what the Redis round trip and pub/sub hop add)
  redis-2    two servers on one Redis, N/2 viewers each; presses go to A, timed to B's last viewer

Servers run on core 0 (both of them in redis-2, so that every setup has one core of server
time), the client and redis-server on core 1 (taskset, when there are two cores). Writes
bench/results/two_servers.json.
"""
import argparse
import json
import os
import select
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from run import free_port, pinned, wait_up  # noqa: E402 - bench/run.py's helpers

SETUPS = ("sqlite-1", "redis-1", "redis-2")


# -- the load client (a subprocess): viewers on one or two servers, presses on the first ----------

def client_main(args):
    import client  # bench/client.py: open_viewers, serve_viewer

    ep = select.epoll()
    groups = []  # per server: (viewers {fd: entry}, receipts {presses: [times]})
    for port, n in zip(args.ports, args.counts):
        receipts = {}
        opening = select.epoll()  # client.open_viewers serves every fd of the epoll it is given
        viewers, failed = client.open_viewers(port, n, 200, opening, receipts)
        opening.close()
        if failed:
            raise SystemExit(f"{failed} viewers failed to connect to {port}")
        for fd in viewers:
            ep.register(fd, select.EPOLLIN)
        groups.append((viewers, receipts))
    owner = {fd: g for g in groups for fd in g[0]}
    print("READY", flush=True)
    sys.stdin.readline()
    results = []
    for _ in range(args.presses):
        t0 = time.perf_counter()
        s = socket.create_connection(("127.0.0.1", args.ports[0]))
        s.sendall(b"POST /api/press HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer bench\r\n"
                  b"Content-Length: 0\r\nConnection: close\r\n\r\n")
        s.setblocking(False)
        ep.register(s.fileno(), select.EPOLLIN)
        answer, value, answered = b"", None, None
        deadline = t0 + 15
        while True:
            events = ep.poll(0.05)
            now = time.perf_counter()
            for fd, _ev in events:
                if fd == s.fileno():
                    chunk = s.recv(65536)
                    answer += chunk
                    if not chunk:
                        ep.unregister(fd)
                        s.close()
                        answered = now
                        value = json.loads(answer.partition(b"\r\n\r\n")[2])["presses"]
                elif fd in owner:
                    viewers, receipts = owner[fd]
                    client.serve_viewer(viewers, ep, fd, receipts, now)
            if value is not None and (all(len(g[1].get(value, [])) >= len(g[0]) for g in groups) or now > deadline):
                break
        per_server = []
        for viewers, receipts in groups:
            times = sorted(t - t0 for t in receipts.get(value, []))
            per_server.append({"received": len(times), "of": len(viewers),
                               "first_ms": round(times[0] * 1000, 2) if times else None,
                               "last_ms": round(times[-1] * 1000, 2) if times else None})
        results.append({"answered_ms": round((answered - t0) * 1000, 2), "servers": per_server})
        time.sleep(args.spacing)
    print(json.dumps(results), flush=True)
    sys.stdin.readline()  # keep the viewers open until the runner has what it needs


# -- the runner ----------------------------------------------------------------------------------

def start_redis(tmp):
    port = free_port()
    proc = subprocess.Popen(pinned(1, ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", tmp,
                                       "--appendonly", "yes", "--appendfsync", "always", "--save", "",
                                       "--logfile", os.path.join(tmp, "redis.log")]))
    deadline = time.monotonic() + 10
    while True:  # polling to a deadline: redis-server signals nothing when it is ready
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return proc, port
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("redis-server did not start")
        time.sleep(0.05)


def server(port, db, store=None):
    cmd = [sys.executable, os.path.join(ROOT, "websocketserver.py"), f"--port={port}", "--address=127.0.0.1",
           "--button=none", "--admin-token=bench", "--max-connections=20000", f"--db={db}",
           "--logging=warning", "--goal=1000000", "--viewers-per-address=0"]
    if store:
        cmd.append(f"--store={store}")
    proc = subprocess.Popen(pinned(0, cmd), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_up(port, proc)
    return proc


def run_one(setup, n, presses, spacing):
    tmp = tempfile.mkdtemp(prefix="button-bench-")
    procs = []
    try:
        store = None
        if setup.startswith("redis"):
            redis, redis_port = start_redis(tmp)
            procs.append(redis)
            store = f"redis://127.0.0.1:{redis_port}"
        count = 2 if setup == "redis-2" else 1
        ports = [free_port() for _ in range(count)]
        for i, port in enumerate(ports):
            procs.append(server(port, os.path.join(tmp, f"s{i}.db"), store))
        counts = [n // count] * count
        load = subprocess.Popen(
            pinned(1, [sys.executable, __file__, "--client", "--ports", *map(str, ports), "--counts",
                       *map(str, counts), "--presses", str(presses), "--spacing", str(spacing)]),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        procs.append(load)
        if load.stdout.readline().strip() != "READY":
            raise RuntimeError("the load client failed")
        time.sleep(1.0)  # let the last handshakes' work settle
        load.stdin.write("go\n")
        load.stdin.flush()
        results = json.loads(load.stdout.readline())
        load.stdin.close()
        load.wait()
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.terminate()
                proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    last = [r["servers"][-1]["last_ms"] for r in results]  # B's last viewer (A's when one server)
    first = [r["servers"][-1]["first_ms"] for r in results]
    missed = sum(s["of"] - s["received"] for r in results for s in r["servers"])
    return {"setup": setup, "n": n, "missed": missed,
            "answered_ms": statistics.median(r["answered_ms"] for r in results),
            "first_on_b_ms": statistics.median(first), "last_on_b_ms": statistics.median(last),
            "last_on_a_ms": statistics.median(r["servers"][0]["last_ms"] for r in results)}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--ports", type=int, nargs="+", help=argparse.SUPPRESS)
    p.add_argument("--counts", type=int, nargs="+", help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, default=10000, help="viewers in all")
    p.add_argument("--setups", nargs="+", default=list(SETUPS), choices=SETUPS)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--presses", type=int, default=10)
    p.add_argument("--spacing", type=float, default=0.3)
    p.add_argument("--out", default=os.path.join(HERE, "results", "two_servers.json"))
    args = p.parse_args()
    if args.client:
        return client_main(args)
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    runs = []
    for _repeat in range(args.repeats):
        for setup in args.setups:  # interleaved, so that a slow moment of the machine hits every setup
            run = run_one(setup, args.n, args.presses, args.spacing)
            runs.append(run)
            print(json.dumps(run), flush=True)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(runs, f, indent=1)
    print("\n| setup | N | answered ms | first on B ms | last on B ms | last on A ms | missed |")
    print("|---|---|---|---|---|---|---|")
    for setup in args.setups:
        rows = [r for r in runs if r["setup"] == setup]
        med = {k: statistics.median(r[k] for r in rows)
               for k in ("answered_ms", "first_on_b_ms", "last_on_b_ms", "last_on_a_ms")}
        print(f"| {setup} | {args.n} | {med['answered_ms']:.1f} | {med['first_on_b_ms']:.1f} | "
              f"{med['last_on_b_ms']:.1f} | {med['last_on_a_ms']:.1f} | {sum(r['missed'] for r in rows)} |")


if __name__ == "__main__":
    main()
