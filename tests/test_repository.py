"""The SQLite store: presses, wrap, undo, set, notes, title, rounds, history, validation, migrations."""
import datetime
import os
import sqlite3
import threading

import pytest

from Repository import (
    APPLICATION_ID,
    MIGRATIONS,
    SCHEMA_VERSION,
    Repository,
    RepositoryError,
)
from thebutton.store import InvalidValue, NothingToUndo


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
    """Presses from many threads at once, with history being read beside them, are all counted."""
    with Repository(db_path, goal=1000) as a:
        def work():
            for _ in range(50):
                a.press()
                a.history(limit=10)
        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        state = a.state()
    assert (state.count, state.presses) == (800, 200)


def test_one_repository_per_file(db_path):
    """A second Repository on a file in use is refused, naming the file, and changes nothing; after close() it opens."""
    with Repository(db_path, goal=20) as first:
        first.press()
        with pytest.raises(RepositoryError, match="another server is using this database") as refused:
            Repository(db_path, goal=5)
        assert db_path in str(refused.value)
        assert first.press().count == 18
    with Repository(db_path, goal=5) as again:
        assert again.state().count == 18


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


# Notes, title, rounds and history (schema version 3).


def rounds_of(repo):
    """The rounds as (goal, presses, reached, open) tuples, newest first."""
    return [(r["goal"], r["presses"], r["reached"], r["ended"] is None) for r in repo.rounds()]


def test_press_note_is_stored_in_history_and_told(repo):
    """A press's note (trimmed) is in the history and in the change listeners hear."""
    heard = []
    repo.listen(heard.append)
    repo.press(source="api", note="  Acme Corp  ")
    repo.press(source="gpio")
    first, second = repo.history()[::-1]
    assert (first["note"], first["source"]) == ("Acme Corp", "api")
    assert second["note"] is None
    assert heard[0].note == "Acme Corp" and heard[0].source == "api" and heard[0].event == "press"
    assert heard[0].at == first["at"]


@pytest.mark.parametrize("note", ["x" * 101, "bell\x07", "line\nbreak", 5, ["a"]])
def test_bad_note_changes_nothing(repo, note):
    """A note too long, with control characters or not a string raises InvalidValue; nothing is stored."""
    with pytest.raises(InvalidValue):
        repo.press(note=note)
    assert repo.state().count == 5 and repo.history() == []


def test_empty_note_is_no_note(repo):
    """A note of only spaces is a press without a note."""
    repo.press(note="   ")
    assert repo.history()[0]["note"] is None


def test_title_is_stored_and_reset(db_path):
    """A title survives reopening; "" goes back to the default (None); None leaves it alone."""
    with Repository(db_path, goal=5) as r:
        assert r.state().title is None
        assert r.set(title="  Sales Q3 ").title == "Sales Q3"
        assert r.set(count=2).title == "Sales Q3"
    with Repository(db_path, goal=5) as r:
        assert r.state().title == "Sales Q3"
        assert r.set(title="").title is None


@pytest.mark.parametrize("title", ["x" * 81, 7, "tab\there"])
def test_bad_title_changes_nothing(repo, title):
    """A title too long, not a string or with control characters changes neither title nor count."""
    repo.set(title="Kept")
    with pytest.raises(InvalidValue):
        repo.set(count=1, title=title)
    state = repo.state()
    assert (state.title, state.count) == ("Kept", 5)


def test_title_only_set_is_not_a_round_event(repo):
    """Setting only the title leaves the rounds, the count and undo alone."""
    repo.press()
    assert repo.set(title="Hello").count == 4
    assert rounds_of(repo) == [(5, 1, False, True)]
    assert repo.undo().count == 5


def test_fresh_store_has_one_open_round(repo):
    """A fresh store has one open round at the goal, started at its creation, with no presses."""
    (only,) = repo.rounds()
    assert only["ended"] is None and only["goal"] == 5 and only["presses"] == 0 and only["reached"] is False
    started = datetime.datetime.fromisoformat(only["started"])
    assert abs(datetime.datetime.now(datetime.timezone.utc) - started) < datetime.timedelta(seconds=60)


def test_presses_to_zero_end_the_round_reached(repo):
    """The press that reaches 0 ends the round as reached, and no round is open until the next press."""
    for _ in range(5):
        repo.press()
    (done,) = repo.rounds()
    assert done["reached"] is True and done["presses"] == 5 and done["ended"] is not None


def test_wrap_starts_a_new_round_that_the_wrap_does_not_count_in(repo):
    """A press at 0 starts a new open round at the goal with 0 presses; the next press counts in it."""
    for _ in range(6):
        repo.press()
    assert rounds_of(repo) == [(5, 0, False, True), (5, 5, True, False)]
    repo.press()
    assert rounds_of(repo)[0] == (5, 1, False, True)
    assert repo.state().presses == 7


