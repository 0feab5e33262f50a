"""One set of store tests, run against both stores: SQLite (Repository) and Redis (RedisStore).

The interface and the round semantics of store.py, checked the same way on each; the
Redis store runs against a real redis-server started for this module.
"""
from __future__ import annotations

import datetime
import threading
from typing import List

import pytest

from Repository import Repository
from tests.redis_server import RedisServer
from thebutton.store import (
    Change,
    DeviceExists,
    Duplicate,
    InvalidValue,
    NothingToUndo,
    TooFast,
    UnknownDevice,
)
from thebutton.validation import MAX_GOAL

KINDS = ("sqlite", "redis")


@pytest.fixture(scope="module")
def shared_redis():
    """One redis-server for the module; each test uses a key of its own."""
    server = RedisServer()
    try:
        yield server.start()
    finally:
        server.remove()


@pytest.fixture(params=KINDS)
def make_store(request, tmp_path):
    """A factory of fresh stores of one kind (the test runs once per kind), closed afterwards."""
    opened = []

    def make(goal: int = 20):
        n = len(opened)
        if request.param == "sqlite":
            store = Repository(str(tmp_path / f"counter{n}.db"), goal=goal)
        else:
            from thebutton.redis_store import RedisStore
            server = request.getfixturevalue("shared_redis")
            key = f"{request.node.name}-{n}"
            store = RedisStore(server.url, key=key, goal=goal, outbox_path=str(tmp_path / f"outbox{n}.db"))
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


class Recorder:
    """A listener that keeps every change and lets a test wait for the n-th one."""

    def __init__(self) -> None:
        self.changes: List[Change] = []
        self.cond = threading.Condition()

    def __call__(self, change: Change) -> None:
        with self.cond:
            self.changes.append(change)
            self.cond.notify_all()

    def wait(self, n: int, timeout: float = 5.0) -> List[Change]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.changes) >= n, timeout), \
                f"heard {len(self.changes)} changes, expected {n}"
            return list(self.changes)


def parse(at: str) -> datetime.datetime:
    parsed = datetime.datetime.fromisoformat(at)
    assert parsed.utcoffset() is not None, f"{at} has no UTC offset"
    return parsed


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def after_a_millisecond() -> str:
    """A moment as ISO text at least 2 ms after the call and before the return (stored times have ms)."""
    def spin(start: datetime.datetime) -> None:
        while now() - start < datetime.timedelta(milliseconds=2):  # a clock, not an event: a 2 ms spin
            pass

    spin(now())
    mark = now()
    spin(mark)
    return mark.isoformat()


def test_fresh_store_starts_at_goal_with_one_open_round(make_store):
    """A fresh store has count = goal, no presses, the default title and one open round from now."""
    before = now() - datetime.timedelta(seconds=1)
    store = make_store(goal=7)
    state = store.state()
    assert (state.count, state.goal, state.presses, state.title) == (7, 7, 0, None)
    (only,) = store.rounds()
    assert only["goal"] == 7 and only["presses"] == 0 and only["ended"] is None and not only["reached"]
    assert before <= parse(only["started"]) <= now() + datetime.timedelta(seconds=1)


def test_press_counts_down_in_the_open_round(make_store):
    """A press takes one off the count and adds one to the open round's presses."""
    store = make_store(goal=5)
    state = store.press(source="api")
    assert (state.count, state.goal, state.presses) == (4, 5, 1)
    assert store.state() == state
    (current,) = store.rounds()
    assert current["presses"] == 1 and current["ended"] is None


def test_press_to_zero_ends_the_round_reached(make_store):
    """The press that brings the count to 0 ends its round, reached, and leaves no open round."""
    store = make_store(goal=2)
    store.press(source="api")
    state = store.press(source="api")
    assert state.count == 0
    (done,) = store.rounds()
    assert done["reached"] is True and done["presses"] == 2 and done["ended"] is not None


def test_press_at_zero_wraps_to_goal_and_starts_a_round(make_store):
    """A press at 0 wraps to the goal, starts a new open round with no presses, and is logged as 0 -> goal."""
    store = make_store(goal=2)
    store.press(source="api")
    store.press(source="api")
    state = store.press(source="api")
    assert (state.count, state.presses) == (2, 3)
    new, old = store.rounds()
    assert new["presses"] == 0 and new["ended"] is None and new["goal"] == 2
    assert old["presses"] == 2 and old["reached"] is True
    latest = store.history(limit=1)[0]
    assert (latest["count_before"], latest["count_after"]) == (0, 2)


