"""The outbox of the Redis store: physical presses kept on local disk while Redis is away.

A small SQLite file beside --db holds each button press (committed before the press
returns) until the Redis store has stored it, and the last state heard, so that a
server restarted during an outage still shows the count. Only redis_store.py uses it.
"""
from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from typing import List, Optional

from thebutton.files import hold_exclusively, release
from thebutton.store import StoreError


class Outbox:
    """Physical presses waiting for Redis, in a local SQLite file, plus the last state heard.

    Safe from several threads. Each press is committed (synchronous=FULL) before
    ``add`` returns, so a power cut or a restart of the server keeps it.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        # Two servers on one outbox would each send the other's waiting presses to Redis.
        self._owner = hold_exclusively(path)
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
                             "uid TEXT NOT NULL UNIQUE, at TEXT NOT NULL, source TEXT NOT NULL, note TEXT, by TEXT)")
            columns = [row[1] for row in self._db.execute("PRAGMA table_info(outbox)")]
            if "by" not in columns:  # an outbox of an older release, perhaps with presses waiting
                self._db.execute("ALTER TABLE outbox ADD COLUMN by TEXT")
            self._db.execute("CREATE TABLE IF NOT EXISTS known (id INTEGER PRIMARY KEY CHECK (id = 1), "
                             "state TEXT NOT NULL)")
            self.pending = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        except sqlite3.Error as e:
            release(self._owner)
            raise StoreError(f"{path}: cannot open the outbox of button presses: {e}") from e

    def add(self, at: str, source: str, note: Optional[str], by: Optional[str] = None) -> str:
        uid = uuid.uuid4().hex
        with self._lock:
            try:
                self._db.execute("INSERT INTO outbox (uid, at, source, note, by) VALUES (?, ?, ?, ?, ?)",
                                 (uid, at, source, note, by))
            except sqlite3.Error as e:
                raise StoreError(f"{self.path}: cannot keep a button press: {e}") from e
            self.pending += 1
        return uid

    def waiting(self) -> List[tuple]:
        with self._lock:
            return self._db.execute("SELECT uid, at, source, note, by FROM outbox ORDER BY seq").fetchall()

    def done(self, uid: str) -> None:
        with self._lock:
            if self._db.execute("DELETE FROM outbox WHERE uid = ?", (uid,)).rowcount:
                self.pending -= 1

    def save_known(self, known: dict) -> None:
        with self._lock:
            try:
                self._db.execute("INSERT OR REPLACE INTO known (id, state) VALUES (1, ?)", (json.dumps(known),))
            except sqlite3.Error as e:
                raise StoreError(f"{self.path}: cannot keep the last state heard: {e}") from e

    def load_known(self) -> Optional[dict]:
        with self._lock:
            row = self._db.execute("SELECT state FROM known WHERE id = 1").fetchone()
        return json.loads(row[0]) if row else None

    def close(self) -> None:
        with self._lock:
            self._db.close()
            release(self._owner)
            self._owner = -1
