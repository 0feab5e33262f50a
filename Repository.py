"""The SQLite store of The Button: the count, the goal and the log of presses.

This is the only module that speaks SQL, and it knows nothing of Tornado. Every
write is one ``BEGIN IMMEDIATE`` transaction that is committed (WAL mode with
``synchronous=FULL``, so a power cut after the commit keeps it) before the caller
gets the new state back; callers broadcast or acknowledge only that state.
"""
from __future__ import annotations

import dataclasses
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator, List, Optional

from store import (  # noqa: F401 - re-exported: callers import the errors from here too
    MAX_GOAL,
    Change,
    InvalidValue,
    NothingToUndo,
    State,
    StoreError,
    check_count,
    check_goal,
    now_iso,
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
)
SCHEMA_VERSION = len(MIGRATIONS)


class RepositoryError(StoreError):
    """The database cannot be opened or written; the message names the file."""


_now = now_iso


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


class Repository:
    """The count in one SQLite file; safe to call from several threads at once.

    A missing or empty file becomes a fresh database at ``goal``. A file that is
    not SQLite, is damaged, or is some other program's database raises
    RepositoryError and is not written to.
    """

    def __init__(self, path: str, goal: int = 20, busy_timeout: float = 5.0) -> None:
        check_goal(goal)
        self.path = path
        _check_header(path)
        self._lock = threading.Lock()
        self._serial = 0
        self._listeners: List[Callable[[Change], None]] = []
        self._outbox: List[Change] = []  # changes of the open transaction, told after its commit
        try:
            self._db = sqlite3.connect(
                path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as e:
            raise RepositoryError(f"{path}: cannot open the database: {e}") from e
        try:
            self._open(goal)
        except BaseException:
            self._db.close()
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
        """Wrap sqlite3 errors of a write into RepositoryError naming the file."""
        return _WriteErrors(self.path, what)

    def _state(self, db: sqlite3.Connection) -> State:
        count, goal = db.execute("SELECT count, goal FROM counter WHERE id = 1").fetchone()
        (presses,) = db.execute("SELECT COUNT(*) FROM presses WHERE undone_at IS NULL").fetchone()
        return State(count=count, goal=goal, presses=presses, serial=self._serial)

    def state(self) -> State:
        """The committed state."""
        with self._write("read the count"), self._lock:
            return self._state(self._db)

    def press(self, source: str = "button") -> State:
        """One press: count - 1, or back to the goal when it was 0. Returns the committed state."""
        with self._write("store a press"), self._transaction() as db:
            count, goal = db.execute("SELECT count, goal FROM counter WHERE id = 1").fetchone()
            after = goal if count <= 0 else count - 1
            db.execute("UPDATE counter SET count = ? WHERE id = 1", (after,))
            db.execute(
                "INSERT INTO presses (pressed_at, source, count_before, count_after) "
                "VALUES (?, ?, ?, ?)",
                (_now(), source, count, after),
            )
            state = self._state(db)
            self._outbox.append(Change("press", state, source=source, at=_now()))
            return state

    def undo(self) -> State:
        """Revert the latest press not yet undone (none before the latest set); NothingToUndo if none."""
        with self._write("undo a press"), self._transaction() as db:
            row = db.execute(
                "SELECT p.id, p.count_before FROM presses p, counter c "
                "WHERE c.id = 1 AND p.id > c.undo_floor AND p.undone_at IS NULL "
                "ORDER BY p.id DESC LIMIT 1"
            ).fetchone()
            if row is None:
                raise NothingToUndo("there is no press to undo")
            press_id, before = row
            (goal,) = db.execute("SELECT goal FROM counter WHERE id = 1").fetchone()
            db.execute("UPDATE counter SET count = ? WHERE id = 1", (min(before, goal),))
            db.execute("UPDATE presses SET undone_at = ? WHERE id = ?", (_now(), press_id))
            state = self._state(db)
            self._outbox.append(Change("undo", state, at=_now()))
            return state

    def set(self, count: Optional[int] = None, goal: Optional[int] = None) -> State:
        """Set the count and/or the goal; a goal below the count pulls the count down to it.

        Raises InvalidValue (nothing changed) for a count outside 0..goal or a goal
        outside 1..MAX_GOAL. Undo does not reach back past a set.
        """
        if goal is not None:
            check_goal(goal)
        if count is not None:
            check_count(count)
        with self._write("set the count"), self._transaction() as db:
            old_count, old_goal = db.execute(
                "SELECT count, goal FROM counter WHERE id = 1"
            ).fetchone()
            new_goal = old_goal if goal is None else goal
            if count is None:
                new_count = min(old_count, new_goal)
            else:
                new_count = check_count(count, new_goal)
            (floor,) = db.execute("SELECT COALESCE(MAX(id), 0) FROM presses").fetchone()
            db.execute(
                "UPDATE counter SET count = ?, goal = ?, undo_floor = ? WHERE id = 1",
                (new_count, new_goal, floor),
            )
            state = self._state(db)
            self._outbox.append(Change("set", state, at=_now()))
            return state

    def history(self, limit: int = 100) -> list:
        """The latest presses, newest first, as dicts."""
        with self._write("read the history"), self._lock:
            rows = self._db.execute(
                "SELECT id, pressed_at, source, count_before, count_after, undone_at "
                "FROM presses ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        keys = ("id", "pressed_at", "source", "count_before", "count_after", "undone_at")
        return [dict(zip(keys, row)) for row in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> "Repository":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _WriteErrors:
    """Context manager that turns sqlite3 errors into RepositoryError naming the file."""

    def __init__(self, path: str, what: str) -> None:
        self.path = path
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is not None and issubclass(exc_type, sqlite3.Error):
            raise RepositoryError(f"{self.path}: could not {self.what}: {exc}") from exc
        return False


def default_path() -> str:
    """counter.db beside this file, whatever the working directory."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "counter.db")