def test_physical_press_counts_like_any_other(make_store):
    """A press from the button (source gpio) is stored and logged like one from the API."""
    store = make_store(goal=3)
    state = store.press(source="gpio")
    assert (state.count, state.presses) == (2, 1)
    assert store.history()[0]["source"] == "gpio"


def test_set_of_count_ends_the_round_not_reached(make_store):
    """A set that changes the count ends the open round, not reached, and starts one at the new goal."""
    store = make_store(goal=5)
    store.press(source="api")
    state = store.set(count=3, goal=8)
    assert (state.count, state.goal) == (3, 8)
    new, old = store.rounds()
    assert old["ended"] is not None and old["reached"] is False and old["presses"] == 1 and old["goal"] == 5
    assert new["ended"] is None and new["goal"] == 8 and new["presses"] == 0
    assert new["started"] == old["ended"]


def test_title_only_set_is_not_a_round_event(make_store):
    """A set of the title alone keeps the round; a title is trimmed and "" goes back to the default."""
    store = make_store(goal=5)
    store.press(source="api")
    state = store.set(title="  Sales Q3  ")
    assert state.title == "Sales Q3" and state.count == 4
    assert len(store.rounds()) == 1
    assert store.set(title="").title is None
    assert store.state().title is None


def test_set_that_changes_nothing_is_not_a_round_event(make_store):
    """A set to the same count and goal keeps the open round."""
    store = make_store(goal=5)
    store.set(count=5, goal=5)
    assert len(store.rounds()) == 1


def test_lowering_goal_below_count_pulls_count_down(make_store):
    """A goal below the count sets the count to the goal."""
    store = make_store(goal=10)
    state = store.set(goal=4)
    assert (state.count, state.goal) == (4, 4)
    assert store.rounds()[0]["goal"] == 4


@pytest.mark.parametrize("kwargs", [
    {"count": -1}, {"count": 11}, {"count": 3, "goal": 2}, {"goal": 0}, {"goal": MAX_GOAL + 1},
    {"count": "3"}, {"count": True}, {"goal": 2.5}, {"title": "x" * 81}, {"title": "a\x00b"}, {"title": 5},
])
def test_invalid_set_changes_nothing(make_store, kwargs):
    """An invalid count, goal or title raises InvalidValue and changes nothing."""
    store = make_store(goal=10)
    store.press(source="api")
    before, rounds = store.state(), store.rounds()
    with pytest.raises(InvalidValue):
        store.set(**kwargs)
    assert store.state() == before
    assert store.rounds() == rounds


@pytest.mark.parametrize("note", ["x" * 101, "bell\x07", 42])
def test_invalid_note_stores_no_press(make_store, note):
    """A bad note raises InvalidValue and stores no press."""
    store = make_store(goal=5)
    with pytest.raises(InvalidValue):
        store.press(source="api", note=note)
    assert store.state().count == 5
    assert store.history() == []


def test_note_is_trimmed_and_kept_with_the_press(make_store):
    """A note is stored trimmed with its press; "" is no note."""
    store = make_store(goal=5)
    store.press(source="api", note="  Acme Corp ")
    store.press(source="api", note="")
    notes = [p["note"] for p in store.history()]
    assert notes == [None, "Acme Corp"]


def test_who_pressed_is_kept_with_the_press(make_store):
    """press(by=...) keeps the name (trimmed) in the history and tells listeners; a physical press too."""
    store = make_store()
    heard = Recorder()
    store.listen(heard)
    store.press(source="api", note="Acme Corp", by="  Ana ")
    store.press(source="gpio", by="Ben")
    store.press(source="api")
    assert [(p["by"], p["note"]) for p in store.history()] == [(None, None), ("Ben", None), ("Ana", "Acme Corp")]
    changes = heard.wait(3)
    assert [c.by for c in changes] == ["Ana", "Ben", None]


@pytest.mark.parametrize("by", ["", "   ", "\u200b", "x" * 41, 5, ["Ana"], "a\u202eb"])
def test_a_bad_name_stores_no_press(make_store, by):
    """A "by" that is blank, too long, not a string or breaks the text rules: InvalidValue, nothing stored."""
    store = make_store()
    with pytest.raises(InvalidValue):
        store.press(source="api", by=by)
    assert store.state().presses == 0 and store.history() == []


