"""The screens: which pages said who they are, which are connected, and which went away.

A countdown page names its screen and says its version, sound state and size in a
``hello`` (CONTRACT.md, "Screens you can see and steer"). The feed (thebutton/feed.py)
checks it with ``parse_hello`` and tells the registry of each hello and each closed
socket; the registry knows no socket and no Tornado, so that it is tested on its own.

Several sockets may carry one name (two tabs, a page that reconnects before its old socket
is noticed gone): they are one screen, connected while any of them is, and shown as the one
that spoke last of those still open (when one closes, the others' own words show again).
A screen that went away stays listed for ``KEEP_DAYS`` days, also across a restart: the list is kept in a
small JSON file, written atomically (a temporary file, then ``os.replace``) by one thread
of its own, at most every ``SAVE_EVERY`` seconds and at the stop, never on the IOLoop.
At most ``MOST_SCREENS`` are kept; past that the one gone longest goes first.

Used on the IOLoop thread only (but for the writer thread, which gets a copy).
"""
from __future__ import annotations

import concurrent.futures
import datetime
import json
import logging
import os
import re
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, Hashable, List, Optional, Tuple

from tornado.ioloop import PeriodicCallback

from thebutton.store import InvalidValue
from thebutton.validation import check_name

log = logging.getLogger("button.screens")

KEEP_DAYS = 7  # a screen that went away stays listed this long
MOST_SCREENS = 1000  # screens kept; past that the one gone longest is forgotten
SAVE_EVERY = 5.0  # seconds: the file is written at most this often
SOUNDS = ("on", "off", "blocked")
MAX_SIDE = 100_000  # pixels: a width or height past this is not a screen's
VERSION_RE = re.compile(r"[A-Za-z0-9._-]{1,40}")  # the page's version (pages.page_version), by fullmatch


@dataclass(frozen=True)
class Hello:
    """What a page says about itself, checked."""

    screen: str
    version: str
    sound: str
    width: int
    height: int


