"""Button sources: debounce, GPIO against a fake RPi.GPIO (by edges, and polled where edge
detection fails as on kernel 6.6), keyboard, and the auto choice."""
import io
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from contextlib import contextmanager

import pytest
from tornado.testing import AsyncHTTPTestCase

from Button import ButtonError, Debouncer, GpioButton, KeyboardButton, NoButton, make_button
from Repository import Repository
from tests.conftest import build_app
from tests.fake_gpio import FakeGPIO


class Presses:
    """Counts on_press calls and lets a test wait for the n-th one."""

    def __init__(self):
        self.count = 0
        self.cond = threading.Condition()

    def __call__(self):
        with self.cond:
            self.count += 1
            self.cond.notify_all()

    def wait_for(self, n, timeout=2.0):
        with self.cond:
            return self.cond.wait_for(lambda: self.count >= n, timeout)


@contextmanager
def running(button, on_press):
    """Open and start a GpioButton; always stop it (and so GPIO.cleanup()) afterwards."""
    button.open()
    button.start(on_press)
    try:
        yield button
    finally:
        button.stop()


@pytest.fixture
def gpio():
    return FakeGPIO()


@pytest.fixture
def button(gpio):
    b = GpioButton(pin=11, pull="up", gpio=gpio)
    b.open()
    presses = Presses()
    b.start(presses)
    b.presses = presses
    yield b
    b.stop()


# --- the debouncer, with time moved by hand --------------------------------------

def test_debouncer_counts_first_edge_at_once():
    """The first change to pressed is a press, with no wait."""
    d = Debouncer(0.05)
    assert d.sample(True, 10.0) == (True, 10.05)


def test_debouncer_ignores_bounce_within_window():
    """Readings inside the window after a press never make a second press."""
    d = Debouncer(0.05)
    d.sample(True, 0.0)
    for t, level in [(0.001, False), (0.002, True), (0.01, False), (0.03, True)]:
        assert d.sample(level, t) == (False, 0.05)
    assert d.sample(True, 0.05) == (False, None)


def test_debouncer_hold_counts_once():
    """Holding the button for a long time is one press."""
    d = Debouncer(0.05)
    assert d.sample(True, 0.0)[0]
    assert not any(d.sample(True, t / 10)[0] for t in range(1, 100))


def test_debouncer_release_bounce_is_not_a_press():
    """Bounce when the button is let go does not count."""
    d = Debouncer(0.05)
    d.sample(True, 0.0)
    assert d.sample(False, 1.0) == (False, 1.05)
    assert d.sample(True, 1.002) == (False, 1.05)
    assert d.sample(False, 1.05) == (False, None)


def test_debouncer_quick_tap_inside_window_is_seen_on_reread():
    """A release inside the window is picked up by the re-read, so the next press counts."""
    d = Debouncer(0.05)
    d.sample(True, 0.0)
    assert d.sample(False, 0.02) == (False, 0.05)
    assert d.sample(False, 0.05) == (False, 0.10)  # re-read: released, new window
    assert d.sample(True, 0.2) == (True, 0.25)


def test_debouncer_starts_from_the_level_it_is_given():
    """A button held down at start-up is not a press."""
    d = Debouncer(0.05, pressed=True)
    assert d.sample(True, 0.0) == (False, None)


# --- GpioButton against the fake RPi.GPIO ------------------------------------------

def test_gpio_setup_uses_board_numbering_and_pull_up(gpio, button):
    """The pin is set up as an input with the internal pull-up in BOARD numbering."""
    assert gpio.getmode() == gpio.BOARD
    assert ("setup", 11, gpio.IN, gpio.PUD_UP) in gpio.calls


def test_gpio_press_is_one_press(gpio, button):
    """Pulling the pin low is one press."""
    gpio.drive_low(11)
    assert button.presses.wait_for(1)
    assert button.wait_settled(1)
    assert button.presses.count == 1


