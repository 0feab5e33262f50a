"""How fast GET /api/leaderboard answers with 100,000 presses in the store, for both stores.

    .venv/bin/python bench/leaderboard.py                  # 100,000 presses, 100 requests a period
    .venv/bin/python bench/leaderboard.py --presses 10000  # a quick look

Fills each store through its own press path (so the Redis store's tallies are what its
scripts keep): 100,000 presses with a goal of 100,000 (one round), "by" one of 30 names on
four presses in five, one in fifty undone. Then times Store.leaderboard for each period
in-process (the route adds only its JSON), and the press itself before and after, so that
the cost of the indexes and tallies on a press shows. Redis is Debian's redis-server on a
free 127.0.0.1 port, without persistence. Prints a Markdown table.
"""
import argparse
import datetime
import os
import shutil
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from Repository import Repository  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402

NAMES = ["Person %d" % i for i in range(30)]


def fill(store, presses):
    """Presses through the store, as the API makes them; the press times in ms (median, p95)."""
    took = []
    for i in range(presses):
        started = time.perf_counter()
        store.press(source="api", by=NAMES[i % 30] if i % 5 else None)
        took.append((time.perf_counter() - started) * 1000)
        if i % 50 == 49:
            store.undo()
    took.sort()
    return statistics.median(took), took[int(len(took) * 0.95)]


def timed(call, repeats):
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.95))], times[-1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presses", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=100)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="button-leaderboard-bench-")
    month = datetime.datetime.now().astimezone().replace(day=1, hour=0, minute=0, second=0, microsecond=0).isoformat()
    redis = RedisServer().start()
    print("| store | press ms (median / p95, while filling) | leaderboard round ms | month ms | all ms |")
    print("|---|---|---|---|---|")
    try:
        from thebutton.redis_store import RedisStore
        stores = [("sqlite", lambda: Repository(os.path.join(tmp, "counter.db"), goal=args.presses)),
                  ("redis", lambda: RedisStore(redis.url, key="bench", goal=args.presses,
                                               outbox_path=os.path.join(tmp, "outbox.db")))]
        for name, make in stores:
            store = make()
            try:
                press = fill(store, args.presses)
                cells = ["%.1f / %.1f / %.1f" % timed(lambda p=period, s=store: s.leaderboard(p, since=month), args.repeats)
                         for period in ("round", "month", "all")]
                print("| %s | %.2f / %.2f | %s |" % (name, press[0], press[1], " | ".join(cells)), flush=True)
            finally:
                store.close()
    finally:
        redis.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
