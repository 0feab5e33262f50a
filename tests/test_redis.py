"""Several servers, one count: real server processes sharing a real redis-server.

Each test starts its own redis-server (appendonly yes, appendfsync always) on a free
127.0.0.1 port and ``python websocketserver.py --store=redis://...`` processes, and
watches them as pages do, through /websocket.
"""
from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import threading
import time
from typing import List, Optional

import pytest

from tests.conftest import TOKEN, ServerProcess, free_port
from tests.redis_server import RedisServer, redis_server  # noqa: F401 - the fixture
from thebutton.store import Change


@pytest.fixture
def servers(tmp_path):
    """A factory of server processes on one Redis; every one is stopped afterwards."""
    started: List[ServerProcess] = []

    def start(redis_url: str, *args: str, name: str = "a", wait: bool = True, **kw) -> ServerProcess:
        server = ServerProcess(str(tmp_path / f"{name}.db"), f"--store={redis_url}", f"--admin-token={TOKEN}",
                               "--button=none" if "stdin" not in kw else "--button=keyboard", *args, **kw)
        started.append(server)
        return server.start(wait=wait)

    yield start
    for server in started:
        server.stop()


class Viewer:
    """One page's socket: keeps every state message it gets (heartbeats aside)."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.messages: List[dict] = []
        self.changed = asyncio.Event()

    async def open(self) -> Viewer:
        from tornado.websocket import websocket_connect

        self.ws = await websocket_connect(f"ws://127.0.0.1:{self.server.port}/websocket")
        self.reader = asyncio.ensure_future(self._read())
        await self.until(lambda m: True)  # the state sent on open
        return self

    async def _read(self) -> None:
        while True:
            raw = await self.ws.read_message()
            if raw is None:
                return
            message = json.loads(raw)
            if message.get("event") != "beat":
                self.messages.append(message)
                self.changed.set()

    async def until(self, predicate, timeout: float = 5.0) -> dict:
        """The first message (old or new) for which predicate is true; fails after timeout."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for message in self.messages:
                if predicate(message):
                    return message
            self.changed.clear()
            left = deadline - asyncio.get_running_loop().time()
            assert left > 0, f"no such message in {timeout}s; got {self.messages[-3:]}"
            try:
                await asyncio.wait_for(self.changed.wait(), left)
            except asyncio.TimeoutError:
                pass

    def counts(self) -> List[int]:
        """The counts of the press messages, in the order they came."""
        return [m["count"] for m in self.messages if m.get("event") == "press"]

    def close(self) -> None:
        self.reader.cancel()
        self.ws.close()


async def call(server: ServerProcess, method: str, path: str, body=None):
    """An HTTP request from an executor thread, so that the test's sockets keep reading."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, lambda: server.request(method, path, body))


def test_two_servers_share_one_count(redis_server, servers):
    """A press through server A reaches a page on server B within a second, and B's API agrees."""
    a = servers(redis_server.url, "--goal=50", name="a")
    b = servers(redis_server.url, "--goal=50", name="b")

    async def main():
        page = await Viewer(b).open()
        assert page.messages[0]["count"] == 50
        started = time.monotonic()
        status, body = await call(a, "POST", "/api/press", {"note": "Acme"})
        assert status == 200 and body["count"] == 49
        message = await page.until(lambda m: m.get("event") == "press", timeout=1.0)
        assert time.monotonic() - started < 1.0
        assert message["count"] == 49 and message["note"] == "Acme"
        page.close()

    asyncio.run(main())
    assert b.request("GET", "/api/count")[1]["count"] == 49
    assert b.request("GET", "/api/history")[1]["presses"][0]["note"] == "Acme"


