"""Scheduled rounds: period boundaries in local time (DST included) and the RoundSchedule against a real SQLite store.

The schedule and the store read one clock that the tests move, so nothing waits for a
real day to pass.
"""
import asyncio
import datetime
import sqlite3
import time
from zoneinfo import ZoneInfo

import pytest
from tornado.ioloop import IOLoop

import thebutton.rounds as rounds
from Repository import Repository
from thebutton.rounds import RoundSchedule, next_period_start, period_start, seconds_between
from thebutton.store import StoreError

BERLIN = ZoneInfo("Europe/Berlin")


def at(text, tz=BERLIN):
    """A local time in tz from "YYYY-MM-DD HH:MM"."""
    return datetime.datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=tz)


class Clock:
    """The local time as the tests set it; the store stamps its rounds with it too."""

    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now

    def iso(self):
        return self.now.astimezone(datetime.timezone.utc).isoformat(timespec="milliseconds")


@pytest.fixture
def clock():
    return Clock(at("2025-03-12 09:30"))  # a Wednesday


@pytest.fixture
def store(db_path, clock):
    with Repository(db_path, goal=5, clock=clock.iso) as r:
        yield r


def run(coroutine_function):
    """Run an async test body on a fresh event loop (the IOLoop wraps it)."""
    return asyncio.run(coroutine_function())


@pytest.mark.parametrize("kind, now, start, following", [
    ("daily", "2025-03-12 09:30", "2025-03-12 00:00", "2025-03-13 00:00"),
    ("daily", "2025-03-12 00:00", "2025-03-12 00:00", "2025-03-13 00:00"),
    ("daily", "2025-12-31 23:59", "2025-12-31 00:00", "2026-01-01 00:00"),
    ("weekly", "2025-03-12 09:30", "2025-03-10 00:00", "2025-03-17 00:00"),
    ("weekly", "2025-03-16 23:59", "2025-03-10 00:00", "2025-03-17 00:00"),
    ("weekly", "2025-03-17 00:00", "2025-03-17 00:00", "2025-03-24 00:00"),
    ("weekly", "2025-12-31 12:00", "2025-12-29 00:00", "2026-01-05 00:00"),
    ("monthly", "2025-03-12 09:30", "2025-03-01 00:00", "2025-04-01 00:00"),
    ("monthly", "2025-01-31 23:00", "2025-01-01 00:00", "2025-02-01 00:00"),
    ("monthly", "2024-02-29 12:00", "2024-02-01 00:00", "2024-03-01 00:00"),
    ("monthly", "2025-12-15 12:00", "2025-12-01 00:00", "2026-01-01 00:00"),
])
def test_period_boundaries_are_local_midnights(kind, now, start, following):
    """A day starts at midnight, a week on Monday at midnight, a month on the 1st at midnight."""
    assert period_start(at(now), kind) == at(start)
    assert next_period_start(at(now), kind) == at(following)


def test_boundaries_across_dst_have_the_offset_of_their_moment():
    """Around a DST change, each boundary carries the local offset of that moment, and the wait is real seconds."""
    spring = at("2025-03-30 12:00")  # Berlin went from +01:00 to +02:00 at 02:00 that night
    assert period_start(spring, "daily").utcoffset() == datetime.timedelta(hours=1)
    assert next_period_start(spring, "daily").utcoffset() == datetime.timedelta(hours=2)
    day = seconds_between(period_start(spring, "daily"), next_period_start(spring, "daily"))
    assert day == 23 * 3600
    autumn = at("2025-10-26 12:00")
    day = seconds_between(period_start(autumn, "daily"), next_period_start(autumn, "daily"))
    assert day == 25 * 3600
    month = seconds_between(at("2025-03-15 00:00"), next_period_start(at("2025-03-15 00:00"), "monthly"))
    assert month == (17 * 24 - 1) * 3600


def test_fixed_offset_times_use_the_systems_local_rules(monkeypatch):
    """With a fixed UTC offset (what the server's own clock gives), the system's time zone rules decide the boundary's offset."""
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    try:
        now = datetime.datetime(2025, 3, 30, 12, 0).astimezone()  # +02:00 by then
        assert now.utcoffset() == datetime.timedelta(hours=2)
        start = period_start(now, "daily")
        assert start.utcoffset() == datetime.timedelta(hours=1)
        assert start == datetime.datetime(2025, 3, 29, 23, 0, tzinfo=datetime.timezone.utc)
        assert seconds_between(now, next_period_start(now, "daily")) == 12 * 3600
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_unknown_kind_is_refused(store):
    """A kind other than daily, weekly or monthly is a ValueError."""
    with pytest.raises(ValueError):
        period_start(at("2025-03-12 09:30"), "hourly")

    async def body():
        with pytest.raises(ValueError):
            RoundSchedule(store, "none")
    run(body)