def test_gpio_bouncing_contact_is_one_press(gpio, button):
    """A burst of edges on press and on release counts once."""
    for _ in range(5):
        gpio.drive_low(11)
        gpio.drive_high(11)
    gpio.drive_low(11)
    assert button.presses.wait_for(1)
    for _ in range(5):
        gpio.drive_high(11)
        gpio.drive_low(11)
    gpio.drive_high(11)
    assert button.wait_settled(2)
    assert not button.presses.wait_for(2, timeout=0.2)


def test_gpio_hold_is_one_press(gpio, button):
    """Holding the button down is one press, however long."""
    gpio.drive_low(11)
    assert button.presses.wait_for(1)
    assert not button.presses.wait_for(2, timeout=0.3)


def test_gpio_separate_presses_each_count(gpio, button):
    """Presses further apart than the bounce window each count."""
    for n in range(1, 4):
        gpio.drive_low(11)
        assert button.presses.wait_for(n)
        gpio.drive_high(11)
        assert button.wait_settled(2)
    assert button.presses.count == 3


def test_gpio_pull_down_press_is_high(gpio):
    """With pull="down" a press drives the pin high."""
    presses = Presses()
    with running(GpioButton(pin=13, pull="down", gpio=gpio), presses):
        gpio.drive_high(13)
        assert presses.wait_for(1)


def test_gpio_stop_calls_cleanup(gpio):
    """Stopping the button releases the pins with GPIO.cleanup()."""
    b = GpioButton(gpio=gpio)
    b.open()
    b.start(lambda: None)
    b.stop()
    assert gpio.cleanups == 1
    assert gpio.getmode() is None
    assert not b.health()["alive"]


def test_gpio_invalid_pin_is_a_button_error(gpio):
    """A pin that is not a GPIO (pin 1 is 3.3 V) is refused with the reason."""
    with pytest.raises(ButtonError, match="pin 1"):
        GpioButton(pin=1, gpio=gpio).open()


def test_gpio_runtime_error_is_reported_and_recovered(gpio, caplog):
    """A GPIO error at run time is logged with the reason, and the pin is set up again."""
    presses = Presses()
    with running(GpioButton(gpio=gpio, retry_delays=(0.01,)), presses) as b:
        gpio.fail_next("input", RuntimeError("edge detection failed"))
        with caplog.at_level(logging.ERROR, logger="button"):
            gpio.drive_low(11)  # the read after this edge fails
            assert b.wait_settled(3)  # settled again once the pin is set up anew
        assert "edge detection failed" in caplog.text
        assert b.health()["ok"] and b.health()["alive"]
        gpio.drive_high(11)
        assert b.wait_settled(2)
        gpio.drive_low(11)
        assert presses.wait_for(1)


def test_gpio_setup_failing_again_on_recovery_is_retried(gpio, caplog):
    """When setting the pin up again fails too, the thread keeps retrying (not waiting on a dead pin) and presses count after."""
    presses = Presses()
    with running(GpioButton(gpio=gpio, retry_delays=(0.01,)), presses) as b:
        gpio.fail_next("input", RuntimeError("gpio chip gone"))
        gpio.fail_next("setup", RuntimeError("pin busy"), times=2)
        with caplog.at_level(logging.INFO, logger="button"):
            gpio.drive_low(11)  # the read after this edge fails, then setup fails twice
            assert b.wait_settled(3)
        assert "pin busy" in caplog.text and "GPIO pin 11 works again" in caplog.text
        assert b.health()["ok"]
        gpio.drive_high(11)
        assert b.wait_settled(2)
        gpio.drive_low(11)
        assert presses.wait_for(1)


def test_gpio_error_shows_in_health_until_recovered(gpio):
    """While the pin cannot be set up again, health() says so with the reason."""
    with running(GpioButton(gpio=gpio, retry_delays=(30.0,)), lambda: None) as b:
        gpio.fail_next("input", RuntimeError("gpio chip gone"))
        gpio.drive_low(11)
        assert not b.wait_settled(0.3)
        health = b.health()
        assert health["ok"] is False and "gpio chip gone" in health["error"]