def test_concurrent_presses_on_two_servers_lose_nothing_in_one_order(redis_server, servers):
    """100 presses at once, split over two servers: none lost, and every page sees the same sequence."""
    a = servers(redis_server.url, "--goal=1000", name="a")
    b = servers(redis_server.url, "--goal=1000", name="b")

    async def main():
        pages = [await Viewer(s).open() for s in (a, b, a, b, a, b)]
        errors: List[object] = []

        def presser(server):
            for _ in range(10):
                status, body = server.request("POST", "/api/press")
                if status != 200:
                    errors.append(body)

        threads = [threading.Thread(target=presser, args=(s,)) for s in (a, b) * 5]
        for t in threads:
            t.start()
        await asyncio.get_running_loop().run_in_executor(None, lambda: [t.join() for t in threads])
        assert errors == []
        for page in pages:
            await page.until(lambda m: m["count"] == 900, timeout=10)
        sequences = [page.counts() for page in pages]
        assert sequences[0] == list(range(999, 899, -1))
        assert all(s == sequences[0] for s in sequences)
        for page in pages:
            page.close()

    asyncio.run(main())
    state = a.request("GET", "/api/count")[1]
    assert (state["count"], state["presses"]) == (900, 100)


def test_kill_9_of_a_server_mid_burst_loses_no_acknowledged_press(redis_server, servers):
    """kill -9 of one server while it stores presses: every press it acknowledged is in Redis."""
    a = servers(redis_server.url, "--goal=100000", name="a")
    b = servers(redis_server.url, "--goal=100000", name="b")
    acknowledged = []
    lock = threading.Lock()
    enough = threading.Event()

    def presser():
        while True:
            try:
                status, _ = a.request("POST", "/api/press")
            except OSError:  # the server is gone
                return
            if status != 200:
                return
            with lock:
                acknowledged.append(1)
                if len(acknowledged) >= 60:
                    enough.set()

    threads = [threading.Thread(target=presser) for _ in range(6)]
    for t in threads:
        t.start()
    assert enough.wait(30)
    a.proc.send_signal(signal.SIGKILL)
    a.proc.wait()
    for t in threads:
        t.join(15)
    state = b.request("GET", "/api/count")[1]
    assert state["presses"] >= len(acknowledged)
    assert state["count"] == 100000 - state["presses"]
    assert len(b.request("GET", "/api/history?limit=1000")[1]["presses"]) == state["presses"]


def test_redis_restart_refuses_writes_keeps_button_presses_and_resyncs(redis_server, servers):
    """Redis killed: API writes 503, pages see "live": false, a button press waits; Redis back: it lands once."""
    a = servers(redis_server.url, "--goal=20", name="a", stdin=subprocess.PIPE)
    b = servers(redis_server.url, "--goal=20", name="b")

    async def main():
        page_a, page_b = await Viewer(a).open(), await Viewer(b).open()
        status, _ = await call(b, "POST", "/api/press")
        assert status == 200
        await page_a.until(lambda m: m["count"] == 19)
        redis_server.kill()
        await page_a.until(lambda m: m.get("live") is False)
        await page_b.until(lambda m: m.get("live") is False)
        status, body = await call(b, "POST", "/api/press")
        assert status == 503 and "not stored" in body["error"]
        status, _ = await call(b, "PUT", "/api/count", {"count": 3})
        assert status == 503
        health = (await call(a, "GET", "/healthz"))[1]
        assert health["store"]["ok"] is False and health["live"] is False
        assert (await call(a, "GET", "/api/count"))[1]["live"] is False
        a.proc.stdin.write(b"\n")  # Enter: a press on A's keyboard button while Redis is down
        a.proc.stdin.flush()
        await until_health(a, lambda h: h["store"].get("waiting_presses") == 1)
        redis_server.start()  # the same port and directory: the AOF brings the count back
        after_a = await page_a.until(lambda m: m["count"] == 18 and "live" not in m, timeout=15)
        after_b = await page_b.until(lambda m: m["count"] == 18 and "live" not in m, timeout=15)
        assert after_a["presses"] == after_b["presses"] == 2
        page_a.close()
        page_b.close()

    asyncio.run(main())
    presses = b.request("GET", "/api/history")[1]["presses"]
    assert [p["source"] for p in presses] == ["keyboard", "api"]
    assert a.request("GET", "/healthz")[1]["store"]["waiting_presses"] == 0


