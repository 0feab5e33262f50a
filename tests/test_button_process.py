"""The button options in the real server process, with tests/pi's RPi.GPIO (the fake, steered
through a folder): a pin that cannot be set up never takes the page down, more buttons and the
LED end to end, and the start-up errors of --buttons, --hold and --led."""
import os
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.conftest import ROOT, TOKEN
from tests.redis_server import redis_server  # noqa: F401 - the fixture

PI = os.path.join(ROOT, "tests", "pi")


@pytest.fixture
def pi(tmp_path):
    """A folder steering the fake RPi.GPIO of a server process, and the environment that loads it."""
    folder = tmp_path / "gpio"
    folder.mkdir()
    os.mkfifo(folder / "drive")
    env = {"PYTHONPATH": PI, "FAKE_GPIO_DIR": str(folder), "BUTTON_ADMIN_TOKEN": TOKEN}
    return folder, env


class Drive:
    """Moves the server's input pins through the fake's FIFO."""

    def __init__(self, folder):
        self.fifo = open(folder / "drive", "w")  # blocks until the server's fake opens it: it has started

    def __call__(self, how, pin):
        self.fifo.write("%s %d\n" % (how, pin))
        self.fifo.flush()

    def close(self):
        self.fifo.close()


def get(server, path):
    with urllib.request.urlopen(server.url + path, timeout=5) as r:
        return r.status, r.read().decode()


def until(check, timeout=15.0, what="condition"):
    """Poll the real process to a deadline (it offers no event to wait on)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "%s not reached in %ss" % (what, timeout)
        time.sleep(0.05)


def outputs(folder, pin):
    """[(time, level)] of an output pin of the server's fake, and whether cleanup came after."""
    path = folder / "outputs"
    if not path.exists():
        return [], False
    levels, cleaned = [], False
    for line in path.read_text().splitlines():
        t, what, rest = line.split()
        if what == "cleanup":
            cleaned = True
        elif int(what) == pin:
            levels.append((float(t), int(rest)))
    return levels, cleaned


def flashes(levels):
    spans, on_at = [], None
    for t, level in levels:
        if level and on_at is None:
            on_at = t
        elif not level and on_at is not None:
            spans.append(t - on_at)
            on_at = None
    return spans


def test_a_pin_that_cannot_be_set_up_keeps_the_page_up(server_factory, pi):
    """--button=gpio without access to the pin: page, API and admin served, healthz false, button_up 0; then it recovers."""
    folder, env = pi
    (folder / "busy").write_text("")
    server = server_factory("--button=gpio", env=env)
    drive = Drive(folder)
    try:
        assert get(server, "/")[0] == 200 and get(server, "/admin")[0] == 200
        assert server.request("POST", "/api/press")[0] == 200  # the API works meanwhile
        status, health = server.request("GET", "/healthz")
        assert health["ok"] is False and "/dev/gpiomem" in health["button"]["error"]
        assert "the_button_button_up 0.0" in get(server, "/metrics")[1]
        assert "/dev/gpiomem" in server.output() and "served meanwhile" in server.output()
        os.remove(folder / "busy")  # the pin becomes usable (udev gave the group its access)
        until(lambda: server.request("GET", "/healthz")[1]["ok"], what="healthz ok after the pin came back")
        assert "the_button_button_up 1.0" in get(server, "/metrics")[1]
        drive("low", 11)
        until(lambda: server.request("GET", "/api/count")[1]["count"] == 18, what="the press counted")
        assert server.proc.poll() is None
    finally:
        drive.close()


def test_more_buttons_and_the_led_end_to_end(server_factory, pi):
    """A person's button presses with their name, the undo button undoes, the LED flashes for each; off at exit."""
    folder, env = pi
    server = server_factory("--button=gpio", "--buttons=13:undo,15:Ana", "--led=12", env=env)
    drive = Drive(folder)
    try:
        drive("low", 15)
        until(lambda: server.request("GET", "/api/count")[1]["count"] == 19, what="Ana's press")
        drive("high", 15)
        history = server.request("GET", "/api/history")[1]["presses"]
        assert history[0]["by"] == "Ana" and history[0]["source"] == "gpio"
        until(lambda: len(flashes(outputs(folder, 12)[0])) == 1, what="one flash")
        drive("low", 13)
        until(lambda: server.request("GET", "/api/count")[1]["count"] == 20, what="the undo")
        drive("high", 13)
        until(lambda: len(flashes(outputs(folder, 12)[0])) == 3, what="two more flashes")
        spans = flashes(outputs(folder, 12)[0])
        assert 0.25 <= spans[0] <= 0.5 and all(0.1 <= s <= 0.3 for s in spans[1:]), spans
        health = server.request("GET", "/healthz")[1]
        assert health["button"]["led"]["ok"] and health["button"]["buttons"] == {"13": "undo", "15": "Ana"}
    finally:
        drive.close()
    assert server.stop() == 0
    levels, cleaned = outputs(folder, 12)
    assert levels[-1][1] == 0 and cleaned