def test_failing_on_press_does_not_stop_the_button(gpio):
    """If storing a press fails, the next press is still handled."""
    calls = Presses()

    def on_press():
        calls()
        if calls.count == 1:
            raise RuntimeError("disk full")
    with running(GpioButton(gpio=gpio), on_press) as b:
        gpio.drive_low(11)
        assert calls.wait_for(1)
        gpio.drive_high(11)
        assert b.wait_settled(2)
        gpio.drive_low(11)
        assert calls.wait_for(2)


def test_fake_bouncetime_drops_edges_like_rpi_gpio():
    """The fake follows RPi.GPIO: edges within bouncetime of a delivered one are dropped."""
    now = [0.0]
    gpio = FakeGPIO(clock=lambda: now[0])
    gpio.setmode(gpio.BOARD)
    gpio.setup(11, gpio.IN, pull_up_down=gpio.PUD_UP)
    seen = []
    gpio.add_event_detect(11, gpio.FALLING, callback=seen.append, bouncetime=200)
    gpio.drive_low(11)
    gpio.drive_high(11)
    now[0] = 0.1
    gpio.drive_low(11)
    gpio.drive_high(11)
    now[0] = 0.3
    gpio.drive_low(11)
    assert seen == [11, 11]
    with pytest.raises(RuntimeError, match="Conflicting"):
        gpio.wait_for_edge(11, gpio.FALLING, timeout=10)


# --- keyboard, none and the auto choice ----------------------------------------------

def test_keyboard_each_line_is_a_press():
    """Each Enter on standard input is one press."""
    presses = Presses()
    KeyboardButton(io.StringIO("\n\n\n")).start(presses)
    assert presses.wait_for(3)


class Tty(io.StringIO):
    def isatty(self):
        return True


def test_auto_falls_back_to_keyboard_and_says_why(caplog):
    """Without usable GPIO, auto picks the keyboard on a terminal and logs why GPIO was passed over."""
    broken = FakeGPIO()
    broken.fail_next("setmode", RuntimeError("no /dev/gpiomem"))
    with caplog.at_level(logging.INFO, logger="button"):
        b = make_button("auto", gpio=broken, stdin=Tty())
    assert isinstance(b, KeyboardButton)
    assert "no /dev/gpiomem" in caplog.text


def test_auto_without_terminal_is_none():
    """Without GPIO or a terminal, auto picks no button."""
    broken = FakeGPIO()
    broken.fail_next("setmode", RuntimeError("not a Pi"))
    assert isinstance(make_button("auto", gpio=broken, stdin=io.StringIO()), NoButton)


def test_auto_prefers_working_gpio():
    """With GPIO that works, auto picks it."""
    b = make_button("auto", gpio=FakeGPIO(), stdin=Tty())
    assert isinstance(b, GpioButton)
    b.stop()


def test_gpio_required_but_missing_is_an_error():
    """--button=gpio where the GPIO library cannot be loaded at all raises ButtonError with the reason."""
    with pytest.raises(ButtonError, match="RPi.GPIO is not installed"):
        make_button("gpio")  # no RPi.GPIO on this machine


def test_gpio_that_cannot_be_set_up_yet_is_kept_and_retried(caplog):
    """--button=gpio where setup fails (no /dev/gpiomem yet) is no exit: logged, unhealthy, set up again once it works."""
    broken = FakeGPIO()
    broken.fail_next("setup", RuntimeError("No access to /dev/gpiomem"), times=None)
    with caplog.at_level(logging.ERROR, logger="button"):
        b = make_button("gpio", gpio=broken)
    assert isinstance(b, GpioButton)
    assert "No access to /dev/gpiomem" in caplog.text and "served meanwhile" in caplog.text
    b._retry_delays = (0.01,)  # the test's patience, not the 10 s of a real start
    presses = Presses()
    b.start(presses)
    try:
        assert not b.wait_settled(0.1) or not b.health()["ok"]
        health = b.health()
        assert health["ok"] is False and health["alive"] and "/dev/gpiomem" in health["error"]
        broken.clear_failures()
        deadline = time.monotonic() + 3
        while not b.health()["ok"] and time.monotonic() < deadline:
            b.wait_settled(0.05)
        assert b.health()["ok"] and b.mode == "edge"
        broken.drive_low(11)
        assert presses.wait_for(1)
    finally:
        b.stop()