async def until_health(server: ServerProcess, predicate, timeout: float = 10.0) -> dict:
    """Poll /healthz to a deadline (the server has no event to wait on from outside)."""
    deadline = time.monotonic() + timeout
    while True:
        health = (await call(server, "GET", "/healthz"))[1]
        if predicate(health):
            return health
        assert time.monotonic() < deadline, f"/healthz never matched: {health}"
        await asyncio.sleep(0.05)


def test_button_presses_kept_through_a_server_restart_land_once_in_order(redis_server, servers):
    """Button presses made while Redis is down survive a restart of the server and are stored once
    each, oldest first, with the time they were pressed (not the time Redis got them)."""
    import datetime

    a = servers(redis_server.url, "--goal=20", name="a", stdin=subprocess.PIPE)
    redis_server.kill()

    async def main():
        await until_health(a, lambda h: h["store"]["ok"] is False)
        for n in range(1, 4):
            a.proc.stdin.write(b"\n")
            a.proc.stdin.flush()
            await until_health(a, lambda h, n=n: h["store"].get("waiting_presses") == n)

    asyncio.run(main())
    pressed_by = datetime.datetime.now(datetime.timezone.utc)
    assert a.stop() == 0
    redis_server.start()
    again = servers(redis_server.url, "--goal=20", name="a")  # the same --db, so the same outbox
    asyncio.run(until_health(again, lambda h: h["store"]["ok"] and h["store"]["waiting_presses"] == 0))
    state = again.request("GET", "/api/count")[1]
    assert (state["count"], state["presses"]) == (17, 3)
    presses = again.request("GET", "/api/history")[1]["presses"]  # newest first
    assert [(p["source"], p["count_before"], p["count_after"]) for p in presses] == [
        ("keyboard", 18, 17), ("keyboard", 19, 18), ("keyboard", 20, 19)]
    times = [datetime.datetime.fromisoformat(p["at"]) for p in presses]
    assert times == sorted(times, reverse=True)
    assert all(t < pressed_by for t in times), (times, pressed_by)


def on_live(store, callback):
    """callback(live) for each change of the store's liveness (event "live" on the change path)."""
    store.listen(lambda change: change.event == "live" and callback(change.live))


def test_a_press_kept_while_the_outbox_drains_is_stored_too(redis_server, tmp_path):
    """A press kept after Redis is back but before the store is live again (while it stores the
    older ones) is stored as well, without waiting for another press or reconnect."""
    from thebutton.redis_store import RedisStore

    with RedisStore(redis_server.url, key="k", goal=100, outbox_path=str(tmp_path / "1.db")) as store:
        down = threading.Event()
        on_live(store, lambda live: live or down.set())
        redis_server.kill()
        assert down.wait(5)
        for _ in range(3):
            store.press(source="gpio")
        waiting = store.outbox.waiting
        pressed_during_drain = []

        def waiting_and_a_press_meanwhile():
            rows = waiting()
            if rows and not pressed_during_drain:  # the drain at reconnect has read the outbox
                pressed_during_drain.append(store.press(source="gpio"))  # not live yet: kept
            return rows
        store.outbox.waiting = waiting_and_a_press_meanwhile
        redis_server.start()
        deadline = time.monotonic() + 10
        while store.health()["waiting_presses"] or not store.health()["live"]:
            assert time.monotonic() < deadline, "a kept press was left waiting: %s" % store.health()
            time.sleep(0.05)  # polling to a deadline: nothing outside the store can wait on its drain
        assert pressed_during_drain
        assert int(redis_server.client().hget("k:state", "presses")) == 4


def test_separate_keys_are_separate_counters(redis_server, servers):
    """Two keys in one Redis are two counts: a press under one leaves the other alone."""
    a = servers(redis_server.url, "--goal=10", "--store-key=office-a", name="a")
    b = servers(redis_server.url, "--goal=30", "--store-key=office-b", name="b")
    assert a.request("POST", "/api/press")[1]["count"] == 9
    assert b.request("GET", "/api/count")[1]["count"] == 30
    assert b.request("POST", "/api/press")[1]["count"] == 29
    assert a.request("GET", "/api/count")[1]["count"] == 9


