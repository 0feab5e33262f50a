"""The store interface: the state, a committed change, the errors, and the ``Store`` protocol.

Two stores implement ``Store``: ``Repository`` (SQLite, the top-level Repository.py) and
``RedisStore`` (thebutton/redis_store.py); tests/test_store_contract.py runs one suite on
both, and mypy checks that both match the protocol (websocketserver.open_store returns
either as a ``Store``).

Every write returns the committed state; after the commit, each callback given to
``listen`` is called once with the ``Change``, from whichever thread made (or, for Redis,
heard) the commit, in commit order. A store that cannot keep the count current (Redis
away) says so the same way: a ``Change`` with event "live" and ``live`` False, and
another with ``live`` True once it is back. Nothing here knows of Tornado. Validation of
what a caller asks for lives in thebutton/validation.py and the stores call it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Literal, Optional, Protocol, Tuple

# What a change is: a press, an undo, a set by hand, a new round, or the store going
# out of (or back into) reach.
Event = Literal["press", "undo", "set", "round", "live"]


class StoreError(Exception):
    """The store cannot be read or written; the message says which and why."""


class StoreUnavailable(StoreError):
    """The store cannot be reached just now (e.g. Redis is down); nothing was changed."""


class InvalidValue(ValueError):
    """A requested count, goal, title or note is not allowed; nothing was changed."""


class NothingToUndo(Exception):
    """There is no press left that undo may revert."""


class UnknownDevice(LookupError):
    """No device by that name (or it was removed); nothing was changed."""


class DeviceExists(Exception):
    """A device by that name (compared case-insensitively) is already there; nothing was changed."""


class TooFast(Exception):
    """A device pressed more than DEVICE_RATE times in DEVICE_WINDOW seconds; nothing was changed."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"a device presses at most {DEVICE_RATE} times a minute: try again in {retry_after} s")
        self.retry_after = retry_after


class Duplicate(Exception):
    """A device's press with an id already counted within IDEM_SECONDS; nothing was changed."""

    def __init__(self, state: State) -> None:
        super().__init__("already counted")
        self.state = state


DEVICE_KINDS = ("button", "pipedrive")
DEVICE_RATE = 10  # presses of one device ...
DEVICE_WINDOW = 60.0  # ... in this many seconds; more are refused (TooFast)
IDEM_SECONDS = 24 * 3600  # how long a device's press id is remembered


@dataclass(frozen=True)
class State:
    """The counter as committed: what is left (count) of the goal, presses so far, the title.

    ``title`` is the stored heading, or None for the default one.
    """

    count: int
    goal: int
    presses: int
    title: Optional[str] = None
    # The current round's top 3: (who, presses), most first (as leaderboard("round") orders them).
    leaders: Tuple[Tuple[str, int], ...] = ()
    # Orders commits, so that a late callback cannot show an older state.
    serial: int = field(default=0, compare=False)

    def as_dict(self) -> Dict[str, Any]:
        return {"count": self.count, "goal": self.goal, "presses": self.presses}


@dataclass(frozen=True)
class Change:
    """One committed change, as listeners hear it: what happened and the state after it."""

    event: Event
    state: State
    note: Optional[str] = None  # a press's note
    by: Optional[str] = None  # who made a press (a person or a team), when it says
    source: Optional[str] = None  # a press's source: gpio, keyboard, api, mqtt, device, ...
    device: Optional[str] = None  # the name of the device that made a press (source "device")
    at: str = ""  # ISO-8601 time of the commit, with its UTC offset
    local: bool = True  # made through this server (False: another server sharing the store)
    took: Optional[float] = None  # seconds the write took to commit, when made here
    live: bool = True  # the store keeps the count current (False: Redis away, the last state heard)


Listener = Callable[[Change], None]


class Store(Protocol):
    """What the server, the handlers and the integrations use of a store, and all they use."""

    def listen(self, callback: Listener) -> None:
        """Call ``callback(change)`` after every commit (and change of liveness), in commit order."""

    def state(self) -> State:
        """The latest committed state (for Redis while it is away: the last one heard)."""

    def press(self, source: str = "button", note: Optional[str] = None, by: Optional[str] = None,
              device: Optional[str] = None, at: object = None, idem: Optional[str] = None) -> State:
        """count -= 1 (0 wraps to the goal), with an optional note and who made it; the committed state.

        With ``device`` (a device's name): its press, at most DEVICE_RATE a minute (TooFast);
        ``at`` when it was really pressed (validation.check_pressed_at: stored as the press's
        time in history); ``idem`` its id, counted once per device within IDEM_SECONDS
        (Duplicate, with the state). UnknownDevice when there is no such device.
        """

    def add_device(self, name: object, kind: object, by: object, secret_hash: str) -> Dict[str, Any]:
        """A new device {"name", "kind", "by", "created", "last_seen", "presses"}, found later by
        ``secret_hash`` (the hash of its secret: the secret itself is never stored).

        InvalidValue for a bad field; DeviceExists for a name already used (case-insensitively).
        """

    def devices(self) -> List[Dict[str, Any]]:
        """Every device {"name", "kind", "by", "created", "last_seen", "presses"}, oldest first; no secrets."""

    def remove_device(self, name: str) -> None:
        """Forget a device, its secret and its press ids; UnknownDevice when there is none by that name."""

    def device_by_secret(self, secret_hash: str) -> Optional[Dict[str, Any]]:
        """The device {"name", "kind", "by", "hash"} whose secret has this hash, or None."""

    def undo(self) -> State:
        """Revert the latest press; NothingToUndo when there is none."""

    def set(self, count: Optional[int] = None, goal: Optional[int] = None,
            title: Optional[str] = None) -> State:
        """Set any of count, goal and title; InvalidValue and nothing changed when one is bad."""

    def new_round(self, since: Optional[str] = None, until: Optional[str] = None) -> Optional[State]:
        """Start a round at the goal, unless the newest started at or after ``since`` (then None).

        With ``until``, a newest round started after it does not count: it was stamped "in
        the future" by a clock that was set back since.
        """

    def history(self, limit: int = 50, before: Optional[int] = None) -> List[Dict[str, Any]]:
        """Presses newest first: at most ``limit``, older than press id ``before`` when given."""

    def rounds(self) -> List[Dict[str, Any]]:
        """The latest rounds, newest (the current one) first."""

    def leaderboard(self, period: str = "round", since: Optional[str] = None) -> Dict[str, Any]:
        """{"period", "since", "leaders": [{"by", "presses", "last"}], "unattributed"}; month counts from ``since``."""

    def health(self) -> Dict[str, Any]:
        """{"kind": ..., "ok": bool, ...}; cheap, called on the IOLoop."""

    def close(self) -> None:
        """Let go of files and connections."""
