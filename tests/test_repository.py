"""The SQLite store: presses, wrap, undo, set, validation, durability of the file format."""
import os
import sqlite3
import threading

import pytest

from Repository import (
    APPLICATION_ID,
    SCHEMA_VERSION,
    InvalidValue,
    NothingToUndo,
    Repository,
    RepositoryError,
)


@pytest.fixture
def repo(db_path):
    with Repository(db_path, goal=5) as r:
        yield r


def test_fresh_database_starts_at_goal(repo):
    """A new file starts with count = goal and no presses."""
    state = repo.state()
    assert (state.count, state.goal, state.presses) == (5, 5, 0)


def test_press_decrements_and_is_on_disk(db_path, repo):
    """A press lowers the count by one, and another connection sees it committed."""
    assert repo.press().count == 4
    other = sqlite3.connect(db_path)
    assert other.execute("SELECT count FROM counter").fetchone()[0] == 4
    assert other.execute("SELECT COUNT(*) FROM presses").fetchone()[0] == 1
    other.close()


def test_press_at_zero_wraps_to_goal(repo):
    """Pressing at 0 starts a new round at the goal."""
    counts = [repo.press().count for _ in range(7)]
    assert counts == [4, 3, 2, 1, 0, 5, 4]


def test_state_survives_reopen(db_path):
    """Closing and opening again keeps count and goal; --goal does not reset an existing file."""
    with Repository(db_path, goal=5) as r:
        r.press()
        r.press()
    with Repository(db_path, goal=99) as r:
        state = r.state()
    assert (state.count, state.goal, state.presses) == (3, 5, 2)


def test_undo_reverts_latest_press(repo):
    """Undo restores the count before the latest press, also across a wrap."""
    for _ in range(6):
        repo.press()
    assert repo.state().count == 5  # wrapped from 0
    assert repo.undo().count == 0
    assert repo.undo().count == 1
    assert repo.state().presses == 4


def test_undo_with_nothing_to_undo_raises(repo):
    """With no press, undo raises NothingToUndo and changes nothing."""
    with pytest.raises(NothingToUndo):
        repo.undo()
    assert repo.state().count == 5


def test_undo_does_not_reach_past_a_set(repo):
    """A set is a fresh start for undo: presses before it cannot be undone."""
    repo.press()
    repo.set(count=2)
    with pytest.raises(NothingToUndo):
        repo.undo()
    repo.press()
    assert repo.undo().count == 2


def test_set_count_and_goal(repo):
    """Set changes count and goal together; lowering the goal below the count lowers the count."""
    assert repo.set(count=1).count == 1
    state = repo.set(goal=50)
    assert (state.count, state.goal) == (1, 50)
    repo.set(count=40)
    state = repo.set(goal=10)
    assert (state.count, state.goal) == (10, 10)


@pytest.mark.parametrize("kwargs", [
    dict(count=-1), dict(count=6), dict(goal=0), dict(goal=1_000_001), dict(count="3"),
    dict(count=2.0), dict(goal=True), dict(count=3, goal=2),
])
def test_invalid_set_changes_nothing(repo, kwargs):
    """Out-of-range or wrongly typed values raise InvalidValue and leave the state alone."""
    repo.press()
    before = repo.state()
    with pytest.raises(InvalidValue):
        repo.set(**kwargs)
    assert repo.state() == before


def test_concurrent_presses_lose_nothing(db_path):
    """Presses from many threads and two connections to one file are all counted."""
    with Repository(db_path, goal=1000) as a, Repository(db_path, goal=1000) as b:
        def work(r):
            for _ in range(50):
                r.press()
        threads = [threading.Thread(target=work, args=(r,)) for r in (a, b, a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        state = a.state()
    assert (state.count, state.presses) == (800, 200)


def test_write_rolls_back_on_error(repo):
    """An error inside a transaction leaves nothing half-written."""
    repo.press()
    before = repo.state()
    with pytest.raises(RuntimeError):
        with repo._transaction() as db:
            db.execute("UPDATE counter SET count = 0")
            raise RuntimeError("boom")
    assert repo.state() == before


def assert_refused_untouched(path, match):
    """Opening path raises RepositoryError matching match, and the file's bytes stay as they were."""
    with open(path, "rb") as f:
        before = f.read()
    with pytest.raises(RepositoryError, match=match):
        Repository(path)
    with open(path, "rb") as f:
        assert f.read() == before


def test_not_sqlite_file_is_refused_untouched(db_path):
    """A file that is not SQLite raises RepositoryError naming it, and its bytes stay."""
    data = b"hello, this is my shopping list\n" * 100
    with open(db_path, "wb") as f:
        f.write(data)
    assert_refused_untouched(db_path, "counter.db")


def test_other_programs_database_is_refused_untouched(db_path):
    """An SQLite file of another program is refused and not modified."""
    other = sqlite3.connect(db_path)
    other.execute("CREATE TABLE notes (text TEXT)")
    other.execute("INSERT INTO notes VALUES ('keep me')")
    other.commit()
    other.close()
    assert_refused_untouched(db_path, "another program")


def test_truncated_database_is_refused_untouched(db_path):
    """A database cut short (a torn copy) is refused with the path, bytes unchanged."""
    with Repository(db_path, goal=5) as r:
        for _ in range(3):
            r.press()
    with open(db_path, "rb") as f:
        data = f.read()
    cut = data[: len(data) // 2 + 100]
    for suffix in ("-wal", "-shm"):
        if os.path.exists(db_path + suffix):
            os.remove(db_path + suffix)
    with open(db_path, "wb") as f:
        f.write(cut)
    assert_refused_untouched(db_path, "counter.db")


def test_newer_schema_is_refused(db_path):
    """A file from a newer release is refused rather than misread."""
    Repository(db_path).close()
    db = sqlite3.connect(db_path)
    db.execute("PRAGMA user_version = %d" % (SCHEMA_VERSION + 1))
    db.close()
    with pytest.raises(RepositoryError, match="newer"):
        Repository(db_path)


def test_version_1_database_is_migrated(db_path):
    """A database of schema version 1 (counter only) gains the press log and keeps its count."""
    db = sqlite3.connect(db_path)
    db.executescript(
        "PRAGMA application_id = %d;"
        "CREATE TABLE counter (id INTEGER PRIMARY KEY CHECK (id = 1), count INTEGER NOT NULL, goal INTEGER NOT NULL);"
        "INSERT INTO counter VALUES (1, 7, 30);"
        "PRAGMA user_version = 1;" % APPLICATION_ID
    )
    db.close()
    with Repository(db_path) as r:
        assert (r.state().count, r.state().goal) == (7, 30)
        assert r.press().count == 6
        assert r.undo().count == 7
    db = sqlite3.connect(db_path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    db.close()


def test_uses_wal_with_full_sync(repo):
    """Commits are durable: WAL journal and synchronous=FULL."""
    assert repo._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert repo._db.execute("PRAGMA synchronous").fetchone()[0] == 2


def test_read_only_database_fails_press_cleanly(db_path):
    """When the file cannot be written, a press raises RepositoryError and the count stays."""
    with Repository(db_path, goal=5) as r:
        r.press()
    os.chmod(db_path, 0o444)
    try:
        uri = "file:%s?mode=ro" % db_path
        # Root may write any file, so the connection itself is made read-only.
        r = Repository(db_path, goal=5)
        r._db.close()
        r._db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        with pytest.raises(RepositoryError, match="could not store a press"):
            r.press()
        assert r.state().count == 4
        r.close()
    finally:
        os.chmod(db_path, 0o644)