def _side(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_SIDE


def parse_hello(message: object) -> Optional[Hello]:
    """The hello in a page's message (JSON text ``{"hello": {...}}``), or None for anything else.

    The screen's name is checked by the text rules of every name (thebutton/validation.py);
    fields a newer page may add are ignored.
    """
    if not isinstance(message, str):
        return None
    try:
        body = json.loads(message)
    except (ValueError, RecursionError):
        return None
    hello = body.get("hello") if isinstance(body, dict) else None
    if not isinstance(hello, dict):
        return None
    try:
        screen = check_name(hello.get("screen"), "screen")
    except InvalidValue:
        return None
    version, sound, width, height = (hello.get(key) for key in ("version", "sound", "width", "height"))
    if not isinstance(version, str) or not VERSION_RE.fullmatch(version) or sound not in SOUNDS:
        return None
    if not _side(width) or not _side(height):
        return None
    assert isinstance(width, int) and isinstance(height, int) and isinstance(sound, str)
    return Hello(screen, version, sound, width, height)


def iso(at: float) -> str:
    return datetime.datetime.fromtimestamp(at, datetime.timezone.utc).isoformat(timespec="seconds")


@dataclass
class Screen:
    """One screen as the registry keeps it; times are seconds since the epoch."""

    screen: str
    address: str
    since: float  # when it connected (this time), or first said hello
    last_seen: float  # its last hello, or when its last socket closed
    version: str
    sound: str
    width: int
    height: int


class Screens:
    """The registry of screens; ``path`` its JSON file (None: kept in memory only).

    ``updates`` counts the hellos taken in (a flood test reads it).
    """

    def __init__(self, path: Optional[str] = None, clock: Callable[[], float] = time.time,
                 most: int = MOST_SCREENS, keep_days: float = KEEP_DAYS, save_every: float = SAVE_EVERY) -> None:
        self.path = path
        self.clock = clock
        self.most = most
        self.keep = keep_days * 86400.0
        self.save_every = save_every
        self.screens: Dict[str, Screen] = {}
        # Per connected screen, its open sockets, each with when it last spoke, what and from where.
        self.sockets: Dict[str, Dict[Hashable, Tuple[float, Hello, str]]] = {}
        self.updates = 0
        self.saves = 0
        self._dirty = False
        self._said_full = False
        self._writer: Optional[concurrent.futures.ThreadPoolExecutor] = None
        self._timer: Optional[PeriodicCallback] = None
        self._pending: Optional[concurrent.futures.Future[None]] = None
        if path is not None:
            self._load(path)

    # ---- what the feed tells it ----------------------------------------------------
    def hello(self, hello: Hello, address: str, before: Optional[str] = None, socket: Hashable = 0) -> bool:
        """A socket said hello; ``before`` is the name it said last (None: its first hello).

        ``socket`` tells the sockets of one name apart (the feed gives each its own). False when
        the hello was not taken in (the registry is full of connected screens); the socket then
        no longer counts as ``before`` either.
        """
        now = self.clock()
        name = hello.screen
        if before is not None and before != name:
            self.gone(before, socket)  # renamed: first it leaves its old name, which frees its place
        record = self.screens.get(name)
        if record is None:
            if not self._make_room():
                if not self._said_full:
                    self._said_full = True
                    log.warning("more than %d screens: a new one is not listed until one goes away", self.most)
                return False
            record = self.screens[name] = Screen(name, address, now, now, hello.version, hello.sound,
                                                 hello.width, hello.height)
        open_ = self.sockets.setdefault(name, {})
        if not open_:
            record.since = now  # connected again
        open_[socket] = (now, hello, address)
        self._show(record, hello, address)
        record.last_seen = now
        self.updates += 1
        self._changed()
        return True

    @staticmethod
    def _show(record: Screen, hello: Hello, address: str) -> None:
        record.address = address
        record.version, record.sound, record.width, record.height = (hello.version, hello.sound, hello.width,
                                                                     hello.height)

    def gone(self, name: str, socket: Hashable = 0) -> None:
        """A socket that said hello as ``name`` closed (or took another name)."""
        open_ = self.sockets.get(name)
        if open_ is None or open_.pop(socket, None) is None:
            return
        record = self.screens.get(name)
        if open_:
            if record is not None:  # the others are still there: the latest of them speaks for the screen
                _, hello, address = max(open_.values(), key=lambda said: said[0])
                self._show(record, hello, address)
                self._changed()
            return
        del self.sockets[name]
        if record is not None:
            record.last_seen = self.clock()
            self._changed()

    def _make_room(self) -> bool:
        if len(self.screens) < self.most:
            return True
        if len(self.sockets) >= self.most:
            return False  # every one kept is connected: a comparison, not a walk, for each newcomer
        self._forget_old()
        if len(self.screens) < self.most:
            return True
        away = [s for s in self.screens.values() if not self.sockets.get(s.screen)]
        if not away:
            return False
        del self.screens[min(away, key=lambda s: s.last_seen).screen]
        return True

    def _forget_old(self) -> None:
        cutoff = self.clock() - self.keep
        old = [name for name, s in self.screens.items() if s.last_seen < cutoff and not self.sockets.get(name)]
        for name in old:
            del self.screens[name]
        if old:
            self._dirty = True

    # ---- what the API and /metrics read ---------------------------------------------
    def connected(self, name: str) -> bool:
        return bool(self.sockets.get(name))

    def counts(self) -> Dict[str, int]:
        """{"connected": n, "disconnected": n} (screens, not sockets)."""
        self._forget_old()
        on = sum(1 for name in self.screens if self.sockets.get(name))
        return {"connected": on, "disconnected": len(self.screens) - on}

    def listing(self, version: str) -> List[Dict[str, Any]]:
        """Every screen kept, connected ones first, then the latest seen; ``version`` the server's page version."""
        self._forget_old()
        now = self.clock()
        rows = []
        for s in sorted(self.screens.values(), key=lambda s: (not self.sockets.get(s.screen), -s.last_seen,
                                                               s.screen)):
            on = bool(self.sockets.get(s.screen))
            rows.append({"screen": s.screen, "address": s.address, "connected": on, "since": iso(s.since),
                         "last_seen": iso(now if on else s.last_seen), "version": s.version,
                         "current": s.version == version, "sound": s.sound, "width": s.width,
                         "height": s.height})
        return rows

    # ---- the file -------------------------------------------------------------------
    def _load(self, path: str) -> None:
        try:
            with open(path, encoding="utf-8") as f:
                rows = json.load(f)
            for row in rows.get("screens", []):
                s = Screen(**{key: row[key] for key in Screen.__dataclass_fields__})
                self.screens[s.screen] = s
        except FileNotFoundError:
            return
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as e:
            log.warning("the list of screens in %s could not be read (%s): starting an empty one", path,
                        type(e).__name__)
            self.screens.clear()
        self._forget_old()
        while len(self.screens) > self.most:
            self._make_room()

    def _changed(self) -> None:
        self._dirty = True

    def _snapshot(self) -> str:
        now = self.clock()
        rows = []
        for s in self.screens.values():
            row = asdict(s)
            if self.sockets.get(s.screen):
                row["last_seen"] = now  # still there as this is written: last seen now
            rows.append(row)
        return json.dumps({"screens": rows}, ensure_ascii=False)

    def tick(self) -> None:
        """Hand the file to the writer thread if something changed (IOLoop; never waits).

        Called every ``save_every`` seconds (``start``): the file is written at most that often.
        """
        if self.path is None or not self._dirty:
            return
        if self._pending is not None and not self._pending.done():
            return  # the last write is still under way: this one waits for the next tick
        self._dirty = False
        if self._writer is None:
            self._writer = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="screens")
        self._pending = self._writer.submit(self._write, self._snapshot())

    def _write(self, text: str) -> None:
        assert self.path is not None
        tmp = self.path + ".tmp"
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())  # on the card before it takes the old file's place: a power cut keeps one
            os.replace(tmp, self.path)
            self.saves += 1
        except OSError as e:
            log.warning("could not keep the list of screens in %s: %s", self.path, e.strerror)

    def start(self) -> None:
        """Check every ``save_every`` seconds whether the file needs writing (on the current IOLoop)."""
        if self.path is not None and self._timer is None:
            self._timer = PeriodicCallback(self.tick, self.save_every * 1000)
            self._timer.start()

    def close(self) -> None:
        """At the stop: every screen is gone now, and the file says so (waits for the writer)."""
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        for name in list(self.sockets):
            self.sockets.pop(name, None)
            record = self.screens.get(name)
            if record is not None:
                record.last_seen = self.clock()
                self._dirty = True
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._writer = None
        if self.path is not None and self._dirty:
            self._dirty = False
            self._write(self._snapshot())