def test_unknown_kind_is_an_error():
    """An unknown --button value is refused."""
    with pytest.raises(ButtonError, match="auto, gpio, keyboard, none"):
        make_button("joystick")


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_dead_button_thread_shows_in_health(gpio):
    """If the button thread dies for any reason, health() says it is not alive and not ok."""
    b = GpioButton(gpio=gpio)
    b.open()
    b.start(lambda: None)
    gpio.fail_next("input", SystemExit("thread killed"))  # not an Exception: nothing catches it
    gpio.drive_low(11)
    b._thread.join(2)
    health = b.health()
    assert health["alive"] is False and health["ok"] is False
    b.stop()


# --- GpioButton where edge detection fails (RPi.GPIO 0.7.1 on kernel 6.6+): polling ---------

class ManualClock:
    """A clock the test moves by hand, for the debouncer of a polling button."""

    def __init__(self, now=100.0):
        self.now = now

    def __call__(self):
        return self.now


@pytest.fixture
def old_gpio():
    return FakeGPIO(edge_detection=False)


@pytest.fixture
def poller(old_gpio):
    b = GpioButton(pin=11, pull="up", gpio=old_gpio)
    b.open()
    presses = Presses()
    b.start(presses)
    b.presses = presses
    yield b
    b.stop()


def test_fake_edge_detection_fails_like_rpi_gpio_0_7_1(old_gpio):
    """The fake with edge_detection=False refuses every add_event_detect, as on kernel 6.6, but input() works."""
    old_gpio.setmode(old_gpio.BOARD)
    old_gpio.setup(11, old_gpio.IN, pull_up_down=old_gpio.PUD_UP)
    for _ in range(2):
        with pytest.raises(RuntimeError, match="Failed to add edge detection"):
            old_gpio.add_event_detect(11, old_gpio.BOTH, callback=lambda channel: None)
    old_gpio.drive_low(11)
    assert old_gpio.input(11) == old_gpio.LOW


def test_poll_used_only_where_edge_detection_fails(gpio, old_gpio):
    """The edge path stays where add_event_detect works; polling is the fallback."""
    edge, poll = GpioButton(gpio=gpio), GpioButton(gpio=old_gpio)
    edge.open()
    poll.open()
    assert (edge.mode, poll.mode) == ("edge", "poll")
    edge.start(lambda: None)
    try:
        reads = gpio.reads
        assert not gpio.wait_for_reads(1, timeout=0.1)  # the edge path does not poll
        assert gpio.reads == reads
    finally:
        edge.stop()
        poll.stop()


def test_poll_press_is_one_press(old_gpio, poller):
    """Pulling the pin low is one press when the pin is polled."""
    old_gpio.drive_low(11)
    assert poller.presses.wait_for(1)
    assert poller.wait_settled(1)
    assert poller.presses.count == 1


def test_poll_bounce_and_hold_count_once_with_time_moved_by_hand(old_gpio):
    """Bounce on press and release within 50 ms, and a long hold, make one press; the next press counts."""
    clock = ManualClock()
    presses = Presses()
    with running(GpioButton(gpio=old_gpio, clock=clock), presses):
        def level(low, at):
            clock.now = at
            (old_gpio.drive_low if low else old_gpio.drive_high)(11)
            assert old_gpio.wait_for_reads(2)  # a whole poll has read this level

        level(True, 100.000)
        assert presses.wait_for(1)
        for i in range(1, 9):  # press bounce: 8 changes over 40 ms
            level(i % 2 == 0, 100.000 + i * 0.005)
        level(True, 100.045)
        level(True, 105.0)  # held for five seconds
        for i, t in enumerate([105.0, 105.01, 105.02, 105.03, 105.049]):  # release bounce
            level(i % 2 == 1, t)
        level(False, 105.2)
        assert presses.count == 1
        level(True, 106.0)
        assert presses.wait_for(2)


