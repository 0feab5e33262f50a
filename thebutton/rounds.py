"""Scheduled rounds (--round=daily|weekly|monthly): a new round at the start of each period.

Periods are in the server's local time: a day starts at midnight, a week on Monday at
midnight, a month on the 1st at midnight. At start the schedule asks the store for a
round since the current period began, so a boundary passed while the server was off is
applied then; the store starts a round only when its newest round began before that
moment, so a restart within a period (or several servers sharing a Redis store) starts
no second one.

The clock can jump: a Pi has no clock of its own, boots with the time it last saved and
is corrected by NTP later, forward or back. The schedule looks at the clock at least every
MAX_SLEEP seconds and measures each step of the wall clock against the monotonic clock
(which never jumps): a period start the clock passed since the last look, by running or by
a jump, starts its round then. A round stamped while the clock ran ahead ("the future")
holds no period start the running clock passes later, so it cannot hide the next boundary;
at start it still holds its period, since a Pi that lost power boots with a saved time
older than its newest round, and a restart must not reset the count for that.

Runs on the IOLoop; the store call runs in an executor thread. Nothing else here
touches the store.
"""
from __future__ import annotations

import datetime
import logging
import time
from typing import Callable, Optional, Tuple

from tornado.ioloop import IOLoop

from thebutton.store import State, StoreError
from thebutton.validation import FUTURE_SLACK

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

    ``start()`` applies the current period at once; from then on the schedule looks at
    the clock at least every MAX_SLEEP seconds (and at each boundary), so drift, a jump of
    the system clock or a suspended machine cannot make it miss or repeat a boundary.
    ``clock`` gives the local time and ``offset`` the wall clock less the monotonic clock
    (tests pass their own). Used on the IOLoop thread.
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
        self._seen: Optional[Tuple[float, float]] = None  # (POSIX seconds, offset) at the last look
        self._retry: Optional[bool] = None  # set when the store failed a check: that check's ``passed``, to try again

    def start(self) -> None:
        """Apply the current period (soon, on the IOLoop) and keep to the schedule from then on."""
        self.loop.add_callback(self.check)

    async def check(self, passed: bool = False) -> Optional[State]:
        """Start the current period's round unless it has one; arm the timer. Returns the new state, if any.

        ``passed``: the clock passed the period's start while we watched. Then a newest
        round stamped later than the clock (by more than FUTURE_SLACK, what clocks of
        servers sharing a store may differ by) does not hold the period.
        """
        self._timer = None
        if self._stopped:
            return None
        now = self.clock()
        self._seen = (now.timestamp(), self.offset())
        since = period_start(now, self.kind)
        until = (now + FUTURE_SLACK).isoformat() if passed else None
        try:
            state = await self.loop.run_in_executor(
                None, lambda: self.store.new_round(since=since.isoformat(), until=until))
        except StoreError as e:
            log.error("could not start the %s round of %s (trying again in %.0f s): %s",
                      self.kind, since.isoformat(), RETRY, e)
            self._retry = passed
            self._arm(RETRY)
            return None
        self._retry = None
        if state is not None:
            log.info("new %s round from %s: count %d of %d", self.kind, since.isoformat(), state.count, state.goal)
        self._arm_for(now)
        return state

    async def wake(self) -> None:
        """The timer's callback: look at the clock; start the round of a period whose start it passed."""
        self._timer = None
        if self._stopped:
            return
        now = self.clock()
        earliest = self._look(now)
        passed = earliest is not None and period_start(now, self.kind).timestamp() > earliest
        if passed or earliest is None or self._retry is not None:
            await self.check(passed=passed or bool(self._retry))
            return
        self._arm_for(now)

    def _look(self, now: datetime.datetime) -> Optional[float]:
        """Note a look at the clock. Returns the earliest time (POSIX seconds) it showed since the last look.

        That is the last reading, or, when the clock was set back in between, the last
        reading less the jump: a period start between that and ``now`` was passed after
        the jump. None before the first look. A jump is logged.
        """
        seen, self._seen = self._seen, (now.timestamp(), self.offset())
        if seen is None:
            return None
        jump = self._seen[1] - seen[1]
        if abs(jump) > JUMP:
            log.warning("the clock jumped %s by %s (it says %s now): the %s rounds follow it",
                        "forward" if jump > 0 else "back", datetime.timedelta(seconds=round(abs(jump))),
                        now.isoformat(timespec="seconds"), self.kind)
        return seen[0] + min(0.0, jump)

    def _arm_for(self, now: datetime.datetime) -> None:
        """Look again at the next boundary after ``now``, or after MAX_SLEEP if sooner."""
        self.next_boundary = next_period_start(now, self.kind)
        self._arm(seconds_between(now, self.next_boundary))

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
