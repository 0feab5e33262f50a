"""The SQLite store of The Button: the count, the goal, the title, the log of presses and the rounds.

This is the only module that speaks SQL, and it knows nothing of Tornado. Every
write is one ``BEGIN IMMEDIATE`` transaction that is committed (WAL mode with
``synchronous=FULL``, so a power cut after the commit keeps it) before the caller
gets the new state back; callers broadcast or acknowledge only that state.

Rounds follow the semantics in store.py's interface (the same for Redis): a round
starts at the goal, ends reached when a press brings the count to 0, or not reached
when a set or a new round starts the next one. Each press row names its round
(``round_id``): the round it counted in, or for a wrap (a press at 0) the round it
started, so that undo can put the round back as it was.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from thebutton.files import hold_exclusively, release
from thebutton.store import (
    DEVICE_RATE,
    DEVICE_WINDOW,
    IDEM_SECONDS,
    Change,
    DeviceExists,
    Duplicate,
    NothingToUndo,
    State,
    StoreError,
    TooFast,
    UnknownDevice,
)
from thebutton.validation import (
    MAX_ROUNDS,
    check_by,
    check_count,
    check_device_name,
    check_goal,
    check_idem,
    check_kind,
    check_note,
    check_page,
    check_period,
    check_pressed_at,
    check_title,
    local_month,
    name_key,
    now_iso,
    parse_time,
)

# "BUTN" as a big-endian 32-bit integer: marks a file as ours (PRAGMA application_id).
APPLICATION_ID = 0x4255544E
SQLITE_HEADER = b"SQLite format 3\x00"

# Each entry moves the schema from version i to i + 1; the list index is the
# version it starts from. A migration and its version bump commit together.
MIGRATIONS = (
    # 0 -> 1: the counter alone, as the first release stored it.
    """
    CREATE TABLE counter (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        count INTEGER NOT NULL CHECK (count >= 0),
        goal INTEGER NOT NULL CHECK (goal >= 1)
    );
    """,
    # 1 -> 2: a log of presses (for undo and history) and the undo floor that
    # keeps undo from reaching back past a manual set.
    """
    CREATE TABLE presses (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        pressed_at TEXT NOT NULL,
        source TEXT NOT NULL,
        count_before INTEGER NOT NULL,
        count_after INTEGER NOT NULL,
        undone_at TEXT
    );
    ALTER TABLE counter ADD COLUMN undo_floor INTEGER NOT NULL DEFAULT 0;
    """,
    # 2 -> 3: notes on presses, a stored title, the rounds, and the count of presses
    # not undone kept beside the count (so that a state read need not count the log).
    # _migrate seeds one open round from now and moves the undo floor past the older
    # presses, which belong to no recorded round. Every query of the history and the
    # rounds walks a primary key (newest first, or below a given id), so no other
    # index is needed: each one would only slow the press that writes it.
    """
    ALTER TABLE presses ADD COLUMN note TEXT;
    ALTER TABLE presses ADD COLUMN round_id INTEGER;
    ALTER TABLE counter ADD COLUMN title TEXT;
    ALTER TABLE counter ADD COLUMN presses INTEGER NOT NULL DEFAULT 0;
    UPDATE counter SET presses = (SELECT COUNT(*) FROM presses WHERE undone_at IS NULL);
    CREATE TABLE rounds (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        started TEXT NOT NULL,
        ended TEXT,
        goal INTEGER NOT NULL CHECK (goal >= 1),
        presses INTEGER NOT NULL DEFAULT 0 CHECK (presses >= 0),
        reached INTEGER NOT NULL DEFAULT 0
    );
    """,
    # 3 -> 4: who made each press ("by", and by_key: the name as leaderboards compare it), and
    # the leaderboards' tallies, kept by press and undo so that a board is one indexed read
    # however many presses there are: per scope ("round:<id>", "month:<YYYY-MM>" local time,
    # "all") the presses of each name with its latest, and the presses of all (scope_totals).
    # A press's scopes: {scope: its name's previous latest press there (0: none), or null for
    # a press without a name}, which undo (always of the latest press) puts back exactly.
    """
    ALTER TABLE presses ADD COLUMN pressed_by TEXT;
    ALTER TABLE presses ADD COLUMN by_key TEXT;
    ALTER TABLE presses ADD COLUMN scopes TEXT;
    CREATE TABLE leaders (
        scope TEXT NOT NULL,
        by_key TEXT NOT NULL,
        pressed_by TEXT NOT NULL,
        presses INTEGER NOT NULL CHECK (presses >= 1),
        last_id INTEGER NOT NULL,
        PRIMARY KEY (scope, by_key)
    );
    CREATE INDEX leaders_order ON leaders (scope, presses DESC, last_id);
    CREATE TABLE scope_totals (scope TEXT PRIMARY KEY, presses INTEGER NOT NULL);
    """,
    # 4 -> 5: devices (a named source with a secret URL: only the secret's sha256 is kept), the
    # device of each press, and the ids of devices' presses for 24 h (press_ids: a repeat of one
    # counts once). ``recent``: the Unix times of the device's latest presses, for its rate.
    # Expired ids are deleted a few at a time by the presses that add ids (index on expires).
    """
    ALTER TABLE presses ADD COLUMN device TEXT;
    CREATE TABLE devices (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        name_key TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        pressed_by TEXT,
        secret_hash TEXT NOT NULL UNIQUE,
        created TEXT NOT NULL,
        last_seen TEXT,
        presses INTEGER NOT NULL DEFAULT 0,
        recent TEXT NOT NULL DEFAULT '[]'
    );
    CREATE TABLE press_ids (
        device_id INTEGER NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
        press_id TEXT NOT NULL,
        expires REAL NOT NULL,
        PRIMARY KEY (device_id, press_id)
    );
    CREATE INDEX press_ids_expires ON press_ids (expires);
    """,
)
CLEANUP_BATCH = 20  # expired press ids deleted by one press that adds one: the table stays at 24 h of ids
SCHEMA_VERSION = len(MIGRATIONS)


class RepositoryError(StoreError):
    """The database cannot be opened or written; the message names the file."""


def _check_header(path: str) -> None:
    """Raise RepositoryError unless path is missing, empty or starts like an SQLite file."""
    try:
        with open(path, "rb") as f:
            head = f.read(len(SQLITE_HEADER))
    except FileNotFoundError:
        return
    except OSError as e:
        raise RepositoryError(f"{path}: cannot read the database: {e.strerror}") from e
    if head and head != SQLITE_HEADER:
        raise RepositoryError(f"{path}: not an SQLite database (left untouched)")


def _to_ms(text: Optional[str], what: str) -> Optional[datetime.datetime]:
    """An ISO-8601 time with its UTC offset (or None) to the millisecond, the precision of stored times."""
    if text is None:
        return None
    parsed = parse_time(text, what)
    return parsed.replace(microsecond=parsed.microsecond // 1000 * 1000)


class Repository:
    """The count in one SQLite file; safe to call from several threads at once.

    A missing or empty file becomes a fresh database at ``goal``. A file that is
    not SQLite, is damaged, or is some other program's database raises
    RepositoryError and is not written to.
    """

    def __init__(self, path: str, goal: int = 20, busy_timeout: float = 5.0,
                 clock: Callable[[], str] = now_iso) -> None:
        check_goal(goal)
        self.path = path
        self.clock = clock  # the time of a commit, ISO-8601 with its UTC offset
        _check_header(path)
        self._lock = threading.Lock()  # the writer connection (and state reads)
        self._read_lock = threading.Lock()  # the reader connection (history, rounds)
        self._serial = 0
        self._listeners: List[Callable[[Change], None]] = []
        self._outbox: List[Change] = []  # changes of the open transaction, told after its commit
        # Why the latest write failed, and why the latest read failed, for health(). Apart,
        # because a read that works says nothing of a full disk: only a write clears a write's.
        self._write_error: Optional[str] = None
        self._read_error: Optional[str] = None
        self._owner = hold_exclusively(path, RepositoryError)  # one server per file
        try:
            self._db = sqlite3.connect(
                path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as e:
            release(self._owner)
            raise RepositoryError(f"{path}: cannot open the database: {e}") from e
        try:
            self._open(goal)
            # History and rounds read through their own connection: in WAL mode a reader
            # never waits for the writer, so a long export does not hold up presses.
            self._reader = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None,
                                           check_same_thread=False)
            self._reader.execute("PRAGMA query_only = 1")
        except BaseException:
            self._db.close()
            release(self._owner)
            raise

    def _open(self, goal: int) -> None:
        db = self._db
        try:
            # Reads only: nothing is written until we know the file is ours.
            app_id = db.execute("PRAGMA application_id").fetchone()[0]
            version = db.execute("PRAGMA user_version").fetchone()[0]
            tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master")]
            check = db.execute("PRAGMA quick_check").fetchone()[0]
        except sqlite3.DatabaseError as e:
            raise RepositoryError(f"{self.path}: not a usable database: {e} (left untouched)") from e
        if check != "ok":
            raise RepositoryError(f"{self.path}: the database is damaged: {check} (left untouched)")
        if app_id != APPLICATION_ID and (tables or app_id):
            raise RepositoryError(
                f"{self.path}: this SQLite file belongs to another program (left untouched)"
            )
        if version > SCHEMA_VERSION:
            raise RepositoryError(
                f"{self.path}: schema version {version} is newer than this program "
                f"understands ({SCHEMA_VERSION}); upgrade The Button"
            )
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            self._migrate(version, goal)
        except sqlite3.Error as e:
            raise RepositoryError(f"{self.path}: cannot prepare the database: {e}") from e

    def _migrate(self, version: int, goal: int) -> None:
        for start in range(version, SCHEMA_VERSION):
            with self._transaction() as db:
                # Re-read inside the write lock: another process may have migrated.
                if db.execute("PRAGMA user_version").fetchone()[0] != start:
                    continue
                if start == 0:
                    db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                for statement in MIGRATIONS[start].split(";"):
                    if statement.strip():
                        db.execute(statement)
                if start == 0:
                    db.execute("INSERT INTO counter (id, count, goal) VALUES (1, ?, ?)", (goal, goal))
                if start == 2:
                    # A fresh file's first round starts at its creation; an older file's
                    # current round is taken to start now (at 0 there is none until the
                    # next press wraps). Undo stops here: older presses are in no round.
                    count, current_goal = db.execute(
                        "SELECT count, goal FROM counter WHERE id = 1").fetchone()
                    if count > 0:
                        self._start_round(db, self.clock(), current_goal)
                    db.execute("UPDATE counter SET undo_floor = "
                               "(SELECT COALESCE(MAX(id), 0) FROM presses) WHERE id = 1")
                db.execute(f"PRAGMA user_version = {start + 1}")

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: commits on success, rolls back and re-raises on any error."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._serial += 1
            self._outbox.clear()
            started = time.perf_counter()
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                self._outbox.clear()
                # SQLite may already have rolled back (a full disk does that).
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            # Still under the lock, so listeners hear changes in commit order.
            took = time.perf_counter() - started
            for change in self._outbox:
                self._tell(dataclasses.replace(change, took=took))
            self._outbox.clear()

    def listen(self, callback: Callable[[Change], None]) -> None:
        """Call ``callback(change)`` after each commit, from the committing thread."""
        self._listeners.append(callback)

    def _tell(self, change: Change) -> None:
        for callback in self._listeners:
            callback(change)  # the server's callback only queues it for the IOLoop

    def _write(self, what: str):
        """Wrap sqlite3 errors of a read or write into RepositoryError naming the file."""
        return _WriteErrors(self, what)

    def _state(self, db: sqlite3.Connection) -> State:
        count, goal, presses, title = db.execute(
            "SELECT count, goal, presses, title FROM counter WHERE id = 1").fetchone()
        return State(count=count, goal=goal, presses=presses, title=title, leaders=self._top3(db),
                     serial=self._serial)

    @staticmethod
    def _top3(db: sqlite3.Connection) -> Tuple[Tuple[str, int], ...]:
        """The newest round's top 3 (see leaderboard), from the index of named presses by round."""
        rows = db.execute(
            "SELECT pressed_by, presses FROM leaders WHERE scope = 'round:' || (SELECT MAX(id) FROM rounds) "
            "ORDER BY presses DESC, last_id ASC LIMIT 3").fetchall()
        return tuple((by, n) for by, n in rows)

    def state(self) -> State:
        """The committed state."""
        with self._write("read the count"), self._lock:
            return self._state(self._db)

    # Rounds: the newest round is the open one when its ``ended`` is null; there is
    # at most one open round, and it is always the newest.

    @staticmethod
    def _start_round(db: sqlite3.Connection, at: str, goal: int) -> int:
        cursor = db.execute("INSERT INTO rounds (started, goal) VALUES (?, ?)", (at, goal))
        assert cursor.lastrowid is not None  # an INSERT that worked
        return cursor.lastrowid

    @staticmethod
    def _open_round(db: sqlite3.Connection) -> Optional[int]:
        row = db.execute("SELECT id, ended FROM rounds ORDER BY id DESC LIMIT 1").fetchone()
        return row[0] if row is not None and row[1] is None else None

    def _next_round(self, db: sqlite3.Connection, at: str, count: int, goal: int) -> None:
        """A set of count or goal, or a new round: the open round ends not reached, the next starts."""
        db.execute("UPDATE rounds SET ended = ?, reached = 0 WHERE ended IS NULL", (at,))
        self._start_round(db, at, goal)
        db.execute("UPDATE counter SET count = ?, goal = ? WHERE id = 1", (count, goal))

    @staticmethod
    def _raise_undo_floor(db: sqlite3.Connection) -> None:
        """Undo stops here: no press before now can be undone (after every set and new round)."""
        db.execute("UPDATE counter SET undo_floor = (SELECT COALESCE(MAX(id), 0) FROM presses) "
                   "WHERE id = 1")

    def press(self, source: str = "button", note: Optional[str] = None, by: Optional[str] = None,
              device: Optional[str] = None, at: object = None, idem: Optional[str] = None) -> State:
        """One press, with an optional note and who made it: count - 1, or back to the goal when it was 0.

        Raises InvalidValue (nothing stored) for a bad note or name. Returns the committed state.
        A device's press (``device``, with ``at`` and ``idem``) as store.py's Store.press says.
        """
        note = check_note(note)
        by = check_by(by)
        idem = check_idem(idem)
        pressed_at = check_pressed_at(at, self.clock())
        with self._write("store a press"), self._transaction() as db:
            at = self.clock()
            device_id = None
            if device is not None:
                device_id, recent = self._device_check(db, device, idem, at)
            count, goal = db.execute("SELECT count, goal FROM counter WHERE id = 1").fetchone()
            if count <= 0:
                # The wrap: this press starts the next round and counts in none.
                after = goal
                round_id = self._start_round(db, at, goal)
            else:
                after = count - 1
                open_round = self._open_round(db)
                # None is not reachable through this class; it keeps a hand-edited file sane.
                round_id = self._start_round(db, at, goal) if open_round is None else open_round
                db.execute(
                    "UPDATE rounds SET presses = presses + 1, ended = ?, reached = ? WHERE id = ?",
                    (at if after == 0 else None, int(after == 0), round_id),
                )
            db.execute("UPDATE counter SET count = ?, presses = presses + 1 WHERE id = 1", (after,))
            key = name_key(by)
            # The tallies it counts in: a wrap (a press at 0) counts in no round.
            scopes = ["all", "month:" + local_month(at)] + ([f"round:{round_id}"] if count > 0 else [])
            previous: Dict[str, Optional[int]] = {}
            for scope in scopes:
                db.execute("INSERT INTO scope_totals (scope, presses) VALUES (?, 1) "
                           "ON CONFLICT (scope) DO UPDATE SET presses = presses + 1", (scope,))
                row = None if key is None else db.execute(
                    "SELECT last_id FROM leaders WHERE scope = ? AND by_key = ?", (scope, key)).fetchone()
                previous[scope] = None if key is None else (row[0] if row else 0)
            cursor = db.execute(
                "INSERT INTO presses (pressed_at, source, count_before, count_after, note, round_id, pressed_by, by_key, "
                "scopes, device) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (pressed_at or at, source, count, after, note, round_id, by, key, json.dumps(previous), device),
            )
            if device_id is not None:
                self._device_pressed(db, device_id, recent, idem, at)
            if key is not None:
                for scope in scopes:
                    db.execute("INSERT INTO leaders (scope, by_key, pressed_by, presses, last_id) VALUES (?, ?, ?, 1, ?) "
                               "ON CONFLICT (scope, by_key) DO UPDATE SET presses = presses + 1, "
                               "last_id = excluded.last_id, pressed_by = excluded.pressed_by",
                               (scope, key, by, cursor.lastrowid))
            state = self._state(db)
            self._outbox.append(Change("press", state, note=note, by=by, source=source, at=at, device=device))
            return state

    # Devices: rows of ``devices`` found by name_key (the name casefolded) or by the secret's hash.

    def _device_check(self, db: sqlite3.Connection, device: str, idem: Optional[str],
                      at: str) -> Tuple[int, List[float]]:
        """In a press's transaction: the device's id and recent press times, or why it may not press."""
        row = db.execute("SELECT id, recent FROM devices WHERE name_key = ?", (name_key(device),)).fetchone()
        if row is None:
            raise UnknownDevice(f"no device named {device!r}")
        device_id, recent_text = row
        now = parse_time(at, "now").timestamp()
        if idem is not None and db.execute(
                "SELECT 1 FROM press_ids WHERE device_id = ? AND press_id = ? AND expires > ?",
                (device_id, idem, now)).fetchone():
            raise Duplicate(self._state(db))
        recent = [t for t in json.loads(recent_text) if t > now - DEVICE_WINDOW]
        if len(recent) >= DEVICE_RATE:
            raise TooFast(max(1, math.ceil(recent[0] + DEVICE_WINDOW - now)))
        return device_id, recent

    @staticmethod
    def _device_pressed(db: sqlite3.Connection, device_id: int, recent: List[float], idem: Optional[str],
                        at: str) -> None:
        """In a press's transaction: the device's tally, its press id, and a few expired ids gone."""
        now = parse_time(at, "now").timestamp()
        recent = (recent + [now])[-DEVICE_RATE:]
        db.execute("UPDATE devices SET presses = presses + 1, last_seen = ?, recent = ? WHERE id = ?",
                   (at, json.dumps(recent), device_id))
        if idem is not None:
            db.execute("DELETE FROM press_ids WHERE rowid IN "
                       "(SELECT rowid FROM press_ids WHERE expires <= ? ORDER BY expires LIMIT ?)",
                       (now, CLEANUP_BATCH))
            db.execute("INSERT OR REPLACE INTO press_ids (device_id, press_id, expires) VALUES (?, ?, ?)",
                       (device_id, idem, now + IDEM_SECONDS))

    def add_device(self, name: object, kind: object, by: object, secret_hash: str) -> Dict[str, Any]:
        """A new device (see store.py); DeviceExists when the name is taken (case-insensitively)."""
        checked_name, checked_kind, checked_by = check_device_name(name), check_kind(kind), check_by(by)
        with self._write("add a device"), self._transaction() as db:
            key = name_key(checked_name)
            if db.execute("SELECT 1 FROM devices WHERE name_key = ?", (key,)).fetchone():
                raise DeviceExists(f"a device named {checked_name!r} is already there")
            created = self.clock()
            db.execute("INSERT INTO devices (name, name_key, kind, pressed_by, secret_hash, created) "
                       "VALUES (?, ?, ?, ?, ?, ?)", (checked_name, key, checked_kind, checked_by, secret_hash, created))
        return {"name": checked_name, "kind": checked_kind, "by": checked_by, "created": created,
                "last_seen": None, "presses": 0}

    def devices(self) -> List[Dict[str, Any]]:
        with self._write("read the devices"), self._read_lock:
            rows = self._reader.execute(
                "SELECT name, kind, pressed_by, created, last_seen, presses FROM devices ORDER BY id").fetchall()
        return [{"name": name, "kind": kind, "by": by, "created": created, "last_seen": last_seen, "presses": presses}
                for name, kind, by, created, last_seen, presses in rows]

    def remove_device(self, name: str) -> None:
        with self._write("remove a device"), self._transaction() as db:
            # Its press ids go with it (ON DELETE CASCADE).
            if db.execute("DELETE FROM devices WHERE name_key = ?", (name_key(str(name)),)).rowcount == 0:
                raise UnknownDevice(f"no device named {name!r}")

    def device_by_secret(self, secret_hash: str) -> Optional[Dict[str, Any]]:
        with self._write("read the devices"), self._read_lock:
            row = self._reader.execute("SELECT name, kind, pressed_by, secret_hash FROM devices WHERE secret_hash = ?",
                                       (secret_hash,)).fetchone()
        if row is None:
            return None
        return {"name": row[0], "kind": row[1], "by": row[2], "hash": row[3]}

    def undo(self) -> State:
        """Revert the latest press not yet undone (none before the latest set or new round).

        Its round loses the press: a round the press had ended reopens; a round a wrap
        had started is removed. Raises NothingToUndo when there is nothing to revert.
        """
        with self._write("undo a press"), self._transaction() as db:
            row = db.execute(
                "SELECT p.id, p.count_before, p.count_after, p.round_id, p.by_key, p.scopes FROM presses p, counter c "
                "WHERE c.id = 1 AND p.id > c.undo_floor AND p.undone_at IS NULL "
                "ORDER BY p.id DESC LIMIT 1"
            ).fetchone()
            if row is None:
                raise NothingToUndo("there is no press to undo")
            press_id, before, after, round_id, key, scopes = row
            at = self.clock()
            if before == 0:
                db.execute("DELETE FROM rounds WHERE id = ?", (round_id,))
            elif after == 0:
                db.execute("UPDATE rounds SET presses = presses - 1, ended = NULL, reached = 0 "
                           "WHERE id = ?", (round_id,))
            else:
                db.execute("UPDATE rounds SET presses = presses - 1 WHERE id = ?", (round_id,))
            db.execute("UPDATE counter SET count = MIN(?, goal), presses = presses - 1 WHERE id = 1",
                       (before,))
            db.execute("UPDATE presses SET undone_at = ? WHERE id = ?", (at, press_id))
            # Off the tallies it counted in (a press of before schema 4 is in none).
            for scope, previous in json.loads(scopes or "{}").items():
                db.execute("UPDATE scope_totals SET presses = presses - 1 WHERE scope = ?", (scope,))
                if key is None or previous is None:
                    continue
                if previous:
                    db.execute("UPDATE leaders SET presses = presses - 1, last_id = ? WHERE scope = ? AND by_key = ?",
                               (previous, scope, key))
                else:
                    db.execute("DELETE FROM leaders WHERE scope = ? AND by_key = ?", (scope, key))
            state = self._state(db)
            self._outbox.append(Change("undo", state, at=at))
            return state

    def set(self, count: Optional[int] = None, goal: Optional[int] = None,
            title: Optional[str] = None) -> State:
        """Set the count, the goal and/or the title (None: unchanged; title "": the default).

        A goal below the count pulls the count down to it. A change of count or goal
        ends the open round (not reached) and starts the next; undo does not reach back
        past it. A set that changes neither (the title alone) keeps the round and undo.
        Raises InvalidValue (nothing changed) for a count outside 0..goal, a goal
        outside 1..MAX_GOAL or a bad title.
        """
        if goal is not None:
            check_goal(goal)
        if count is not None:
            check_count(count)
        new_title = check_title(title) if title is not None else None
        with self._write("set the count"), self._transaction() as db:
            at = self.clock()
            old_count, old_goal = db.execute(
                "SELECT count, goal FROM counter WHERE id = 1"
            ).fetchone()
            new_goal = old_goal if goal is None else goal
            if count is None:
                new_count = min(old_count, new_goal)
            else:
                new_count = check_count(count, new_goal)
            if (new_count, new_goal) != (old_count, old_goal):
                self._next_round(db, at, new_count, new_goal)
                self._raise_undo_floor(db)
            if title is not None:
                db.execute("UPDATE counter SET title = ? WHERE id = 1", (new_title,))
            state = self._state(db)
            self._outbox.append(Change("set", state, at=at))
            return state

    def new_round(self, since: Optional[str] = None, until: Optional[str] = None) -> Optional[State]:
        """Start a new round (count = goal), unless the newest round started at or after ``since``.

        ``since`` is an ISO-8601 time with its UTC offset (a scheduled round's period
        start); the check and the new round are one transaction, so two callers cannot
        both start it. With ``until``, a newest round started after it does not count (a
        clock since set back stamped it "in the future"). Returns the committed state, or
        None when nothing was done.
        """
        since_at, until_at = _to_ms(since, "since"), _to_ms(until, "until")
        with self._write("start a new round"), self._transaction() as db:
            at = self.clock()
            if since_at is not None:
                row = db.execute("SELECT started FROM rounds ORDER BY id DESC LIMIT 1").fetchone()
                started = None if row is None else parse_time(row[0], "started")
                if started is not None and since_at <= started and (until_at is None or started <= until_at):
                    return None
            (goal,) = db.execute("SELECT goal FROM counter WHERE id = 1").fetchone()
            self._next_round(db, at, goal, goal)
            self._raise_undo_floor(db)
            state = self._state(db)
            self._outbox.append(Change("round", state, at=at))
            return state

    def history(self, limit: int = 50, before: Optional[int] = None) -> List[dict]:
        """Presses newest first, at most ``limit`` (1-1000), only ids below ``before`` when given."""
        check_page(limit, before)
        with self._write("read the history"), self._read_lock:
            rows = self._reader.execute(
                "SELECT id, pressed_at, source, count_before, count_after, undone_at, note, pressed_by, device "
                "FROM presses WHERE id < ? ORDER BY id DESC LIMIT ?",
                (before if before is not None else 2**63 - 1, limit),
            ).fetchall()
        return [
            {"id": id_, "at": at, "source": source, "count_before": count_before,
             "count_after": count_after, "undone": undone is not None, "note": note, "by": by, "device": device}
            for id_, at, source, count_before, count_after, undone, note, by, device in rows
        ]

    def leaderboard(self, period: str = "round", since: Optional[str] = None) -> Dict[str, Any]:
        """Who pressed most: in the current round, in the month that starts at ``since`` (local time), or ever.

        Read from the tallies press and undo keep: undone presses do not count, nor (for a
        round) the press that wrapped to start it; names are grouped as name_key compares
        them and shown as last written; most presses first, and between equals whoever got
        there first (the earlier latest press).
        """
        check_period(period)
        with self._write("read the leaderboard"), self._read_lock:
            db = self._reader
            started = None
            if period == "round":
                row = db.execute("SELECT id, started, presses FROM rounds ORDER BY id DESC LIMIT 1").fetchone()
                round_id, started, total = row if row is not None else (0, None, 0)
                scope = f"round:{round_id}"
            elif period == "month":
                started = since
                scope = "month:" + local_month(since or now_iso())
                row = db.execute("SELECT presses FROM scope_totals WHERE scope = ?", (scope,)).fetchone()
                total = row[0] if row else 0
            else:
                scope = "all"
                (total,) = db.execute("SELECT presses FROM counter WHERE id = 1").fetchone()
            tally = db.execute(
                "SELECT l.pressed_by, l.presses, p.pressed_at FROM leaders l JOIN presses p ON p.id = l.last_id "
                "WHERE l.scope = ? ORDER BY l.presses DESC, l.last_id ASC", (scope,)).fetchall()
        return {"period": period, "since": started, "unattributed": total - sum(n for _, n, _ in tally),
                "leaders": [{"by": by, "presses": n, "last": last} for by, n, last in tally]}

    def rounds(self) -> List[dict]:
        """The latest rounds (at most MAX_ROUNDS), newest (the current one) first."""
        with self._write("read the rounds"), self._read_lock:
            rows = self._reader.execute(
                "SELECT started, ended, goal, presses, reached FROM rounds ORDER BY id DESC LIMIT ?",
                (MAX_ROUNDS,),
            ).fetchall()
        return [
            {"started": started, "ended": ended, "goal": goal, "presses": presses, "reached": bool(reached)}
            for started, ended, goal, presses, reached in rows
        ]

    def health(self) -> dict:
        """Whether writes work (the latest failed one until one succeeds) and the latest read worked.

        Cheap, touches no lock (the IOLoop calls it).
        """
        error = self._write_error or self._read_error
        health: dict = {"kind": "sqlite", "ok": error is None}
        if error is not None:
            health["error"] = error
        return health

    def close(self) -> None:
        with self._lock, self._read_lock:
            self._reader.close()
            self._db.close()
            release(self._owner)  # after the database: see hold_exclusively
            self._owner = -1

    def __enter__(self) -> Repository:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _WriteErrors:
    """Context manager that turns sqlite3 errors into RepositoryError naming the file.

    It also notes on the repository whether the latest read, or write, worked, for
    health(): a write that works clears both; a read that works, only a read's failure.
    """

    def __init__(self, repository: Repository, what: str) -> None:
        self.repository = repository
        self.what = what
        self.reading = what.startswith("read")

    def __enter__(self) -> None:
        self.changes = self.repository._db.total_changes
        return None

    def __exit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> None:
        repository = self.repository
        if exc_type is not None and issubclass(exc_type, sqlite3.Error):
            message = f"{repository.path}: could not {self.what}: {exc}"
            if self.reading:
                repository._read_error = message
            else:
                repository._write_error = message
            raise RepositoryError(message) from exc
        if exc_type is None:
            repository._read_error = None
            # Only a write that stored something proves the disk takes writes again: a commit
            # that changed nothing (the round schedule finding its round there) does not.
            if not self.reading and repository._db.total_changes != self.changes:
                repository._write_error = None


def default_path() -> str:
    """counter.db beside this file, whatever the working directory."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "counter.db")
