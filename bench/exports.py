"""Press to screen while CSV exports of 100,000 presses run, through a real server.

    .venv/bin/python bench/exports.py                          # this checkout
    .venv/bin/python bench/exports.py --before /tmp/old-tree   # and an older checkout, in one run

Builds one database of ``--presses`` presses (bench/history.py's builder), copies it for
each server, starts ``websocketserver.py`` of each checkout on it, opens ``--viewers``
WebSocket viewers, and times ``--samples`` presses (POST /api/press) from the moment the
request is sent until the last viewer has the new count: first with nothing else running,
then while ``--exports`` clients (another process, one thread each) download
``/api/history.csv?limit=100000`` over and over, waiting out a 429's Retry-After as a
polite client does. Prints a Markdown table.
"""
import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, ROOT)

import history as history_bench  # noqa: E402  (bench/history.py: the database builder)
from tornado.httpclient import AsyncHTTPClient  # noqa: E402
from tornado.websocket import websocket_connect  # noqa: E402

TOKEN = "bench-token-0123456789abcdef"

LOAD = r"""
import sys, threading, time, urllib.error, urllib.request
url, n = sys.argv[1], int(sys.argv[2])
done = [0, 0]
def work():
    while True:
        try:
            with urllib.request.urlopen(url, timeout=120) as r:
                r.read()
            done[0] += 1
        except urllib.error.HTTPError as e:
            e.read()
            done[1] += 1
            time.sleep(int(e.headers.get("Retry-After", "1")))
        except OSError:
            return
        print("exports %d refused %d" % tuple(done), flush=True)
for _ in range(n):
    threading.Thread(target=work, daemon=True).start()
threading.Event().wait()
"""


async def sample(port, viewers, samples):
    """Milliseconds from each press sent to its count on the last viewer, and on the median viewer."""
    sockets = [await websocket_connect("ws://127.0.0.1:%d/websocket" % port) for _ in range(viewers)]
    for ws in sockets:
        await ws.read_message()  # the state on open
    client = AsyncHTTPClient(force_instance=True)
    last, median = [], []
    for _ in range(samples):
        started = time.perf_counter()
        answer = await client.fetch("http://127.0.0.1:%d/api/press" % port, method="POST", body=b"",
                                    headers={"Authorization": "Bearer " + TOKEN}, request_timeout=60)
        presses = json.loads(answer.body)["presses"]

        async def arrival(ws, presses=presses, started=started):
            while True:
                message = json.loads(await ws.read_message())
                if message.get("presses") == presses:
                    return (time.perf_counter() - started) * 1000
        times = sorted(await asyncio.gather(*(arrival(ws) for ws in sockets)))
        last.append(times[-1])
        median.append(times[len(times) // 2])
        await asyncio.sleep(0.1)
    client.close()
    for ws in sockets:
        ws.close()
    return last, median


def stats(values):
    values = sorted(values)
    return statistics.median(values), values[min(len(values) - 1, int(len(values) * 0.95))], values[-1]


def run_server(tree, db, port):
    proc = subprocess.Popen([sys.executable, os.path.join(tree, "websocketserver.py"), "--port=%d" % port,
                             "--address=127.0.0.1", "--button=none", "--db=" + db, "--admin-token=" + TOKEN,
                             "--logging=warning"], stdin=subprocess.DEVNULL)
    history_bench.wait_for(port, proc)
    return proc


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presses", type=int, default=100_000)
    parser.add_argument("--viewers", type=int, default=100)
    parser.add_argument("--exports", type=int, default=8)
    parser.add_argument("--samples", type=int, default=40)
    parser.add_argument("--before", help="another checkout to measure in the same run (e.g. a git worktree)")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="button-exports-bench-")
    built = os.path.join(tmp, "built.db")
    history_bench.build(built, args.presses)
    trees = [("this checkout", ROOT)] + ([("before", os.path.abspath(args.before))] if args.before else [])
    print("| server | exports running | press → last of %d screens: median / p95 / max ms | median screen ms | "
          "exports done, refused |" % args.viewers)
    print("|---|---|---|---|---|")
    for name, tree in trees:
        db = os.path.join(tmp, name.replace(" ", "-") + ".db")
        shutil.copy(built, db)
        port = history_bench.free_port()
        proc = run_server(tree, db, port)
        try:
            last, median = asyncio.run(sample(port, args.viewers, args.samples))
            print("| %s | none | %.1f / %.1f / %.1f | %.1f | |" % ((name,) + stats(last) + (statistics.median(median),)),
                  flush=True)
            url = "http://127.0.0.1:%d/api/history.csv?limit=100000" % port
            load_log = open(os.path.join(tmp, name.replace(" ", "-") + ".load"), "w")
            load = subprocess.Popen([sys.executable, "-c", LOAD, url, str(args.exports)], stdout=load_log)
            try:
                time.sleep(2)  # the exports under way before the first sample
                last, median = asyncio.run(sample(port, args.viewers, args.samples))
            finally:
                load.terminate()
                load.wait(10)
                load_log.close()
            with open(load_log.name) as f:
                lines = f.read().split("\n")
            tally = [line for line in lines if line][-1:] or ["exports 0 refused 0"]
            print("| %s | %d clients | %.1f / %.1f / %.1f | %.1f | %s |" % (
                (name, args.exports) + stats(last) + (statistics.median(median), tally[0])), flush=True)
        finally:
            proc.terminate()
            proc.wait(10)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
