"""The wall clock jumps under a running server (NTP on a Pi without a clock): libfaketime moves the real process's clock.

libfaketime (Debian's faketime package) is preloaded into ``python websocketserver.py``;
it reads the offset of the fake clock from a file each time the time is asked, so that the
test can move the wall clock while the server runs. The monotonic clock stays real
(FAKETIME_DONT_FAKE_MONOTONIC), as it does when NTP steps the clock.
"""
import datetime
import glob
import json
import os
import time
import urllib.request

import pytest

from tests.conftest import TOKEN, ServerProcess

UTC = datetime.timezone.utc


def libfaketime():
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1") + glob.glob("/usr/lib/faketime/libfaketime.so.1"))
    assert found, "libfaketime is missing: apt-get install faketime (test.sh does)"
    return found[0]


class FakeClock:
    """The offset file libfaketime reads: ``set(when)`` makes the process's wall clock say ``when`` now."""

    def __init__(self, directory):
        self.path = os.path.join(directory, "faketime")

    def set(self, when):
        offset = (when - datetime.datetime.now(UTC)).total_seconds()
        with open(self.path + ".new", "w") as f:
            f.write("%+.3f\n" % offset)
        os.replace(self.path + ".new", self.path)  # never half a file for the reader

    def env(self):
        return {"LD_PRELOAD": libfaketime(), "FAKETIME_TIMESTAMP_FILE": self.path, "FAKETIME_NO_CACHE": "1",
                "FAKETIME_DONT_FAKE_MONOTONIC": "1", "TZ": "UTC"}


def get(server, path):
    with urllib.request.urlopen(server.url + path, timeout=10) as r:
        return json.loads(r.read())


def wait_for(what, predicate, timeout=30):
    """Poll the server's answers to a deadline: a jump is noticed on its own schedule, not on an event we can see."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, "%s within %s s" % (what, timeout)
        time.sleep(0.2)


def when(text):
    return datetime.datetime.fromisoformat(text).replace(tzinfo=UTC)


def stamp(text):
    return datetime.datetime.fromisoformat(text)


@pytest.fixture
def clock(tmp_path):
    return FakeClock(str(tmp_path))


def test_a_forward_jump_starts_the_new_round_at_once(clock, db_path):
    """Friday 18:00, NTP moves the clock to Monday 09:00: within a minute the Monday round starts, and the
    presses after it count in it (not in Friday's round, to be wiped at the next wake)."""
    clock.set(when("2026-12-04T18:00:00"))  # a Friday
    server = ServerProcess(db_path, "--button=none", "--admin-token=" + TOKEN, "--goal=10", "--round=daily",
                           env=clock.env()).start()
    try:
        for _ in range(3):
            server.request("POST", "/api/press")
        assert get(server, "/api/count")["count"] == 7
        clock.set(when("2026-12-07T09:00:00"))  # Monday morning
        rounds = wait_for("a new round after the jump",
                          lambda: [r for r in get(server, "/api/rounds")["rounds"] if r["started"] >= "2026-12-07"])
        assert stamp(rounds[0]["started"]) >= when("2026-12-07T09:00:00")
        assert get(server, "/api/count")["count"] == 10
        code, state = server.request("POST", "/api/press")
        assert code == 200 and state["count"] == 9
        newest = get(server, "/api/rounds")["rounds"][0]
        assert newest["presses"] == 1 and newest["ended"] is None
        assert stamp(get(server, "/api/history?limit=1")["presses"][0]["at"]) >= when("2026-12-07T09:00:00")
        assert "the clock jumped forward" in server.output()
    finally:
        server.stop()


def test_a_backward_jump_does_not_skip_the_next_boundary(clock, db_path):
    """The clock ran ahead (the 10th), a round began then; NTP sets it back to the 5th, 23:59:55: the rounds and
    presses after are stamped by the corrected clock, and the 6th's midnight still starts its round."""
    clock.set(when("2026-12-10T12:00:00"))
    server = ServerProcess(db_path, "--button=none", "--admin-token=" + TOKEN, "--goal=10", "--round=daily",
                           env=clock.env()).start()
    try:
        server.request("POST", "/api/press")
        assert get(server, "/api/rounds")["rounds"][0]["started"].startswith("2026-12-10")
        clock.set(when("2026-12-05T23:59:55"))
        code, state = server.request("POST", "/api/press")
        assert code == 200
        assert stamp(get(server, "/api/history?limit=1")["presses"][0]["at"]) < when("2026-12-06T00:00:00")
        rounds = wait_for("the round of the 6th",
                          lambda: [r for r in get(server, "/api/rounds")["rounds"] if r["started"].startswith("2026-12-06")])
        newest = get(server, "/api/rounds")["rounds"][0]
        assert newest == rounds[0] and newest["ended"] is None and get(server, "/api/count")["count"] == 10
        assert stamp(newest["started"]) < when("2026-12-06T00:01:00")  # not later than the clock said
        assert "the clock jumped back" in server.output()
    finally:
        server.stop()


def test_a_restart_with_the_clock_behind_keeps_the_count(clock, db_path):
    """A power cut: the Pi comes back with the time it saved before the newest round began, an hour behind. The
    restart keeps the count (that round is this day's), and NTP's correction a moment later starts no round either."""
    args = ("--button=none", "--admin-token=" + TOKEN, "--goal=10", "--round=daily")
    clock.set(when("2026-12-07T09:30:00"))
    server = ServerProcess(db_path, *args, env=clock.env()).start()
    try:
        for _ in range(3):
            server.request("POST", "/api/press")
    finally:
        server.proc.kill()  # the power cut
        server.stop()
    clock.set(when("2026-12-07T08:40:00"))  # the time fake-hwclock saved at 08:40
    server = ServerProcess(db_path, *args, env=clock.env()).start()
    try:
        assert get(server, "/api/count")["count"] == 7
        assert len(get(server, "/api/rounds")["rounds"]) == 1
        clock.set(when("2026-12-07T09:50:00"))  # NTP
        wait_for("the jump noticed", lambda: "the clock jumped forward" in server.output())
        assert get(server, "/api/count")["count"] == 7
        assert len(get(server, "/api/rounds")["rounds"]) == 1
        code, state = server.request("POST", "/api/press")
        assert code == 200 and state["count"] == 6
    finally:
        server.stop()
