"""A Redis that loses the shared state: the servers that knew it put it back, never --goal.

Real redis-servers (tests/redis_server.py), most of them without persistence, so that a
restart comes back empty as a Redis without appendonly does; FLUSHALL and DEL stand in for
an eviction (both take keys away without a word to the servers).
"""
from __future__ import annotations

import asyncio

import pytest

from tests.conftest import until
from tests.redis_server import RedisServer
from tests.test_redis import Heard, servers, until_health  # noqa: F401 - servers is a fixture
from thebutton import redis_store
from thebutton.redis_store import RedisStore
from thebutton.store import NothingToUndo

NO_PERSISTENCE = ["--appendonly", "no"]  # with --save "": a restart comes back empty


@pytest.fixture
def forgetful_redis():
    """A redis-server that keeps nothing on disk."""
    server = RedisServer(extra=NO_PERSISTENCE)
    try:
        yield server.start()
    finally:
        server.remove()


def heard_after(heard: Heard, start: int, predicate, timeout: float = 5.0):
    """The first change heard from the ``start``-th on for which predicate is true."""
    def found():
        return next((c for c in heard.changes[start:] if predicate(c)), None)

    with heard.cond:
        assert heard.cond.wait_for(lambda: found() is not None, timeout), f"not heard: {heard.changes[start:]}"
        return found()


def summary(state: dict) -> tuple:
    return state["count"], state["goal"], state["presses"], state["title"]


def test_redis_restart_without_its_data_puts_back_the_newest_state(forgetful_redis, servers):
    """The issue's case: two servers, 10 presses, goal 500 and count 400, Redis restarted empty:
    both still show 400 of 500, log that Redis lost its data, and /healthz warns; presses go on."""
    a = servers(forgetful_redis.url, "--goal=30", name="a")
    b = servers(forgetful_redis.url, "--goal=30", name="b")
    for n in range(10):
        assert (a if n % 2 else b).request("POST", "/api/press")[0] == 200
    status, _ = a.request("PUT", "/api/count", {"goal": 500, "count": 400, "title": "Deals"})
    assert status == 200
    assert "warning" not in a.request("GET", "/healthz")[1]

    async def restart_redis():
        forgetful_redis.kill()
        for server in (a, b):
            await until_health(server, lambda h: h["store"]["ok"] is False)
        forgetful_redis.start()
        for server in (a, b):
            await until_health(server, lambda h: h["store"]["ok"] is True, timeout=15)

    asyncio.run(restart_redis())
    for server in (a, b):
        assert summary(server.request("GET", "/api/count")[1]) == (400, 500, 10, "Deals")
        health = server.request("GET", "/healthz")[1]
        assert "lost its data" in health["warning"] and health["store"]["warning"] == health["warning"]
        assert f"Redis at 127.0.0.1:{forgetful_redis.port} lost its data" in server.output()
        assert "Deals" not in server.output()  # the title is people's text: not in the log
    assert forgetful_redis.client().hget("the-button:state", "count") == "400"
    assert b.request("POST", "/api/press")[1]["count"] == 399
    asyncio.run(until(lambda: a.request("GET", "/api/count")[1]["count"] == 399))
    assert a.request("GET", "/api/history")[1]["presses"][0]["count_after"] == 399


def test_flushall_while_connected_is_put_back_by_the_next_press(forgetful_redis, tmp_path):
    """FLUSHALL with both stores connected (no reconnect, nothing published): the next press puts
    the state back and counts on from it; the other store hears it; the press log starts again."""
    with RedisStore(forgetful_redis.url, key="k", goal=30, outbox_path=str(tmp_path / "1.db")) as one, \
            RedisStore(forgetful_redis.url, key="k", goal=30, outbox_path=str(tmp_path / "2.db")) as two:
        heard = Heard()
        one.listen(heard)
        one.set(goal=500, count=400, title="Deals")
        for _ in range(3):
            two.press(source="api")
        heard.wait_for(lambda c: c.state.count == 397)
        forgetful_redis.client().flushall()
        state = two.press(source="api", note="after")
        assert (state.count, state.goal, state.presses, state.title) == (396, 500, 4, "Deals")
        assert heard.wait_for(lambda c: c.state.count == 396).state.goal == 500
        assert "lost its data" in one.health()["warning"] and "lost its data" in two.health()["warning"]
        assert [(p["count_after"], p["note"]) for p in one.history()] == [(396, "after")]
        rounds = one.rounds()
        assert (rounds[0]["goal"], rounds[0]["presses"], rounds[0]["ended"]) == (500, 1, None)
        assert one.undo().count == 397
        with pytest.raises(NothingToUndo):  # the presses before the loss are gone
            one.undo()


