"""What every store of the count shares: the state, a committed change, the errors, and validation.

Two stores implement the same interface: ``Repository`` (SQLite, Repository.py) and
``RedisStore`` (redis_store.py). Each has ``state()``, ``press(source, note=None)``,
``undo()``, ``set(count=None, goal=None, title=None)``, ``new_round(since=None)``,
``history(limit=50, before=None)``, ``rounds()``, ``listen(callback)`` and ``close()``.
Every write returns the committed state; after the commit, each callback given to
``listen`` is called once with the ``Change``, from whichever thread made (or, for Redis,
heard) the commit, in commit order. Nothing here knows of Tornado.

Validation of a count, goal, title or note lives here alone, and the stores call it.
"""
from __future__ import annotations

import datetime
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

MAX_GOAL = 1_000_000
MAX_TITLE = 80  # characters, after trimming
MAX_NOTE = 100  # characters, after trimming
MAX_HISTORY = 1000  # presses in one page of history

EVENTS = ("press", "undo", "set", "round")


class StoreError(Exception):
    """The store cannot be read or written; the message says which and why."""


class StoreUnavailable(StoreError):
    """The store cannot be reached just now (e.g. Redis is down); nothing was changed."""


class InvalidValue(ValueError):
    """A requested count, goal, title or note is not allowed; nothing was changed."""


class NothingToUndo(Exception):
    """There is no press left that undo may revert."""


@dataclass(frozen=True)
class State:
    """The counter as committed: what is left (count) of the goal, presses so far, the title.

    ``title`` is the stored heading, or None for the default one.
    """

    count: int
    goal: int
    presses: int
    title: Optional[str] = None
    # Orders commits, so that a late callback cannot show an older state.
    serial: int = field(default=0, compare=False)

    def as_dict(self) -> Dict[str, Any]:
        return {"count": self.count, "goal": self.goal, "presses": self.presses}


@dataclass(frozen=True)
class Change:
    """One committed change, as listeners hear it: what happened and the state after it."""

    event: str  # one of EVENTS
    state: State
    note: Optional[str] = None  # a press's note
    source: Optional[str] = None  # a press's source: gpio, keyboard, api, mqtt, ...
    at: str = ""  # ISO-8601 time of the commit, with its UTC offset
    local: bool = True  # made through this server (False: another server sharing the store)
    took: Optional[float] = None  # seconds the write took to commit, when made here


def now_iso() -> str:
    """The current time as ISO-8601 with its UTC offset, to the millisecond."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_goal(goal: object) -> int:
    if not is_int(goal) or not 1 <= goal <= MAX_GOAL:
        raise InvalidValue(f"goal must be a whole number from 1 to {MAX_GOAL:,}")
    return goal


def check_count(count: object, goal: Optional[int] = None) -> int:
    """A count of 0 or more, and at most ``goal`` when one is given."""
    if not is_int(count) or count < 0:
        raise InvalidValue("count must be a whole number of 0 or more")
    if goal is not None and count > goal:
        raise InvalidValue(f"count must not be more than the goal ({goal})")
    return count


# Format characters that change how the text around them shows (direction overrides and
# isolates, line and paragraph separators); the joiners emoji and scripts need stay allowed.
LAYOUT_CONTROLS = frozenset("\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _has_control(text: str) -> bool:
    return any(ch in LAYOUT_CONTROLS or unicodedata.category(ch) in ("Cc", "Cs", "Co") for ch in text)


def check_title(title: object) -> Optional[str]:
    """A title of 1-80 characters after trimming; "" means the default heading (None)."""
    if not isinstance(title, str):
        raise InvalidValue("title must be a string")
    title = title.strip()
    if not title:
        return None
    if len(title) > MAX_TITLE:
        raise InvalidValue(f"title must be at most {MAX_TITLE} characters")
    if _has_control(title):
        raise InvalidValue("title must not contain control characters")
    return title


def check_note(note: object) -> Optional[str]:
    """A note of at most 100 characters after trimming, no control characters; None or "" = no note."""
    if note is None:
        return None
    if not isinstance(note, str):
        raise InvalidValue("note must be a string")
    note = note.strip()
    if not note:
        return None
    if len(note) > MAX_NOTE:
        raise InvalidValue(f"note must be at most {MAX_NOTE} characters")
    if _has_control(note):
        raise InvalidValue("note must not contain control characters")
    return note


def parse_time(text: str, what: str) -> datetime.datetime:
    """An ISO-8601 time with its UTC offset, as an aware datetime; InvalidValue otherwise."""
    try:
        # Python 3.9's fromisoformat does not read a trailing "Z".
        parsed = datetime.datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except (TypeError, ValueError, AttributeError):
        raise InvalidValue(f"{what} must be an ISO-8601 time with its UTC offset") from None
    if parsed.utcoffset() is None:
        raise InvalidValue(f"{what} must be an ISO-8601 time with its UTC offset")
    return parsed


def check_page(limit: object, before: object) -> None:
    """A history page: ``limit`` from 1 to MAX_HISTORY, ``before`` None or a press id (1 or more)."""
    if not is_int(limit) or not 1 <= limit <= MAX_HISTORY:
        raise InvalidValue(f"limit must be a whole number from 1 to {MAX_HISTORY}")
    if before is not None and (not is_int(before) or before < 1):
        raise InvalidValue("before must be a press id (a whole number of 1 or more)")