def test_poll_bouncing_contact_in_real_time_is_one_press(old_gpio, poller):
    """A real-time burst of edges on press and on release counts once."""
    for _ in range(5):
        old_gpio.drive_low(11)
        old_gpio.drive_high(11)
    old_gpio.drive_low(11)
    assert poller.presses.wait_for(1)
    for _ in range(5):
        old_gpio.drive_high(11)
        old_gpio.drive_low(11)
    old_gpio.drive_high(11)
    assert poller.wait_settled(2)
    assert poller.presses.count == 1


def test_poll_hold_is_one_press(old_gpio, poller):
    """Holding the button down while it is polled is one press, however long."""
    old_gpio.drive_low(11)
    assert poller.presses.wait_for(1)
    assert not poller.presses.wait_for(2, timeout=0.3)


def test_poll_separate_presses_each_count(old_gpio, poller):
    """Polled presses further apart than the bounce window each count."""
    for n in range(1, 4):
        old_gpio.drive_low(11)
        assert poller.presses.wait_for(n)
        old_gpio.drive_high(11)
        assert poller.wait_settled(2)
    assert poller.presses.count == 3


def test_poll_press_is_seen_within_20_ms(old_gpio):
    """A polled press reaches on_press within 20 ms (allowing two scheduling outliers in 20)."""
    seen = threading.Event()
    with running(GpioButton(gpio=old_gpio), seen.set) as b:
        latencies = []
        for _ in range(20):
            seen.clear()
            t0 = time.perf_counter()
            old_gpio.drive_low(11)
            assert seen.wait(2)
            latencies.append(time.perf_counter() - t0)
            old_gpio.drive_high(11)
            assert b.wait_settled(2)
    assert sorted(latencies)[-3] < 0.020, latencies


def test_poll_reads_every_10_ms_or_so_without_spinning(old_gpio, poller):
    """The polling thread reads the pin every 8-16 ms: fast enough for 20 ms, slow enough to cost little."""
    t0 = time.perf_counter()
    assert old_gpio.wait_for_reads(40)
    per_read = (time.perf_counter() - t0) / 40
    assert 0.008 <= per_read <= 0.016, per_read


def test_poll_pull_down_press_is_high(old_gpio):
    """With pull="down" a polled press drives the pin high."""
    presses = Presses()
    with running(GpioButton(pin=13, pull="down", gpio=old_gpio), presses):
        old_gpio.drive_high(13)
        assert presses.wait_for(1)


def test_poll_log_says_polling_and_why(old_gpio, caplog):
    """The log says the pin is read by polling, how often, and why edge detection was not used."""
    with caplog.at_level(logging.INFO, logger="button"):
        b = make_button("gpio", gpio=old_gpio)
    b.stop()
    assert ("reading pin 11 by polling every 12 ms: edge detection unavailable "
            "(Failed to add edge detection)") in caplog.text


def test_edge_log_says_edge_detection(gpio, caplog):
    """The log says the pin is read by edge detection where that works."""
    with caplog.at_level(logging.INFO, logger="button"):
        b = make_button("gpio", gpio=gpio)
    b.stop()
    assert "reading pin 11 by edge detection" in caplog.text
    assert "polling" not in caplog.text


def test_health_says_poll_or_edge(gpio, old_gpio, poller, button):
    """health() names the way the pin is read, and why it is polled."""
    assert button.health()["mode"] == "edge"
    health = poller.health()
    assert health["mode"] == "poll" and health["ok"] is True
    assert health["poll_reason"] == "Failed to add edge detection"


