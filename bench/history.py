"""How fast the history routes answer with 100,000 presses in the log, through a real server.

    .venv/bin/python bench/history.py                 # 100,000 presses, 200 requests a route
    .venv/bin/python bench/history.py --presses 1000  # a quick look

Builds a database of the current schema with the presses (goal 100, so 1,000 rounds; one
press in ten with a note, one in fifty undone) in one transaction, then starts
``websocketserver.py`` on it, as a user would, and times each route over one kept-alive
HTTP connection: median, p95 and max of the whole request (client to server and back).
Prints a Markdown table, and SQLite's plan for each history query.
"""
import argparse
import datetime
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from Repository import Repository  # noqa: E402

GOAL = 100


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build(path, presses):
    """A database whose log holds ``presses`` presses over the last days, rounds as the store keeps them."""
    Repository(path, goal=GOAL).close()  # the schema, at the current version, with its first round
    import sqlite3
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("BEGIN")
    db.execute("DELETE FROM rounds")
    start = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=presses * 5)

    def at(i):
        return (start + datetime.timedelta(seconds=i * 5)).isoformat(timespec="milliseconds")

    count, log, kept = GOAL, [], 0
    round_id = db.execute("INSERT INTO rounds (started, goal) VALUES (?, ?)", (at(0), GOAL)).lastrowid
    round_presses = 0
    for i in range(presses):
        note = "Deal #%d, Acme" % i if i % 10 == 0 else None
        undone = at(i) if i % 50 == 49 else None  # an undone press leaves the count alone
        if count == 0:
            round_id = db.execute("INSERT INTO rounds (started, goal) VALUES (?, ?)", (at(i), GOAL)).lastrowid
            round_presses = 0
            log.append((at(i), "gpio", 0, GOAL, None, note, round_id))
            count = GOAL
            kept += 1
            continue
        if undone:
            log.append((at(i), "api", count, count - 1, undone, note, round_id))
            continue
        log.append((at(i), "gpio", count, count - 1, None, note, round_id))
        count -= 1
        kept += 1
        round_presses += 1
        db.execute("UPDATE rounds SET presses = ?, ended = ?, reached = ? WHERE id = ?",
                   (round_presses, at(i) if count == 0 else None, int(count == 0), round_id))
    db.executemany("INSERT INTO presses (pressed_at, source, count_before, count_after, undone_at, note, round_id) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?)", log)
    db.execute("UPDATE counter SET count = ?, presses = ?, undo_floor = 0 WHERE id = 1", (count, kept))
    db.execute("COMMIT")
    plans = {}
    for name, sql, args in [
        ("history", "SELECT * FROM presses WHERE id < ? ORDER BY id DESC LIMIT ?", (2**63 - 1, 50)),
        ("history before", "SELECT * FROM presses WHERE id < ? ORDER BY id DESC LIMIT ?", (presses // 2, 50)),
        ("rounds", "SELECT * FROM rounds ORDER BY id DESC LIMIT ?", (1000,)),
        ("state", "SELECT count, goal, presses, title FROM counter WHERE id = 1", ()),
    ]:
        plans[name] = "; ".join(row[-1] for row in db.execute("EXPLAIN QUERY PLAN " + sql, args))
    db.close()
    return plans


def wait_for(port, proc, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("server exited with %s" % proc.returncode)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("server did not start")


def timed(conn, path, repeats):
    """Milliseconds of each of ``repeats`` GETs of path (after two warm-up requests), and the body size."""
    times, size = [], 0
    for i in range(repeats + 2):
        started = time.perf_counter()
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        took = (time.perf_counter() - started) * 1000
        assert response.status == 200, (path, response.status, body[:200])
        size = len(body)
        if i >= 2:
            times.append(took)
    return times, size


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presses", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="button-history-bench-")
    db = os.path.join(tmp, "counter.db")
    started = time.perf_counter()
    plans = build(db, args.presses)
    print("built %d presses in %.1f s" % (args.presses, time.perf_counter() - started), file=sys.stderr)
    port = free_port()
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "websocketserver.py"), "--port=%d" % port,
                             "--address=127.0.0.1", "--button=none", "--db=" + db, "--logging=warning"])
    try:
        wait_for(port, proc)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/api/history?limit=1")
        newest = json.loads(conn.getresponse().read())["presses"][0]["id"]
        routes = [
            "/api/history",
            "/api/history?before=%d" % (newest // 2),
            "/api/history?limit=1000",
            "/api/rounds",
            "/api/history.csv?limit=1000",
            "/api/history.csv?limit=100000",
        ]
        print("| route | median ms | p95 ms | max ms | body KB |")
        print("|---|---|---|---|---|")
        for path in routes:
            repeats = args.repeats if "100000" not in path else max(5, args.repeats // 20)
            times, size = timed(conn, path, repeats)
            times.sort()
            p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
            print("| `%s` | %.1f | %.1f | %.1f | %.0f |" % (
                path, statistics.median(times), p95, times[-1], size / 1024))
        conn.close()
    finally:
        proc.terminate()
        proc.wait(10)
    print()
    for name, plan in plans.items():
        print("- %s: %s" % (name, plan))
    # What a press costs with this log, and what counting the log (as schema 2's state() did
    # on every press) would add to it.
    with Repository(db) as repository:
        times = []
        for _ in range(50):
            started = time.perf_counter()
            repository.press(note="bench")
            times.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        for _ in range(20):
            repository._db.execute("SELECT COUNT(*) FROM presses WHERE undone_at IS NULL").fetchone()
        counting = (time.perf_counter() - started) * 1000 / 20
    print("- press (commit with fsync): median %.2f ms; counting the log instead of the kept total: +%.2f ms"
          % (statistics.median(times), counting))


if __name__ == "__main__":
    main()