def test_server_started_while_redis_is_down_connects_later(tmp_path, servers):
    """A server starts while Redis is unreachable, says so, and connects once Redis is up."""
    redis = RedisServer()
    try:
        a = servers(redis.url, "--goal=12", name="a")
        health = a.request("GET", "/healthz")[1]
        assert health["store"]["ok"] is False and "unreachable" in health["store"]["error"]
        assert a.request("POST", "/api/press")[0] == 503
        redis.start()
        asyncio.run(until_health(a, lambda h: h["store"]["ok"], timeout=15))
        assert a.request("POST", "/api/press")[1]["count"] == 11
        assert "unreachable" in a.output()
    finally:
        redis.remove()


def test_start_up_log_says_whether_redis_keeps_every_press(redis_server, servers):
    """The log says Redis stores every press (appendfsync always), or warns what to set."""
    a = servers(redis_server.url, name="a")
    assert "stores every press on disk" in a.output()
    lax = RedisServer(extra=["--appendfsync", "everysec"])
    try:
        lax.start()
        b = servers(lax.url, name="b")
        assert "could lose the last second" in b.output() and "appendfsync always" in b.output()
    finally:
        lax.remove()


# -- the subscription, in-process ------------------------------------------------------------


class Heard:
    """A listener that lets a test wait for a change it describes."""

    def __init__(self) -> None:
        self.changes: List[Change] = []
        self.cond = threading.Condition()

    def __call__(self, change: Change) -> None:
        with self.cond:
            self.changes.append(change)
            self.cond.notify_all()

    def wait_for(self, predicate, timeout: float = 5.0) -> Change:
        with self.cond:
            found: List[Optional[Change]] = [None]

            def match():
                found[0] = next((c for c in self.changes if predicate(c)), None)
                return found[0] is not None

            assert self.cond.wait_for(match, timeout), f"not heard; heard {self.changes[-3:]}"
            return found[0]


def test_other_servers_changes_are_heard_as_not_local(redis_server, tmp_path):
    """A store hears another store's press through the subscription, marked not local."""
    from thebutton.redis_store import RedisStore

    with RedisStore(redis_server.url, key="k", goal=5, outbox_path=str(tmp_path / "1.db")) as one, \
            RedisStore(redis_server.url, key="k", goal=5, outbox_path=str(tmp_path / "2.db")) as two:
        heard = Heard()
        one.listen(heard)
        two.press(source="api", note="hi")
        change = heard.wait_for(lambda c: c.event == "press")
        assert change.local is False and change.note == "hi" and change.state.count == 4
        assert one.state().count == 4


def test_gap_in_versions_makes_a_resync(redis_server, tmp_path):
    """A change whose version skips ahead makes the store re-read the state and tell its listeners."""
    from thebutton.redis_store import RedisStore

    with RedisStore(redis_server.url, key="k", goal=5, outbox_path=str(tmp_path / "1.db")) as store:
        heard = Heard()
        store.listen(heard)
        client = redis_server.client()
        client.hset("k:state", mapping={"count": 2, "version": 7})  # as if six messages were lost
        epoch = client.hget("k:state", "epoch")
        client.publish("k:changes", json.dumps({"version": 7, "epoch": epoch, "event": "press", "at": "",
                                                "state": {"count": 2, "goal": 5, "presses": 3}}))
        change = heard.wait_for(lambda c: c.state.count == 2)
        assert change.event == "set" and change.local is False
        assert store.state().count == 2


def test_a_foreign_message_on_the_channel_makes_a_resync_not_an_outage(redis_server, tmp_path):
    """Something else published on the change channel: the store reads the state again and stays live."""
    from thebutton.redis_store import RedisStore

    with RedisStore(redis_server.url, key="k", goal=5, outbox_path=str(tmp_path / "1.db")) as store:
        heard = Heard()
        store.listen(heard)
        lives: List[bool] = []
        on_live(store, lives.append)
        client = redis_server.client()
        client.hset("k:state", mapping={"count": 2, "version": 40})  # a change nobody published
        client.publish("k:changes", "hello")
        client.publish("k:changes", json.dumps({"version": "x"}))
        assert heard.wait_for(lambda c: c.state.count == 2).local is False
        store.press(source="api")
        # The press is heard: as its own change, or, when the resync of the second foreign
        # message reads the state after it, within that resync (a "set" of the same state).
        assert heard.wait_for(lambda c: c.state.count == 1).state.presses == 1
        assert lives == []  # no "live" change: it never went out of reach