def test_gpio_option_works_with_failing_edge_detection(old_gpio):
    """--button=gpio starts and counts presses where add_event_detect fails."""
    b = make_button("gpio", gpio=old_gpio)
    presses = Presses()
    b.start(presses)
    try:
        old_gpio.drive_low(11)
        assert presses.wait_for(1)
    finally:
        b.stop()


def test_auto_picks_gpio_with_failing_edge_detection(old_gpio):
    """--button=auto still picks GPIO (not the keyboard or none) where add_event_detect fails."""
    b = make_button("auto", gpio=old_gpio, stdin=Tty())
    try:
        assert isinstance(b, GpioButton) and b.mode == "poll"
    finally:
        b.stop()


def test_poll_stop_calls_cleanup(old_gpio):
    """Stopping a polling button ends its thread at once and calls GPIO.cleanup()."""
    b = GpioButton(gpio=old_gpio)
    b.open()
    b.start(lambda: None)
    assert old_gpio.wait_for_reads(2)
    t0 = time.perf_counter()
    b.stop()
    assert time.perf_counter() - t0 < 0.5
    assert old_gpio.cleanups == 1 and old_gpio.getmode() is None
    assert not b.health()["alive"]


def test_first_read_error_is_a_button_error(old_gpio):
    """A GPIO error on the first read in open() is a ButtonError with the reason; auto then passes GPIO over."""
    old_gpio.fail_next("input", RuntimeError("read of pin failed"))
    with pytest.raises(ButtonError, match="read of pin failed"):
        GpioButton(gpio=old_gpio).open()
    old_gpio.fail_next("input", RuntimeError("read of pin failed"))
    assert isinstance(make_button("auto", gpio=old_gpio, stdin=io.StringIO()), NoButton)


def test_poll_gpio_error_is_retried_and_reported(old_gpio, caplog):
    """A GPIO error while polling is logged with the reason, retried with backoff, and polling resumes."""
    presses = Presses()
    with running(GpioButton(gpio=old_gpio, retry_delays=(0.01, 0.02)), presses) as b:
        with caplog.at_level(logging.INFO, logger="button"):
            old_gpio.fail_next("input", RuntimeError("gpio chip gone"), times=3)
            assert old_gpio.wait_for_reads(4)  # reads work again after three failures
            assert b.wait_settled(2)
        assert "GPIO pin 11 failed, retrying: RuntimeError: gpio chip gone" in caplog.text
        assert "GPIO pin 11 works again" in caplog.text
        health = b.health()
        assert health["ok"] and health["alive"] and health["mode"] == "poll"
        old_gpio.drive_low(11)
        assert presses.wait_for(1)


def test_poll_gpio_error_shows_in_health_until_recovered(old_gpio):
    """While a polled pin keeps failing, health() says so with the reason and the thread lives on."""
    with running(GpioButton(gpio=old_gpio, retry_delays=(30.0,)), lambda: None) as b:
        old_gpio.fail_next("input", RuntimeError("gpio chip gone"))
        assert not b.wait_settled(0.3)
        health = b.health()
        assert health["ok"] is False and health["alive"] is True
        assert "gpio chip gone" in health["error"]


class HealthzShowsHowThePinIsRead(AsyncHTTPTestCase):
    """/healthz of the real app, wired to a polling GpioButton and a real SQLite file."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp()
        self.repository = Repository(os.path.join(self.tmp, "counter.db"), goal=3)
        self.button = GpioButton(gpio=FakeGPIO(edge_detection=False))
        self.button.open()
        self.button.start(lambda: None)
        super().setUp()

    def get_app(self):
        return build_app(self.repository, health=self.button.health)

    def tearDown(self):
        super().tearDown()
        self.button.stop()
        self.repository.close()
        shutil.rmtree(self.tmp)

    def test_healthz_says_the_pin_is_polled_and_why(self):
        """/healthz reports the button read by polling, with the reason, and ok."""
        body = json.loads(self.fetch("/healthz").body)
        assert body["button"]["mode"] == "poll"
        assert body["button"]["poll_reason"] == "Failed to add edge detection"
        assert body["button"]["ok"] is True and body["ok"] is True