def test_undo_reverts_the_latest_press(make_store):
    """Undo puts the count back and marks the press undone; presses counts only presses not undone."""
    store = make_store(goal=5)
    store.press(source="api")
    store.press(source="api")
    state = store.undo()
    assert (state.count, state.presses) == (4, 1)
    assert [p["undone"] for p in store.history()] == [True, False]
    assert store.rounds()[0]["presses"] == 1


def test_undo_with_nothing_to_undo_raises(make_store):
    """Undo on a fresh store, or after every press was undone, raises NothingToUndo."""
    store = make_store(goal=5)
    with pytest.raises(NothingToUndo):
        store.undo()
    store.press(source="api")
    store.undo()
    with pytest.raises(NothingToUndo):
        store.undo()
    assert store.state().count == 5


def test_undo_stops_at_a_set_of_the_count_or_goal(make_store):
    """Undo does not reach back past a set that changed the count or the goal."""
    for change in ({"count": 3}, {"goal": 9}):
        store = make_store(goal=5)
        store.press(source="api")
        store.set(**change)
        with pytest.raises(NothingToUndo):
            store.undo()


def test_undo_reaches_past_a_set_of_the_title_alone(make_store):
    """Renaming (or a set that changes nothing) keeps the latest press undoable."""
    store = make_store(goal=5)
    store.press(source="api")
    store.set(title="Q3")
    store.set(count=4)
    assert store.undo().count == 5
    assert store.state().title == "Q3"


def test_undo_stops_at_a_new_round(make_store):
    """Undo does not reach back past a new round."""
    store = make_store(goal=5)
    store.press(source="api")
    store.new_round()
    with pytest.raises(NothingToUndo):
        store.undo()


def test_undo_of_the_press_that_reached_zero_reopens_its_round(make_store):
    """Undoing the press that ended a round reopens it, not reached, one press fewer."""
    store = make_store(goal=2)
    store.press(source="api")
    store.press(source="api")
    state = store.undo()
    assert state.count == 1
    (current,) = store.rounds()
    assert current["ended"] is None and current["reached"] is False and current["presses"] == 1


def test_undo_of_a_wrap_removes_the_round_it_started(make_store):
    """Undoing a wrap removes the round it started; the reached round is the newest again."""
    store = make_store(goal=2)
    for _ in range(3):
        store.press(source="api")
    state = store.undo()
    assert state.count == 0 and state.presses == 2
    (done,) = store.rounds()
    assert done["reached"] is True and done["presses"] == 2


def test_undo_of_presses_in_a_wrapped_round_then_the_wrap(make_store):
    """Undo walks back through the new round's presses, then the wrap, in order."""
    store = make_store(goal=2)
    for _ in range(4):
        store.press(source="api")
    assert store.undo().count == 2
    assert store.rounds()[0]["presses"] == 0
    assert store.undo().count == 0
    assert len(store.rounds()) == 1
    assert store.undo().count == 1
    assert store.rounds()[0]["ended"] is None


def test_new_round_starts_at_goal(make_store):
    """new_round sets count = goal, ends the open round not reached and starts the next."""
    store = make_store(goal=5)
    store.press(source="api")
    state = store.new_round()
    assert state.count == 5 and state.presses == 1
    new, old = store.rounds()
    assert old["reached"] is False and old["presses"] == 1 and old["ended"] is not None
    assert new["ended"] is None and new["presses"] == 0


def test_new_round_since_is_done_once(make_store):
    """new_round(since) starts a round once: not again while the newest round started at or after since."""
    store = make_store(goal=5)
    store.press(source="api")
    an_hour_ago = (now() - datetime.timedelta(hours=1)).astimezone(datetime.timezone(datetime.timedelta(hours=2)))
    assert store.new_round(since=an_hour_ago.isoformat()) is None
    assert store.state().count == 4
    since = after_a_millisecond()
    assert store.new_round(since=since).count == 5
    assert store.new_round(since=since) is None
    assert len(store.rounds()) == 2


def test_a_round_after_until_does_not_hold_the_period(make_store):
    """new_round(since, until): a newest round started after ``until`` (a caller whose clock was set back since the
    round was stamped sees it so) holds no period: the period's round starts, stamped by the clock as it is now.
    Without ``until`` that round holds the period (a restart with the clock behind keeps the count)."""
    store = make_store(goal=5)
    store.press(source="api")
    stamped = parse(store.rounds()[0]["started"])
    since = (stamped - datetime.timedelta(days=3)).isoformat()
    until = (stamped - datetime.timedelta(days=2)).isoformat()  # the caller's clock is days behind the stamp
    assert store.new_round(since=since) is None
    state = store.new_round(since=since, until=until)
    assert state is not None and state.count == 5
    newest, ahead = store.rounds()
    assert ahead["presses"] == 1
    assert now() - datetime.timedelta(minutes=1) < parse(newest["started"]) <= now()
    later = (now() + datetime.timedelta(minutes=5)).isoformat()
    assert store.new_round(since=since, until=later) is None  # and once only