def test_hold_undoes_in_the_real_process(server_factory, pi):
    """--hold=undo: a short press counts when let go; a 2 s hold undoes it."""
    folder, env = pi
    server = server_factory("--button=gpio", "--hold=undo", env=env)
    drive = Drive(folder)
    try:
        drive("low", 11)
        time.sleep(0.1)  # a person's short press: down for a tenth of a second
        drive("high", 11)
        until(lambda: server.request("GET", "/api/count")[1]["count"] == 19, what="the short press")
        drive("low", 11)
        until(lambda: server.request("GET", "/api/count")[1]["count"] == 20, timeout=5, what="the hold's undo")
        drive("high", 11)
        assert server.request("GET", "/api/history")[1]["presses"][0]["undone"] is True
    finally:
        drive.close()


@pytest.mark.parametrize("args, message", [
    (["--buttons=11:undo"], "--buttons: pin 11 is used twice (also by the main button (--pin))"),
    (["--buttons=13:undo,13:Ana"], "--buttons: pin 13 is used twice"),
    (["--buttons=13:undo", "--led=13"], "pin 13 is used twice (also by the LED (--led))"),
    (["--led=11"], "--led: pin 11 is the main button's (--pin)"),
    (["--led=twelve"], "--led must be a BOARD pin number"),
    (["--hold=long"], "--hold must be one of none, undo"),
    (["--buttons=1:Ana"], "--buttons=1:Ana: pin 1 is a power or ground pin, not a GPIO"),
    (["--led=41"], "--led: pin 41 is not a pin of the 40-pin header"),
    (["--button=gpio", "--pin=6"], "--pin: pin 6 is a power or ground pin"),
    (["--button=none", "--buttons=13:undo"], "--buttons and --hold need GPIO buttons"),
])
def test_bad_button_options_are_one_line_and_exit_2(db_path, args, message):
    """Each mistake in the button options is one line naming it, exit 2, before anything starts."""
    result = subprocess.run([sys.executable, os.path.join(ROOT, "websocketserver.py"), "--db=" + db_path, *args],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not os.path.exists(db_path)


def test_led_without_a_gpio_library_is_an_error(db_path):
    """--led where RPi.GPIO cannot be loaded at all: one line saying so, exit 1."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, os.path.join(ROOT, "websocketserver.py"), "--db=" + db_path,
                             "--port=0", "--button=none", "--led=12"], capture_output=True, text=True, timeout=30, env=env)
    assert result.returncode == 1
    assert "--led needs GPIO: RPi.GPIO is not installed" in result.stderr


def test_led_blinks_slowly_while_presses_wait_for_redis(redis_server, server_factory, pi, tmp_path):  # noqa: F811
    """Redis away: a button press waits on local disk and the LED blinks 1 s on, 1 s off; Redis back: stored, blink ends."""
    folder, env = pi
    server = server_factory("--button=gpio", "--led=12", "--store=" + redis_server.url, env=env)
    drive = Drive(folder)
    try:
        redis_server.kill()
        until(lambda: server.request("GET", "/healthz")[1]["store"]["ok"] is False, what="Redis seen away")
        drive("low", 11)
        until(lambda: server.request("GET", "/healthz")[1]["store"].get("waiting_presses") == 1,
              what="the press waiting in the outbox")
        drive("high", 11)
        until(lambda: len(flashes(outputs(folder, 12)[0])) >= 2, what="two slow blinks")
        levels = outputs(folder, 12)[0]
        spans = flashes(levels)
        assert all(0.8 <= s <= 1.3 for s in spans[:2]), levels
        ons = [t for t, level in levels if level]
        assert 1.7 <= ons[1] - ons[0] <= 2.4, levels  # one blink every 2 s
        redis_server.start()
        until(lambda: server.request("GET", "/api/count")[1].get("count") == 19, what="the press stored")
        until(lambda: server.request("GET", "/healthz")[1]["store"].get("waiting_presses") == 0, what="outbox empty")
        blinks = len(flashes(outputs(folder, 12)[0]))
        time.sleep(2.5)  # a blink period and a bit: no more blinking, nothing to wait for but time
        after = outputs(folder, 12)[0]
        assert len(flashes(after)) <= blinks + 1 and after[-1][1] == 0, after
    finally:
        drive.close()