def test_boundary_passed_while_off_is_applied_at_start(store, clock):
    """A schedule started after a boundary the store has not seen starts the round at once and arms for the next."""
    store.press()
    store.press()
    clock.now = at("2025-03-14 08:00")  # the server was off over two midnights

    async def body():
        schedule = RoundSchedule(store, "daily", clock=clock)
        state = await schedule.check()
        schedule.stop()
        return state, schedule
    state, schedule = run(body)
    assert (state.count, state.goal) == (5, 5)
    newest, previous = store.rounds()
    assert newest["started"] == clock.iso() and newest["ended"] is None
    assert previous["presses"] == 2 and previous["reached"] is False
    assert schedule.next_boundary == at("2025-03-15 00:00")
    assert schedule.delay == rounds.MAX_SLEEP  # 16 hours away: it wakes sooner and looks again


def test_start_applies_the_period_through_the_ioloop(store, clock):
    """start() runs the first check on the IOLoop; the new round reaches the store's listeners as "round"."""
    clock.now = at("2025-04-02 10:00")

    async def body():
        heard = asyncio.get_running_loop().create_future()
        store.listen(lambda change: heard.get_loop().call_soon_threadsafe(heard.set_result, change))
        schedule = RoundSchedule(store, "monthly", clock=clock)
        schedule.start()
        change = await asyncio.wait_for(heard, 5)
        schedule.stop()
        return change
    change = run(body)
    assert change.event == "round" and change.state.count == 5


def test_restart_within_the_same_period_does_not_reset(db_path, clock):
    """A server restarted later in the same week keeps its count: no second round for the period."""
    clock.now = at("2025-03-10 00:00")  # Monday midnight

    async def start_server():
        with Repository(db_path, goal=5, clock=clock.iso) as store:
            schedule = RoundSchedule(store, "weekly", clock=clock)
            state = await schedule.check()
            schedule.stop()
            return state, store.state().count

    run(start_server)  # the week's round (the fresh store's own round counts for it)
    with Repository(db_path, goal=5, clock=clock.iso) as store:
        store.press()
        store.press()
    clock.now = at("2025-03-16 23:59")  # Sunday night, same week
    state, count = run(start_server)
    assert state is None and count == 3
    clock.now = at("2025-03-17 00:00")  # the next Monday
    state, count = run(start_server)
    assert state is not None and count == 5


def test_not_applied_twice_in_one_period(store, clock):
    """Checking again in the same period (an early wake, a second check) starts nothing."""
    clock.now = at("2025-03-13 00:00")

    async def body():
        schedule = RoundSchedule(store, "daily", clock=clock)
        first = await schedule.check()
        store.press()
        clock.now = at("2025-03-13 18:00")
        second = await schedule.check()
        schedule.stop()
        return first, second
    first, second = run(body)
    assert first is not None and second is None
    assert store.state().count == 4 and len(store.rounds()) == 2


def test_early_wake_rearms_for_the_rest_and_a_late_one_starts_the_round(store, clock):
    """A timer that fires before the boundary re-arms for what is left; after the boundary it starts the round."""
    clock.now = at("2025-03-12 23:00")

    async def body():
        schedule = RoundSchedule(store, "daily", clock=clock, max_sleep=3600)
        await schedule.check()
        assert schedule.delay == 3600
        clock.now = at("2025-03-12 23:59")  # timers drift: woken a minute early
        await schedule.wake()
        assert schedule.delay == 60 and len(store.rounds()) == 1
        clock.now = at("2025-03-13 00:00")
        await schedule.wake()
        schedule.stop()
        return schedule
    schedule = run(body)
    assert len(store.rounds()) == 2
    assert schedule.next_boundary == at("2025-03-14 00:00")


@pytest.mark.parametrize("kind, before, boundary", [
    ("daily", "2025-03-12 23:59", "2025-03-13 00:00"),
    ("weekly", "2025-03-16 23:59", "2025-03-17 00:00"),
    ("monthly", "2025-03-31 23:59", "2025-04-01 00:00"),
])
def test_the_armed_timer_starts_the_round_at_the_boundary(store, clock, kind, before, boundary):
    """The timer armed by the schedule fires at the boundary (the clock runs 10,000 times fast) and starts the round."""
    clock.now = at(before)

    async def body():
        loop = IOLoop.current()
        heard = asyncio.get_running_loop().create_future()
        store.listen(lambda change: heard.get_loop().call_soon_threadsafe(heard.set_result, change))
        schedule = RoundSchedule(store, kind, clock=clock, max_sleep=3600)
        await schedule.check()  # nothing yet: the fresh store's round is this period's
        assert schedule.delay == 60
        # From here the clock follows the IOLoop's, sped up so that the minute takes 6 ms.
        base, started = clock.now, loop.time()
        schedule.clock = lambda: base + datetime.timedelta(seconds=(loop.time() - started) * 10_000)
        # The change is heard from the store's thread before check() arms the next
        # boundary: wait for that arming too, else stop() would cut it off.
        rearmed = asyncio.get_running_loop().create_future()
        arm = schedule._arm

        def arm_and_tell(delay):
            arm(delay)
            if schedule.next_boundary > at(boundary) and not rearmed.done():
                rearmed.set_result(None)
        schedule._arm = arm_and_tell
        schedule._arm(schedule.delay / 10_000)
        change = await asyncio.wait_for(heard, 5)
        await asyncio.wait_for(rearmed, 5)
        schedule.stop()
        return change, schedule
    change, schedule = run(body)
    assert change.event == "round"
    assert len(store.rounds()) == 2
    assert schedule.next_boundary > at(boundary)