def test_set_ends_the_round_not_reached_and_starts_one(repo):
    """A set of the goal ends the open round not reached and starts one at the new goal."""
    repo.press()
    repo.set(goal=3)
    assert rounds_of(repo) == [(3, 0, False, True), (5, 1, False, False)]


def test_set_at_zero_starts_a_round_and_ends_none(repo):
    """A set while no round is open (count 0) only starts a new round."""
    for _ in range(5):
        repo.press()
    repo.set(count=2)
    assert rounds_of(repo) == [(5, 0, False, True), (5, 5, True, False)]


def test_set_that_changes_nothing_is_not_a_round_event(repo):
    """A set to the current count and goal starts no round, and the press before it can still be undone."""
    repo.press()
    repo.set(count=4, goal=5)
    assert rounds_of(repo) == [(5, 1, False, True)]
    assert repo.undo().count == 5


def test_undo_takes_the_press_out_of_its_round(repo):
    """Undo lowers the presses of the round the press counted in."""
    repo.press()
    repo.press()
    repo.undo()
    assert rounds_of(repo) == [(5, 1, False, True)]


def test_undo_of_the_press_that_reached_zero_reopens_the_round(repo):
    """Undoing the press that ended a round reopens it, not reached."""
    for _ in range(5):
        repo.press()
    repo.undo()
    assert rounds_of(repo) == [(5, 4, False, True)]
    assert repo.rounds()[0]["ended"] is None


def test_undo_of_a_wrap_removes_the_round_it_started(repo):
    """Undoing a wrap removes its round; the reached round is the newest again."""
    for _ in range(6):
        repo.press()
    assert repo.undo().count == 0
    assert rounds_of(repo) == [(5, 5, True, False)]
    assert repo.undo().count == 1
    assert rounds_of(repo) == [(5, 4, False, True)]


def test_new_round_resets_count_and_stops_undo(repo):
    """new_round sets count = goal, ends the open round not reached, tells "round" and blocks undo."""
    heard = []
    repo.listen(heard.append)
    repo.press()
    state = repo.new_round()
    assert (state.count, state.presses) == (5, 1)
    assert heard[-1].event == "round" and heard[-1].state == state
    assert rounds_of(repo) == [(5, 0, False, True), (5, 1, False, False)]
    with pytest.raises(NothingToUndo):
        repo.undo()


def backdate_rounds(path, hours):
    """Move every round's start back by hours, as if the store were made that long ago."""
    db = sqlite3.connect(path)
    for id_, started in db.execute("SELECT id, started FROM rounds").fetchall():
        earlier = datetime.datetime.fromisoformat(started) - datetime.timedelta(hours=hours)
        db.execute("UPDATE rounds SET started = ? WHERE id = ?", (earlier.isoformat(timespec="milliseconds"), id_))
    db.commit()
    db.close()


def test_new_round_since_is_applied_once(db_path, repo):
    """With since, a round starts only when the newest round started before it."""
    hour_ago = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)).isoformat()
    assert repo.new_round(since=hour_ago) is None  # the first round started after it
    repo.press()
    backdate_rounds(db_path, 2)
    boundary = hour_ago  # now after the first round began
    assert repo.new_round(since=boundary).count == 5
    assert repo.new_round(since=boundary) is None
    assert len(repo.rounds()) == 2


def test_new_round_since_compares_times_across_offsets(repo):
    """since with another UTC offset than the stored times is compared as a moment, not as text."""
    started = datetime.datetime.fromisoformat(repo.rounds()[0]["started"])
    later_in_tokyo = (started + datetime.timedelta(seconds=1)).astimezone(
        datetime.timezone(datetime.timedelta(hours=9)))
    assert repo.new_round(since=later_in_tokyo.isoformat()) is not None
    earlier_in_new_york = (started - datetime.timedelta(seconds=1)).astimezone(
        datetime.timezone(datetime.timedelta(hours=-5)))
    assert repo.new_round(since=earlier_in_new_york.isoformat()) is None


@pytest.mark.parametrize("since", ["yesterday", "2024-05-01T00:00:00", 17])
def test_new_round_bad_since_changes_nothing(repo, since):
    """since that is not an ISO time with an offset raises InvalidValue and starts no round."""
    with pytest.raises(InvalidValue):
        repo.new_round(since=since)
    assert len(repo.rounds()) == 1