def test_lost_subscription_is_made_again_and_resyncs(redis_server, tmp_path):
    """After its subscription is cut, the store subscribes again and tells listeners what it missed."""
    from thebutton.redis_store import RedisStore

    with RedisStore(redis_server.url, key="k", goal=5, outbox_path=str(tmp_path / "1.db")) as store, \
            RedisStore(redis_server.url, key="k", goal=5, outbox_path=str(tmp_path / "2.db")) as other:
        heard = Heard()
        store.listen(heard)
        other_cut, other_back = threading.Event(), threading.Event()

        def other_live(live):  # the other store loses its subscription too, then has it back
            if not live:
                other_cut.set()
            elif other_cut.is_set():
                other_back.set()
        on_live(other, other_live)
        client = redis_server.client()
        client.hset("k:state", mapping={"count": 1, "version": 40})  # a change nobody published
        client.client_kill_filter(_type="pubsub")
        heard.wait_for(lambda c: c.state.count == 1, timeout=10)
        # And it still follows: a later press (once the other store has its subscription back)
        # is heard in order.
        assert other_back.wait(10)
        other.press(source="api")
        assert heard.wait_for(lambda c: c.event == "press", timeout=10).state.count == 0


def test_store_while_redis_is_down_keeps_the_last_state(redis_server, tmp_path):
    """With Redis down, state() is the last known state, API writes raise StoreUnavailable, live is False."""
    from thebutton.redis_store import RedisStore
    from thebutton.store import StoreUnavailable

    lives: List[bool] = []
    with RedisStore(redis_server.url, key="k", goal=5, outbox_path=str(tmp_path / "1.db")) as store:
        gone = threading.Event()
        on_live(store, lambda live: (lives.append(live), live or gone.set()))
        store.press(source="api")
        redis_server.kill()
        assert gone.wait(5)
        assert store.state().count == 4
        with pytest.raises(StoreUnavailable):
            store.press(source="api")
        with pytest.raises(StoreUnavailable):
            store.set(count=1)
        assert store.health()["ok"] is False
        assert store.press(source="gpio").count == 4  # kept, not yet counted
        assert store.health()["waiting_presses"] == 1
    assert lives[:1] == [False]


def test_start_while_redis_is_down_uses_the_last_state_heard(redis_server, tmp_path):
    """A store that starts while Redis is down shows the state it last heard (kept beside the outbox)."""
    from thebutton.redis_store import RedisStore

    outbox = str(tmp_path / "1.db")
    with RedisStore(redis_server.url, key="k", goal=9, outbox_path=outbox) as store:
        store.press(source="api")
    redis_server.kill()
    with RedisStore(f"redis://127.0.0.1:{free_port()}", key="k", goal=9, outbox_path=outbox,
                    connect_wait=0.5) as store:
        assert store.state().count == 8
        assert store.health()["ok"] is False



def test_outbox_press_already_stored_is_not_stored_twice(redis_server, tmp_path):
    """A kept press whose id Redis has already applied (a crash before the outbox forgot it) counts once."""
    import sqlite3

    from thebutton.redis_store import RedisStore

    outbox = str(tmp_path / "1.db")
    with RedisStore(redis_server.url, key="k", goal=5, outbox_path=outbox) as store:
        assert store.press(source="gpio").count == 4
    (applied,) = redis_server.client().keys("k:applied:*")
    with sqlite3.connect(outbox) as db:  # as if the server died between Redis's answer and the delete
        db.execute("INSERT INTO outbox (uid, at, source, note) VALUES (?, '2024-01-01T00:00:00.000+00:00', "
                   "'gpio', NULL)", (applied.split(":")[-1],))
    with RedisStore(redis_server.url, key="k", goal=5, outbox_path=outbox) as store:
        assert store.health()["waiting_presses"] == 0
        assert (store.state().count, store.state().presses) == (4, 1)
        assert len(store.history()) == 1