def test_flushall_with_nobody_pressing_is_noticed_and_put_back(forgetful_redis, tmp_path):
    """FLUSHALL while both stores sit idle: within a few seconds one puts the state back, both warn."""
    with RedisStore(forgetful_redis.url, key="k", goal=30, outbox_path=str(tmp_path / "1.db")) as one, \
            RedisStore(forgetful_redis.url, key="k", goal=30, outbox_path=str(tmp_path / "2.db")) as two:
        heard_one, heard_two = Heard(), Heard()
        one.listen(heard_one)
        two.listen(heard_two)
        one.set(goal=50, count=12)
        heard_two.wait_for(lambda c: c.state.count == 12)
        client = forgetful_redis.client()
        version = int(client.hget("k:state", "version"))
        starts = {id(h): len(h.changes) for h in (heard_one, heard_two)}
        client.flushall()
        # Both hear the put-back (a new epoch) as a state from elsewhere.
        for heard in (heard_one, heard_two):
            change = heard_after(heard, starts[id(heard)], lambda c: c.event == "set" and not c.local,
                                 timeout=redis_store.CHECK_EVERY + 5)
            assert (change.state.count, change.state.goal) == (12, 50)
        assert one.health()["warning"] and two.health()["warning"]
        assert client.hget("k:state", "count") == "12" and int(client.hget("k:state", "version")) == version


def test_the_newest_state_wins_over_an_older_one_and_over_goal(forgetful_redis, tmp_path, monkeypatch):
    """After a loss, a new server seeds --goal and a server that knew an older state puts that
    back; the server that knew the newest state replaces both, and everyone ends on it."""
    monkeypatch.setattr(redis_store, "CHECK_EVERY", 3600.0)  # only what the servers do notices the loss
    url, older, newest = forgetful_redis.url, str(tmp_path / "b.db"), str(tmp_path / "a.db")
    with RedisStore(url, key="k", goal=30, outbox_path=newest) as a:
        with RedisStore(url, key="k", goal=30, outbox_path=older) as b:
            heard = Heard()
            b.listen(heard)
            a.set(goal=100, count=50, title="Q4")
            heard.wait_for(lambda ch: ch.state.count == 50)
        for _ in range(3):  # B is stopped: it knows 50, A knows 47
            a.press(source="api")
        forgetful_redis.client().flushall()
        with RedisStore(url, key="k", goal=30, outbox_path=str(tmp_path / "c.db")) as c:
            assert c.state().count == 30  # it never saw the state: a fresh key starts at --goal
            heard_c = Heard()
            c.listen(heard_c)
            with RedisStore(url, key="k", goal=30, outbox_path=older) as b:
                heard_b = Heard()
                b.listen(heard_b)
                state = a.press(source="api")
                assert (state.count, state.goal, state.title) == (46, 100, "Q4")
                for heard in (heard_b, heard_c):
                    assert heard.wait_for(lambda ch: ch.state.count == 46).state.goal == 100
                assert forgetful_redis.client().hget("k:state", "count") == "46"
                assert all("lost its data" in s.health()["warning"] for s in (a, b))


def test_a_restarted_server_puts_back_what_it_knew_before(forgetful_redis, tmp_path):
    """Redis and the server restart together (Redis on the same Pi): the state the server kept
    beside its outbox is put back, not --goal."""
    outbox = str(tmp_path / "1.db")
    with RedisStore(forgetful_redis.url, key="k", goal=30, outbox_path=outbox) as store:
        store.set(goal=500, count=400, title="Deals")
        store.press(source="api")
    forgetful_redis.kill()
    forgetful_redis.start()
    with RedisStore(forgetful_redis.url, key="k", goal=30, outbox_path=outbox) as store:
        state = store.state()
        assert (state.count, state.goal, state.presses, state.title) == (399, 500, 1, "Deals")
        assert "lost its data" in store.health()["warning"]
        assert store.press(source="api").count == 398


def test_a_state_evicted_alone_keeps_the_press_log(forgetful_redis, tmp_path):
    """Eviction takes one key at a time: with only the state gone, the press log stays readable
    and new presses get new ids after it; undo does not reach back past the put-back."""
    with RedisStore(forgetful_redis.url, key="k", goal=30, outbox_path=str(tmp_path / "1.db")) as store:
        for _ in range(3):
            store.press(source="api")
        forgetful_redis.client().delete("k:state")
        assert store.press(source="api").count == 26
        assert [p["id"] for p in store.history()] == [4, 3, 2, 1]
        assert [r["presses"] for r in store.rounds()[:2]] == [1, 3]
        assert store.undo().count == 27
        with pytest.raises(NothingToUndo):
            store.undo()


def test_start_up_log_warns_when_redis_may_evict_keys(servers):
    """maxmemory-policy allkeys-lru: a warning naming noeviction; Redis's default: none; CONFIG
    renamed away (managed Redis): no warning, no traceback, and the server works."""
    lru = RedisServer(extra=["--maxmemory-policy", "allkeys-lru"])
    plain = RedisServer()
    locked = RedisServer(extra=["--rename-command", "CONFIG", ""])
    try:
        a = servers(lru.start().url, name="a")
        assert "may evict keys (maxmemory-policy allkeys-lru)" in a.output()
        assert "maxmemory-policy noeviction" in a.output()
        b = servers(plain.start().url, name="b")
        assert "evict" not in b.output()
        c = servers(locked.start().url, name="c")
        assert c.request("POST", "/api/press")[1]["count"] == 19
        assert "evict" not in c.output() and "Traceback" not in c.output()
    finally:
        for redis in (lru, plain, locked):
            redis.remove()