def test_concurrent_new_rounds_start_exactly_one(db_path):
    """Several threads asking for the same period's round start it once."""
    with Repository(db_path, goal=5) as a:
        backdate_rounds(db_path, 2)
        since = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)).isoformat()
        started = []
        barrier = threading.Barrier(6)

        def work(r):
            barrier.wait()
            started.append(r.new_round(since=since))
        threads = [threading.Thread(target=work, args=(a,)) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len([s for s in started if s is not None]) == 1
        assert len(a.rounds()) == 2


def test_history_is_newest_first_and_pages_with_before(repo):
    """history gives presses newest first, limit at a time, and before pages to older ones."""
    for _ in range(7):
        repo.press()
    repo.undo()
    page = repo.history(limit=3)
    assert [p["count_after"] for p in page] == [4, 5, 0]
    assert page[0]["undone"] is True and page[1]["undone"] is False
    older = repo.history(limit=3, before=page[-1]["id"])
    assert [p["count_after"] for p in older] == [1, 2, 3]
    assert [p["count_after"] for p in repo.history(before=older[-1]["id"])] == [4]
    wrap = page[1]
    assert (wrap["count_before"], wrap["count_after"], wrap["source"]) == (0, 5, "button")
    assert datetime.datetime.fromisoformat(wrap["at"]).utcoffset() is not None


@pytest.mark.parametrize("kwargs", [
    dict(limit=0), dict(limit=1001), dict(limit=-1), dict(limit="5"), dict(limit=True),
    dict(limit=2.0), dict(before=0), dict(before=-3), dict(before="9"), dict(before=1.5),
])
def test_history_bad_limit_or_before_is_refused(repo, kwargs):
    """A limit outside 1-1000 or a before that is not a positive whole number raises InvalidValue."""
    with pytest.raises(InvalidValue):
        repo.history(**kwargs)


def test_state_presses_counts_the_log_not_undone(db_path):
    """presses in the state equals the presses in the log not undone, also after reopening."""
    with Repository(db_path, goal=3) as r:
        for _ in range(5):
            r.press()
        r.undo()
        r.set(count=1)
        r.press()
        assert r.state().presses == 5
    with Repository(db_path, goal=3) as r:
        assert r.state().presses == 5
        assert r.state().presses == sum(not p["undone"] for p in r.history(limit=1000))


def test_rounds_survive_reopening(db_path):
    """Rounds are on disk: reopening the file gives the same list."""
    with Repository(db_path, goal=2) as r:
        for _ in range(4):
            r.press()
        before = r.rounds()
    with Repository(db_path, goal=2) as r:
        assert r.rounds() == before


def test_health_says_sqlite_and_reports_a_failed_write(db_path):
    """health() is ok after working writes and says why after a failed one."""
    r = Repository(db_path, goal=5)
    try:
        assert r.health() == {"kind": "sqlite", "ok": True}
        r._db.close()
        r._db = sqlite3.connect("file:%s?mode=ro" % db_path, uri=True, isolation_level=None,
                                check_same_thread=False)
        with pytest.raises(RepositoryError):
            r.press()
        health = r.health()
        assert health["ok"] is False and "could not store a press" in health["error"]
    finally:
        r.close()


def make_old_database(path, version, count, goal, presses=()):
    """A file as an older release left it: schema MIGRATIONS[:version], with count, goal and presses."""
    db = sqlite3.connect(path)
    db.execute("PRAGMA application_id = %d" % APPLICATION_ID)
    for migration in MIGRATIONS[:version]:
        db.executescript(migration)
    db.execute("INSERT INTO counter (id, count, goal) VALUES (1, ?, ?)", (count, goal))
    for at, source, before, after, undone in presses:
        db.execute("INSERT INTO presses (pressed_at, source, count_before, count_after, undone_at) "
                   "VALUES (?, ?, ?, ?, ?)", (at, source, before, after, undone))
    db.execute("PRAGMA user_version = %d" % version)
    db.commit()
    db.close()


def test_version_2_database_keeps_count_and_history(db_path):
    """A file of today's release (schema 2, with presses) opens with its count, presses and history."""
    make_old_database(db_path, 2, count=17, goal=20, presses=[
        ("2024-03-01T09:00:00.000+00:00", "gpio", 20, 19, None),
        ("2024-03-01T09:05:00.000+00:00", "api", 19, 18, None),
        ("2024-03-01T09:06:00.000+00:00", "keyboard", 18, 17, None),
        ("2024-03-01T09:07:00.000+00:00", "api", 17, 16, "2024-03-01T09:08:00.000+00:00"),
    ])
    with Repository(db_path, goal=5) as r:
        state = r.state()
        assert (state.count, state.goal, state.presses, state.title) == (17, 20, 3, None)
        history = r.history()
        assert [(p["source"], p["count_after"], p["undone"], p["note"]) for p in history] == [
            ("api", 16, True, None), ("keyboard", 17, False, None),
            ("api", 18, False, None), ("gpio", 19, False, None)]
        assert history[-1]["at"] == "2024-03-01T09:00:00.000+00:00"
        # One open round from now; the older presses belong to none, so undo stops at them.
        assert rounds_of(r) == [(20, 0, False, True)]
        with pytest.raises(NothingToUndo):
            r.undo()
        assert r.press(note="first note").count == 16
        assert rounds_of(r) == [(20, 1, False, True)]
        assert r.history(limit=1)[0]["id"] == 5
    db = sqlite3.connect(db_path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 5
    db.close()


def test_version_3_database_gains_who_pressed(db_path):
    """A file of the release before "by" (schema 3: notes, rounds) keeps everything; old presses have no name."""
    with Repository(db_path, goal=10) as r:
        r.press(note="Acme Corp")
        r.press()
    db = sqlite3.connect(db_path)  # back to schema 3, as that release left it
    db.executescript("DROP TABLE press_ids; DROP TABLE devices; ALTER TABLE presses DROP COLUMN device; "
                     "DROP TABLE leaders; DROP TABLE scope_totals; "
                     "ALTER TABLE presses DROP COLUMN by_key; ALTER TABLE presses DROP COLUMN scopes; "
                     "ALTER TABLE presses DROP COLUMN pressed_by; PRAGMA user_version = 3;")
    db.close()
    with Repository(db_path, goal=5) as r:
        state = r.state()
        assert (state.count, state.goal, state.presses) == (8, 10, 2)
        assert [(p["note"], p["by"]) for p in r.history()] == [(None, None), ("Acme Corp", None)]
        assert r.press(by="Ana").count == 7 and r.history(limit=1)[0]["by"] == "Ana"
        assert r.undo().count == 8  # undo still reaches the presses of before
    db = sqlite3.connect(db_path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    db.close()


def test_version_4_database_gains_devices(db_path):
    """A file of the release before devices (schema 4) keeps its presses (of no device) and takes devices."""
    with Repository(db_path, goal=10) as r:
        r.press(by="Ana")
    db = sqlite3.connect(db_path)  # back to schema 4, as that release left it
    db.executescript("DROP TABLE press_ids; DROP TABLE devices; ALTER TABLE presses DROP COLUMN device; "
                     "PRAGMA user_version = 4;")
    db.close()
    with Repository(db_path, goal=5) as r:
        assert [(p["by"], p["device"]) for p in r.history()] == [("Ana", None)]
        r.add_device("Lobby", "button", None, "h")
        assert r.press(source="device", device="Lobby", idem="1").count == 8
        assert r.history(limit=1)[0]["device"] == "Lobby"
    db = sqlite3.connect(db_path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 5
    db.close()


def test_version_1_database_gets_rounds(db_path):
    """A file of the first release (schema 1, counter only) opens with its count and one open round."""
    make_old_database(db_path, 1, count=7, goal=30)
    with Repository(db_path) as r:
        state = r.state()
        assert (state.count, state.goal, state.presses) == (7, 30, 0)
        assert rounds_of(r) == [(30, 0, False, True)]
        assert r.history() == []
        for _ in range(7):
            r.press()
        assert rounds_of(r) == [(30, 7, True, False)]


def test_old_database_at_zero_has_no_open_round_until_the_wrap(db_path):
    """An older file left at 0 gets no open round; the next press wraps and starts one."""
    make_old_database(db_path, 2, count=0, goal=4, presses=[
        ("2024-03-01T09:00:00.000+00:00", "gpio", 1, 0, None)])
    with Repository(db_path) as r:
        assert r.rounds() == []
        assert r.press().count == 4
        assert rounds_of(r) == [(4, 0, False, True)]
        assert r.undo().count == 0
        assert r.rounds() == []


def test_a_commit_that_changes_nothing_does_not_clear_a_failed_write(db_path):
    """A full disk: the press fails and health says so; the round schedule's check (a new_round that finds its
    round and writes nothing) and reads do not clear it; a press that is stored does."""
    with Repository(db_path, goal=1000) as r:
        pages = r._db.execute("PRAGMA page_count").fetchone()[0]
        r._db.execute("PRAGMA max_page_count = %d" % pages)
        with pytest.raises(RepositoryError):
            for _ in range(1000):
                r.press(note="x" * 90)
        assert r.health()["ok"] is False
        an_hour_ago = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)).isoformat()
        assert r.new_round(since=an_hour_ago) is None
        r.history(limit=5)
        assert r.health()["ok"] is False
        r._db.execute("PRAGMA max_page_count = 1073741823")
        r.press()
        assert r.health()["ok"] is True
