"""Scheduled rounds (--round=daily|weekly|monthly): a new round at the start of each period.

Periods are in the server's local time: a day starts at midnight, a week on Monday at
midnight, a month on the 1st at midnight. At start the schedule asks the store for a
round since the current period began, so a boundary passed while the server was off is
applied then; the store starts a round only when its newest round began before that
moment, so a restart within a period (or several servers sharing a Redis store) starts
no second one.

The clock can jump: a Pi has no clock of its own, boots with the time it last saved and
is corrected by NTP later, forward or back. The schedule wakes every WAKE seconds and
compares the wall clock with the monotonic clock (which never jumps); a jump makes it look
at the period again at once, so a boundary the jump passed starts its round within WAKE
seconds, and a boundary computed before a backward jump is computed again. The store skips
a period's round only for a round that began in that period and not in the future (a
round stamped while the clock was ahead must not hide the next boundary).

Runs on the IOLoop; the store call runs in an executor thread. Nothing else here
touches the store.
"""
from __future__ import annotations

import datetime
import logging
import time
from typing import Callable, Optional

from tornado.ioloop import IOLoop

from thebutton.store import State, StoreError

log = logging.getLogger("button.rounds")

PERIODS = ("daily", "weekly", "monthly")
MAX_SLEEP = 10.0  # seconds: wake at least this often and look at the clock again (a jump within 60 s)
RETRY = 60.0  # seconds before trying again when the store failed
JUMP = 2.0  # seconds the wall clock may move against the monotonic clock before it counts as a jump

Clock = Callable[[], datetime.datetime]


def local_now() -> datetime.datetime:
    """Now, as an aware datetime in the server's local time."""
    return datetime.datetime.now().astimezone()


def _localize(wall: datetime.datetime, tz: Optional[datetime.tzinfo]) -> datetime.datetime:
    """A local wall-clock time (naive) made aware with the offset that applies at that moment.

    A fixed offset (what ``astimezone()`` gives) says nothing of DST, so the system's
    local rules decide; a zone with rules (zoneinfo) decides itself.
    """
    if tz is None or isinstance(tz, datetime.timezone):
        return wall.astimezone()
    return wall.replace(tzinfo=tz)


def _start_wall(wall: datetime.datetime, kind: str) -> datetime.datetime:
    midnight = wall.replace(hour=0, minute=0, second=0, microsecond=0, fold=0)
    if kind == "daily":
        return midnight
    if kind == "weekly":
        return midnight - datetime.timedelta(days=midnight.weekday())
    if kind == "monthly":
        return midnight.replace(day=1)
    raise ValueError(f"round kind must be one of {', '.join(PERIODS)}, not {kind!r}")


def period_start(now: datetime.datetime, kind: str) -> datetime.datetime:
    """The start of the period ``now`` (aware, local time) is in: midnight, Monday midnight or the 1st."""
    return _localize(_start_wall(now.replace(tzinfo=None), kind), now.tzinfo)


def next_period_start(now: datetime.datetime, kind: str) -> datetime.datetime:
    """The start of the period after the one ``now`` is in."""
    start = _start_wall(now.replace(tzinfo=None), kind)
    if kind == "daily":
        following = start + datetime.timedelta(days=1)
    elif kind == "weekly":
        following = start + datetime.timedelta(days=7)
    else:
        following = (start + datetime.timedelta(days=32)).replace(day=1)
    return _localize(following, now.tzinfo)


def seconds_between(earlier: datetime.datetime, later: datetime.datetime) -> float:
    """Real seconds from one aware time to another, also across a DST change.

    (Subtracting two datetimes of the same zone object compares wall clocks, so both
    go to UTC first.)
    """
    utc = datetime.timezone.utc
    return (later.astimezone(utc) - earlier.astimezone(utc)).total_seconds()


class RoundSchedule:
    """Starts a new round in ``store`` at each period boundary of ``kind``, local time.

    ``start()`` applies the current period at once and arms a timer for the next
    boundary; the timer is armed for at most MAX_SLEEP seconds at a time and the clock
    is read again on waking, so drift, a jump of the system clock or a suspended machine
    cannot make it miss or repeat a boundary. ``clock`` gives the local time and
    ``offset`` the wall clock less the monotonic clock (tests pass their own). Used on
    the IOLoop thread.
    """

    def __init__(self, store, kind: str, clock: Clock = local_now, loop: Optional[IOLoop] = None,
                 max_sleep: float = MAX_SLEEP, offset: Callable[[], float] = lambda: time.time() - time.monotonic()) -> None:
        if kind not in PERIODS:
            raise ValueError(f"round kind must be one of {', '.join(PERIODS)}, not {kind!r}")
        self.store = store
        self.kind = kind
        self.clock = clock
        self.loop = loop or IOLoop.current()
        self.max_sleep = max_sleep
        self.next_boundary: Optional[datetime.datetime] = None
        self.delay: Optional[float] = None  # seconds the armed timer waits
        self._timer: Optional[object] = None
        self._stopped = False
        self.offset = offset  # the wall clock less the monotonic one: it changes only when the clock jumps
        self._offset: Optional[float] = None

    def start(self) -> None:
        """Apply the current period (soon, on the IOLoop) and keep to the schedule from then on."""
        self.loop.add_callback(self.check)

    async def check(self) -> Optional[State]:
        """Start the current period's round unless it has one; arm the timer. Returns the new state, if any."""
        self._timer = None
        if self._stopped:
            return None
        if self._offset is None:
            self._offset = self.offset()
        now = self.clock()
        since = period_start(now, self.kind)
        try:
            state = await self.loop.run_in_executor(
                None, lambda: self.store.new_round(since=since.isoformat()))
        except StoreError as e:
            log.error("could not start the %s round of %s (trying again in %.0f s): %s",
                      self.kind, since.isoformat(), RETRY, e)
            self._arm(RETRY)
            return None
        if state is not None:
            log.info("new %s round from %s: count %d of %d", self.kind, since.isoformat(), state.count, state.goal)
        self.next_boundary = next_period_start(now, self.kind)
        self._arm(seconds_between(now, self.next_boundary))
        return state

    async def wake(self) -> None:
        """The timer's callback: a boundary is due (or the timer woke early: then it is armed again)."""
        self._timer = None
        if self._stopped:
            return
        now = self.clock()
        if self.jumped():
            # The boundary was reckoned on the old clock: forget it, so that a check that
            # fails now is tried again like the first one, not put off to that boundary.
            self.next_boundary = None
        if self.next_boundary is not None and now < self.next_boundary:
            self._arm(seconds_between(now, self.next_boundary))
            return
        await self.check()

    def jumped(self) -> bool:
        """Whether the wall clock jumped since the last look (NTP, a hand-set clock); logged."""
        offset = self.offset()
        last, self._offset = self._offset, offset
        if last is None or abs(offset - last) <= JUMP:
            return False
        log.warning("the clock jumped %s by %.0f s: looking at the %s round again", "forward" if offset > last else "back",
                    abs(offset - last), self.kind)
        return True

    def _arm(self, delay: float) -> None:
        if self._stopped:
            return
        self.delay = max(0.0, min(delay, self.max_sleep))
        self._timer = self.loop.call_later(self.delay, self.wake)

    def stop(self) -> None:
        """No more rounds from this schedule (a store call under way finishes)."""
        self._stopped = True
        if self._timer is not None:
            self.loop.remove_timeout(self._timer)
            self._timer = None