def test_store_failure_is_retried(store, clock, caplog):
    """When the store cannot start the round, the schedule logs why and tries again after RETRY seconds."""
    clock.now = at("2025-03-20 10:00")
    calls = []

    class Failing:
        def new_round(self, since=None, until=None):
            calls.append(since)
            if len(calls) == 1:
                raise StoreError("redis is down")
            return store.new_round(since=since, until=until)

    async def body():
        schedule = RoundSchedule(Failing(), "daily", clock=clock, max_sleep=3600)
        first = await schedule.check()
        delay = schedule.delay
        second = await schedule.wake()
        schedule.stop()
        return first, delay, second
    caplog.set_level("ERROR", logger="button.rounds")
    first, delay, _ = run(body)
    assert first is None and delay == rounds.RETRY
    assert "redis is down" in caplog.text
    assert calls == [at("2025-03-20 00:00").isoformat()] * 2
    assert len(store.rounds()) == 2


def test_a_failed_check_after_a_backward_jump_is_tried_again(store, clock, caplog):
    """The clock set back to just before midnight, noticed after it, while the store fails: tried again, midnight's round comes."""
    offset = {"seconds": 0.0}  # the wall clock less the monotonic one, as the schedule measures it
    down = {"now": False}

    class Flaky:
        def new_round(self, since=None, until=None):
            if down["now"]:
                raise StoreError("redis is down")
            return store.new_round(since=since, until=until)

    async def body():
        schedule = RoundSchedule(Flaky(), "daily", clock=clock, offset=lambda: offset["seconds"])
        clock.now = at("2025-03-13 10:00")  # the clock runs ahead: Thursday's round, stamped "the future"
        assert await schedule.check() is not None
        offset["seconds"] -= 10 * 3600 + 2  # NTP sets it back to Wednesday 23:59:58, as Redis goes away
        clock.now = at("2025-03-13 00:00") + datetime.timedelta(seconds=3)  # the next look
        down["now"] = True
        await schedule.wake()
        down["now"] = False
        clock.now = at("2025-03-13 00:01")  # the retry; the clock ran on without a jump
        await schedule.wake()
        schedule.stop()
        return schedule
    caplog.set_level("ERROR", logger="button.rounds")
    schedule = run(body)
    assert "redis is down" in caplog.text
    newest = store.rounds()[0]
    assert newest["started"] == clock.iso() and newest["ended"] is None
    assert store.state().count == 5
    assert schedule.next_boundary == at("2025-03-14 00:00")


def test_a_backward_jump_within_the_period_keeps_the_round(store, clock, caplog):
    """Set back within the day, the clock starts no round (the count stays); the next midnight still starts one."""
    offset = {"seconds": 0.0}

    async def body():
        schedule = RoundSchedule(store, "daily", clock=clock, offset=lambda: offset["seconds"])
        clock.now = at("2025-03-13 10:00")
        await schedule.check()
        store.press()
        offset["seconds"] -= 2 * 3600
        clock.now = at("2025-03-13 08:00")
        await schedule.wake()
        count = store.state().count
        clock.now = at("2025-03-14 00:00")
        await schedule.wake()
        schedule.stop()
        return count
    caplog.set_level("WARNING", logger="button.rounds")
    assert run(body) == 4
    assert "the clock jumped back by 2:00:00" in caplog.text
    friday, thursday, _ = store.rounds()
    assert thursday["presses"] == 1 and thursday["started"] == at("2025-03-13 10:00").astimezone(
        datetime.timezone.utc).isoformat(timespec="milliseconds")
    assert friday["started"] == clock.iso() and store.state().count == 5


def test_stop_disarms_the_timer(store, clock):
    """After stop() no timer is armed and a late wake starts nothing."""
    async def body():
        schedule = RoundSchedule(store, "daily", clock=clock)
        await schedule.check()
        assert schedule._timer is not None
        schedule.stop()
        assert schedule._timer is None
        clock.now = at("2025-03-20 00:00")
        await schedule.wake()
    run(body)
    assert len(store.rounds()) == 1


def test_server_option_round_starts_the_schedule(server_factory, db_path):
    """python websocketserver.py --round=daily applies today's round at start when the store's round began days ago."""
    with Repository(db_path, goal=4) as r:
        r.press()
    db = sqlite3.connect(db_path)
    days_ago = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=2)
    db.execute("UPDATE rounds SET started = ?", (days_ago.isoformat(timespec="milliseconds"),))
    db.commit()
    db.close()
    server = server_factory("--round=daily", "--button=none")
    deadline = time.monotonic() + 10
    while True:  # polling to a deadline: the round starts on the server's IOLoop, no event reaches us
        status, body = server.request("GET", "/api/rounds", token=None)
        if len(body["rounds"]) == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(body["rounds"]) == 2 and body["rounds"][0]["ended"] is None
    assert server.request("GET", "/api/count", token=None)[1]["count"] == 4