def test_a_round_started_at_until_holds_the_period(make_store):
    """A newest round started at ``until`` exactly (another server's clock a little ahead) holds: no second round."""
    store = make_store(goal=5)
    store.new_round()
    started = store.rounds()[0]["started"]
    assert store.new_round(since=started, until=started) is None
    assert len(store.rounds()) == 2


def test_new_round_since_must_have_an_offset(make_store):
    """A since or until without a UTC offset, or not a time, raises InvalidValue and changes nothing."""
    store = make_store(goal=5)
    store.press(source="api")
    for bad in ("2024-01-01T00:00:00", "yesterday"):
        with pytest.raises(InvalidValue, match="since"):
            store.new_round(since=bad)
        with pytest.raises(InvalidValue, match="until"):
            store.new_round(since="2024-01-01T00:00:00+00:00", until=bad)
    assert store.state().count == 4 and len(store.rounds()) == 1


def test_concurrent_new_rounds_start_one(make_store):
    """Several callers of new_round(since) at once start exactly one round."""
    store = make_store(goal=5)
    store.press(source="api")
    since = after_a_millisecond()
    results = []
    threads = [threading.Thread(target=lambda: results.append(store.new_round(since=since))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r is not None for r in results) == 1
    assert len(store.rounds()) == 2


def test_history_pages_newest_first(make_store):
    """history(limit, before) gives presses newest first, only ids below before, with every field."""
    store = make_store(goal=100)
    for i in range(7):
        store.press(source="api", note=f"n{i}")
    first = store.history(limit=3)
    assert [p["note"] for p in first] == ["n6", "n5", "n4"]
    ids = [p["id"] for p in first]
    assert ids == sorted(ids, reverse=True) and all(isinstance(i, int) for i in ids)
    second = store.history(limit=3, before=ids[-1])
    assert [p["note"] for p in second] == ["n3", "n2", "n1"]
    rest = store.history(limit=50, before=second[-1]["id"])
    assert [p["note"] for p in rest] == ["n0"]
    p = rest[0]
    assert set(p) == {"id", "at", "source", "count_before", "count_after", "undone", "note", "by", "device"}
    assert (p["source"], p["count_before"], p["count_after"], p["undone"]) == ("api", 100, 99, False)
    parse(p["at"])
    assert store.history(before=1) == []


@pytest.mark.parametrize("limit,before", [(0, None), (1001, None), ("5", None), (5, 0), (5, -3), (5, "9")])
def test_history_bad_page_raises(make_store, limit, before):
    """A limit outside 1..1000 or a before that is not a positive id raises InvalidValue."""
    store = make_store(goal=5)
    with pytest.raises(InvalidValue):
        store.history(limit=limit, before=before)


def test_listeners_hear_every_change_in_order(make_store):
    """listen() callbacks get each committed change once, in commit order, with its state and details."""
    store = make_store(goal=3)
    heard = Recorder()
    store.listen(heard)
    states = [
        store.press(source="api", note="first"),
        store.press(source="mqtt"),
        store.undo(),
        store.set(count=2, title="T"),
        store.new_round(),
    ]
    changes = heard.wait(5)
    assert [c.event for c in changes] == ["press", "press", "undo", "set", "round"]
    assert [c.state for c in changes] == states
    assert (changes[0].note, changes[0].source) == ("first", "api")
    assert changes[1].source == "mqtt" and changes[1].note is None
    assert all(c.local for c in changes)
    serials = [c.state.serial for c in changes]
    assert serials == sorted(serials) and len(set(serials)) == 5
    for c in changes:
        parse(c.at)


def test_concurrent_presses_lose_nothing(make_store):
    """Presses from several threads at once all count, and listeners hear every count once."""
    store = make_store(goal=1000)
    heard = Recorder()
    store.listen(heard)

    def presses():
        for _ in range(25):
            store.press(source="api")

    threads = [threading.Thread(target=presses) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.state().count == 900 and store.state().presses == 100
    counts = [c.state.count for c in heard.wait(100)]
    assert counts == list(range(999, 899, -1))


def test_health_says_kind_and_ok(make_store, request):
    """health() names the kind of store and says it works."""
    store = make_store()
    health = store.health()
    assert health["kind"] == request.node.callspec.params["make_store"] and health["ok"] is True


def names(board):
    return [(leader["by"], leader["presses"]) for leader in board["leaders"]]


def test_leaderboard_orders_groups_and_forgets_undone_presses(make_store):
    """Most presses first; "ana" and "Ana" are one (shown as last written); an undone press does not count;
    presses without a name are unattributed; between equals, whoever got there first."""
    store = make_store(goal=50)
    for by in ("Ana", "Ben", "ana", "Ben", None, "Cleo", "Dan", "Dan", "Cleo"):
        store.press(source="api", by=by)
    store.press(source="api", by="Eve")
    store.undo()  # Eve's only press
    board = store.leaderboard("round")
    # Ana and Ben reached 2 before Dan and Cleo; Ana's second came before Ben's second.
    assert names(board) == [("ana", 2), ("Ben", 2), ("Dan", 2), ("Cleo", 2)]
    assert board["unattributed"] == 1 and board["period"] == "round"
    assert parse(board["since"]) <= now()
    assert all(parse(leader["last"]) <= now() for leader in board["leaders"])
    store.undo()  # Cleo's second: she falls behind, her "last" back to her first
    board = store.leaderboard("round")
    assert names(board) == [("ana", 2), ("Ben", 2), ("Dan", 2), ("Cleo", 1)]
    assert store.leaderboard("all") == dict(board, period="all", since=None)


def test_leaderboard_periods_and_a_round_ended_by_hand(make_store):
    """A new round (here a set of the count by hand) starts an empty round leaderboard; month and all keep counting."""
    store = make_store(goal=10)
    store.press(source="api", by="Ana")
    store.press(source="api", by="Ana")
    store.set(count=10)
    assert store.leaderboard("round")["leaders"] == [] and store.leaderboard("round")["unattributed"] == 0
    store.press(source="api", by="Ben")
    assert names(store.leaderboard("round")) == [("Ben", 1)]
    month_start = now().astimezone().replace(day=1, hour=0, minute=0, second=0, microsecond=0).isoformat()
    month = store.leaderboard("month", since=month_start)
    assert names(month) == [("Ana", 2), ("Ben", 1)] and month["since"] == month_start
    assert names(store.leaderboard("all")) == [("Ana", 2), ("Ben", 1)]
    with pytest.raises(InvalidValue):
        store.leaderboard("week")


def test_a_wrap_counts_in_no_rounds_leaderboard(make_store):
    """The press at 0 that starts the next round counts in none (as in rounds()): not on that round's board."""
    store = make_store(goal=2)
    store.press(source="api", by="Ana")
    store.press(source="api", by="Ana")  # the goal: 0
    store.press(source="api", by="Ben")  # the wrap: a new round at 2
    assert store.leaderboard("round")["leaders"] == [] and store.rounds()[0]["presses"] == 0
    assert names(store.leaderboard("all")) == [("Ana", 2), ("Ben", 1)]


def test_the_state_carries_the_rounds_top_3(make_store):
    """Every committed state has the current round's top 3 (who, presses), as leaderboard("round") orders them;
    an undo updates it, a new round empties it; listeners hear it with each change."""
    store = make_store(goal=20)
    heard = Recorder()
    store.listen(heard)
    for by in ("Ana", "Ben", "Cleo", "Ben", "Dan", None, "Dan"):
        store.press(source="api", by=by)
    assert store.state().leaders == (("Ben", 2), ("Dan", 2), ("Ana", 1))
    assert heard.wait(7)[-1].state.leaders == (("Ben", 2), ("Dan", 2), ("Ana", 1))
    assert store.undo().leaders == (("Ben", 2), ("Ana", 1), ("Cleo", 1))
    assert store.new_round().leaders == ()


# Devices (store.py's add_device, devices, remove_device, device_by_secret, press(device=...)).

def test_devices_are_added_listed_found_by_hash_and_removed(make_store):
    store = make_store()
    added = store.add_device(" Lobby button ", "button", "Sales", "h1")
    assert (added["name"], added["kind"], added["by"], added["presses"], added["last_seen"]) == \
        ("Lobby button", "button", "Sales", 0, None)
    parse(added["created"])
    store.add_device("CRM", "pipedrive", None, "h2")
    with pytest.raises(DeviceExists):
        store.add_device("LOBBY BUTTON", "button", None, "h3")  # names compare case-insensitively
    for name, kind, by in (("", "button", None), ("x" * 41, "button", None), ("a", "lamp", None),
                           ("a", "button", "\u200b"), (7, "button", None)):
        with pytest.raises(InvalidValue):
            store.add_device(name, kind, by, "h4")
    assert [d["name"] for d in store.devices()] == ["Lobby button", "CRM"]
    assert set(store.devices()[0]) == {"name", "kind", "by", "created", "last_seen", "presses"}
    assert store.device_by_secret("h1") == {"name": "Lobby button", "kind": "button", "by": "Sales", "hash": "h1"}
    assert store.device_by_secret("h4") is None
    store.remove_device("lobby BUTTON")
    assert store.device_by_secret("h1") is None and [d["name"] for d in store.devices()] == ["CRM"]
    with pytest.raises(UnknownDevice):
        store.remove_device("Lobby button")


def test_a_device_press_names_its_device_everywhere(make_store):
    store = make_store()
    heard = Recorder()
    store.listen(heard)
    store.add_device("Lobby", "button", None, "h")
    state = store.press(source="device", note="hi", by="Ana", device="Lobby")
    assert state.count == 19
    change = heard.wait(1)[-1]
    assert (change.source, change.device, change.by, change.note) == ("device", "Lobby", "Ana", "hi")
    row = store.history()[0]
    assert (row["source"], row["device"], row["by"]) == ("device", "Lobby", "Ana")
    device = store.devices()[0]
    assert device["presses"] == 1 and parse(device["last_seen"])
    store.press(source="api")
    assert store.history()[0]["device"] is None
    with pytest.raises(UnknownDevice):
        store.press(source="device", device="Nope")
    assert store.state().presses == 2


def test_a_device_press_id_counts_once(make_store):
    store = make_store()
    store.add_device("A", "button", None, "ha")
    store.add_device("B", "button", None, "hb")
    store.press(source="device", device="A", idem="k1")
    with pytest.raises(Duplicate) as raised:
        store.press(source="device", device="a", idem="k1")
    assert raised.value.state.count == 19 and store.state().presses == 1
    store.press(source="device", device="B", idem="k1")  # another device's id is its own
    store.press(source="device", device="A", idem="k2")
    assert store.state().presses == 3 and store.devices()[0]["presses"] == 2
    store.remove_device("A")
    store.add_device("A", "button", None, "ha2")  # a new device of the same name starts afresh
    store.press(source="device", device="A", idem="k1")
    assert store.state().presses == 4
    for bad in ("", "x" * 101, 5, "a\nb"):
        with pytest.raises(InvalidValue):
            store.press(source="device", device="A", idem=bad)


def test_devices_are_listed_in_the_order_they_were_added(make_store):
    """Many added within one millisecond keep their order (the list's order is not the clock's)."""
    store = make_store()
    names = ["D%02d" % i for i in range(30)]
    for name in names:
        store.add_device(name, "button", None, "h" + name)
    assert [d["name"] for d in store.devices()] == names


def test_a_device_presses_at_most_10_a_minute(make_store):
    store = make_store(goal=100)
    store.add_device("A", "button", None, "ha")
    store.add_device("B", "button", None, "hb")
    for _ in range(10):
        store.press(source="device", device="A")
    with pytest.raises(TooFast) as raised:
        store.press(source="device", device="A", idem="new")
    assert 1 <= raised.value.retry_after <= 60
    store.press(source="device", device="B")
    assert store.state().presses == 11
    store.press(source="device", device="B", idem="x")
    store.press(source="api")  # the API has no such limit


def test_a_device_press_keeps_when_it_was_made(make_store):
    store = make_store()
    store.add_device("A", "button", None, "ha")
    an_hour_ago = now() - datetime.timedelta(hours=1)
    store.press(source="device", device="A", at=an_hour_ago.isoformat())
    assert abs(parse(store.history()[0]["at"]) - an_hour_ago) < datetime.timedelta(milliseconds=2)
    store.press(source="device", device="A", at=int(an_hour_ago.timestamp()))
    assert abs(parse(store.history()[0]["at"]) - an_hour_ago) < datetime.timedelta(seconds=1)
    store.press(source="device", device="A", at=str(int(an_hour_ago.timestamp())))
    for bad in ((now() - datetime.timedelta(hours=25)).isoformat(), (now() + datetime.timedelta(hours=1)).isoformat(),
                "yesterday", "2026-12-01T10:00:00", True, [1]):
        with pytest.raises(InvalidValue):
            store.press(source="device", device="A", at=bad)
    assert store.state().count == 17
