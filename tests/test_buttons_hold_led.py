"""More buttons (--buttons), hold to undo (--hold), rpi-lgpio's own error, a dead event thread,
and the LED (--led), against the fake GPIO; the LED's patterns are read from its output log."""
import logging
import threading
import time
from contextlib import contextmanager

import pytest

from Button import ButtonError, ButtonSpec, GpioButton, parse_buttons
from tests.fake_gpio import FakeGPIO, LgpioError
from thebutton.led import Led
from thebutton.store import Change, State


class Actions:
    """Records on_press calls as ("press", by) or ("undo", None) and lets a test wait for the n-th."""

    def __init__(self):
        self.calls = []
        self.cond = threading.Condition()

    def __call__(self, undo=False, by=None):
        with self.cond:
            self.calls.append(("undo", None) if undo else ("press", by))
            self.cond.notify_all()

    def wait_for(self, n, timeout=2.0):
        with self.cond:
            return self.cond.wait_for(lambda: len(self.calls) >= n, timeout)


@contextmanager
def running(button, on_press):
    button.open()
    button.start(on_press)
    try:
        yield button
    finally:
        button.stop()


class ManualClock:
    def __init__(self, now=100.0):
        self.now = now

    def __call__(self):
        return self.now


# --- --buttons ------------------------------------------------------------------------

def test_parse_buttons_reads_undo_and_names():
    """13:undo is an undo button, 15:Ana a person's button; spaces and case of "undo" do not matter."""
    specs = parse_buttons(" 13:UNDO , 15:Ana,16:Sales team ", main_pin=11)
    assert [(s.pin, s.action) for s in specs] == [(13, "undo"), (15, "Ana"), (16, "Sales team")]
    assert parse_buttons("", main_pin=11) == []


@pytest.mark.parametrize("text, message", [
    ("13:undo,13:Ana", "pin 13 is used twice"),
    ("11:undo", "pin 11 is used twice (also by the main button (--pin))"),
    ("12:Ana", "pin 12 is used twice (also by the LED (--led))"),
    ("13", "must be PIN:undo or PIN:NAME"),
    ("x:Ana", "'x' is not a pin number"),
    ("13:" + "A" * 41, "at most 40"),
    ("13:Ana\u202e", "--buttons=13:Ana"),
])
def test_parse_buttons_refuses_what_cannot_work(text, message):
    """A pin used twice, the main or LED pin again, a missing action or a bad name: one-line ButtonError."""
    with pytest.raises(ButtonError, match=None) as caught:
        parse_buttons(text, main_pin=11, led_pin=12)
    assert message in str(caught.value) and "\n" not in str(caught.value)


@pytest.fixture
def gpio():
    return FakeGPIO()


def test_each_extra_button_does_its_action(gpio):
    """The main button presses, an undo button undoes, a person's button presses with their name."""
    actions = Actions()
    specs = [ButtonSpec(13, "undo"), ButtonSpec(15, "Ana")]
    with running(GpioButton(gpio=gpio, buttons=specs), actions) as b:
        for pin, n in ((11, 1), (15, 2), (13, 3)):
            gpio.drive_low(pin)
            assert actions.wait_for(n)
            gpio.drive_high(pin)
            assert b.wait_settled(2)
    assert actions.calls == [("press", None), ("press", "Ana"), ("undo", None)]
    assert {c[1] for c in gpio.calls if c[0] == "setup"} == {11, 13, 15}


def test_extra_buttons_bounce_and_hold_like_the_main_one(gpio):
    """Bounce on a second pin and holding it count once, while the main pin still counts on its own."""
    actions = Actions()
    with running(GpioButton(gpio=gpio, buttons=[ButtonSpec(15, "Ana")]), actions) as b:
        for _ in range(5):
            gpio.drive_low(15)
            gpio.drive_high(15)
        gpio.drive_low(15)
        assert actions.wait_for(1)
        gpio.drive_low(11)  # the main button while Ana's is held
        assert actions.wait_for(2)
        for _ in range(5):
            gpio.drive_high(15)
            gpio.drive_low(15)
        gpio.drive_high(15)
        gpio.drive_high(11)
        assert b.wait_settled(2)
        assert not actions.wait_for(3, timeout=0.2)
    assert sorted(actions.calls, key=str) == [("press", "Ana"), ("press", None)]


def test_extra_buttons_are_polled_too_where_edges_fail():
    """Where edge detection fails, every pin is polled, each with its action."""
    gpio = FakeGPIO(edge_detection=False)
    actions = Actions()
    with running(GpioButton(gpio=gpio, buttons=[ButtonSpec(13, "undo")]), actions) as b:
        assert b.mode == "poll"
        gpio.drive_low(13)
        assert actions.wait_for(1)
    assert actions.calls == [("undo", None)]


@pytest.mark.parametrize("polled", [False, True])
def test_a_tap_while_the_last_press_is_being_stored_still_counts(polled):
    """The store may take its time (an SD card's commit, a Redis that hangs): the button reads on,
    so a tap made meanwhile is a press too, stored after the first one, in order."""
    gpio = FakeGPIO(edge_detection=not polled)
    storing, release = threading.Event(), threading.Event()
    stored = []

    def slow_store(**kw):
        storing.set()
        release.wait(5)  # the first press's commit hangs until Ana's tap is over
        stored.append(kw)

    with running(GpioButton(gpio=gpio, buttons=[ButtonSpec(13, "Ana")]), slow_store) as b:
        gpio.drive_low(11)
        assert storing.wait(2)
        gpio.drive_high(11)
        gpio.drive_low(13)  # Ana's tap, down and up while the first press is still being stored
        assert gpio.wait_for_reads(4)  # the button thread reads the pins meanwhile
        gpio.drive_high(13)
        assert gpio.wait_for_reads(4)
        release.set()
        assert b.wait_settled(3)
    assert stored == [{}, {"by": "Ana"}]


@pytest.mark.parametrize("polled", [False, True])
def test_a_press_that_meets_a_gpio_fault_counts_once_the_pin_is_set_up_again(polled):
    """The read of a press fails (a GPIO fault): the pin is set up again, and the press, still held,
    counts then; the pin does not start over from the level it finds."""
    gpio = FakeGPIO(edge_detection=not polled)
    actions = Actions()
    with running(GpioButton(gpio=gpio, retry_delays=(0.05,)), actions) as b:
        gpio.fail_next("input", RuntimeError("gpio chip gone"))
        gpio.drive_low(11)
        assert actions.wait_for(1, timeout=3)
        assert b.wait_settled(2) and b.health()["ok"]
    assert actions.calls == [("press", None)]


def test_a_hold_that_meets_a_gpio_fault_still_counts_when_let_go(gpio):
    """With --hold, the time the button went down survives a fault: let go soon after, it is a press."""
    actions = Actions()
    with running(GpioButton(gpio=gpio, hold=2.0, retry_delays=(0.05,)), actions) as b:
        assert b.health()["hold"] == 2.0
        gpio.drive_low(11)
        assert gpio.wait_for_reads(1)  # seen down: its hold has begun
        gpio.fail_next("input", RuntimeError("gpio chip gone"))
        gpio.drive_high(11)  # the read of the release fails; the pin is set up again
        assert actions.wait_for(1, timeout=3)
    assert actions.calls == [("press", None)]


@pytest.mark.parametrize("polled", [False, True])
def test_an_extra_button_that_cannot_be_set_up_leaves_the_others_counting(polled, caplog):
    """Pin 13 is busy: the main button counts all the same, health names pin 13, and once it is
    free it is set up again and Ana's button counts too."""
    gpio = FakeGPIO(edge_detection=not polled)
    busy = threading.Event()
    busy.set()
    real_setup = gpio.setup

    def setup(channel, *args, **kwargs):
        if channel == 13 and busy.is_set():
            raise LgpioError("GPIO busy")
        return real_setup(channel, *args, **kwargs)

    gpio.setup = setup
    actions = Actions()
    with caplog.at_level(logging.INFO, logger="button"):
        with running(GpioButton(gpio=gpio, buttons=[ButtonSpec(13, "Ana")], retry_delays=(0.05,)), actions) as b:
            health = b.health()
            assert health["ok"] is False and "pin 13" in health["error"] and "GPIO busy" in health["error"]
            gpio.drive_low(11)
            assert actions.wait_for(1)
            busy.clear()
            deadline = time.monotonic() + 3  # tried again every 0.05 s here (no event tells of it)
            while not b.health()["ok"] and time.monotonic() < deadline:
                b.wait_settled(0.05)
            assert b.health()["ok"] is True and b.health()["error"] is None
            gpio.drive_low(13)
            assert actions.wait_for(2)
    assert actions.calls == [("press", None), ("press", "Ana")]
    assert caplog.text.count("cannot use GPIO pin 13") == 1 and "GPIO pin 13 works again" in caplog.text


# --- --hold=undo ----------------------------------------------------------------------

def test_hold_counts_a_short_press_when_let_go(gpio):
    """With hold, going down counts nothing yet; letting go within the hold time is the press."""
    actions = Actions()
    with running(GpioButton(gpio=gpio, hold=0.5), actions):
        gpio.drive_low(11)
        assert not actions.wait_for(1, timeout=0.2)
        gpio.drive_high(11)
        assert actions.wait_for(1)
    assert actions.calls == [("press", None)]


def test_hold_long_enough_undoes_and_counts_no_press(gpio):
    """Held for the hold time, the button undoes at once (while still held) and letting go counts nothing."""
    actions = Actions()
    with running(GpioButton(gpio=gpio, hold=0.2), actions) as b:
        gpio.drive_low(11)
        assert actions.wait_for(1)  # the hold fires without the release
        assert actions.calls == [("undo", None)]
        gpio.drive_high(11)
        assert b.wait_settled(2)
        assert not actions.wait_for(2, timeout=0.2)
    assert actions.calls == [("undo", None)]


def test_hold_is_two_seconds_to_the_reading_with_time_moved_by_hand():
    """Polled with a hand-moved clock: let go at 1.99 s is a press, held to 2.0 s is an undo."""
    gpio = FakeGPIO(edge_detection=False)
    clock = ManualClock()
    actions = Actions()
    with running(GpioButton(gpio=gpio, clock=clock, hold=2.0), actions):
        def level(low, at):
            clock.now = at
            (gpio.drive_low if low else gpio.drive_high)(11)
            assert gpio.wait_for_reads(2)

        level(True, 100.0)
        level(True, 101.99)
        assert actions.calls == []
        level(False, 101.99)
        assert actions.calls == [("press", None)]
        level(True, 110.0)
        level(True, 111.999)
        assert actions.calls == [("press", None)]
        level(True, 112.0)
        assert actions.calls == [("press", None), ("undo", None)]
        level(False, 113.0)
        assert actions.calls == [("press", None), ("undo", None)]


def test_hold_applies_to_a_persons_button_and_not_to_an_undo_button(gpio):
    """A person's button follows the hold rule; an undo button undoes as it goes down."""
    actions = Actions()
    with running(GpioButton(gpio=gpio, hold=0.5, buttons=[ButtonSpec(13, "undo"), ButtonSpec(15, "Ana")]),
                 actions):
        gpio.drive_low(13)
        assert actions.wait_for(1)
        gpio.drive_high(13)
        gpio.drive_low(15)
        assert not actions.wait_for(2, timeout=0.2)
        gpio.drive_high(15)
        assert actions.wait_for(2)
    assert actions.calls == [("undo", None), ("press", "Ana")]


# --- rpi-lgpio's error, and an event thread that dies ---------------------------------------

def test_fake_lgpio_raises_its_own_error_class():
    """The lgpio flavour raises lgpio.error, an Exception that is not a RuntimeError, as rpi-lgpio lets through."""
    gpio = FakeGPIO(edge_detection=False, flavour="lgpio")
    gpio.setmode(gpio.BOARD)
    gpio.setup(11, gpio.IN, pull_up_down=gpio.PUD_UP)
    with pytest.raises(gpio.lgpio.error) as caught:
        gpio.add_event_detect(11, gpio.BOTH, callback=lambda channel: None)
    assert not isinstance(caught.value, RuntimeError) and gpio.lgpio.error is LgpioError


def test_lgpio_error_on_edge_detection_falls_back_to_polling(caplog):
    """lgpio.error from add_event_detect is handled like RPi.GPIO's RuntimeError: the pin is polled."""
    gpio = FakeGPIO(edge_detection=False, flavour="lgpio")
    actions = Actions()
    with caplog.at_level(logging.INFO, logger="button"):
        with running(GpioButton(gpio=gpio), actions) as b:
            assert b.mode == "poll" and b.health()["ok"]
            gpio.drive_low(11)
            assert actions.wait_for(1)
    assert "edge detection unavailable (GPIO busy)" in caplog.text


def test_lgpio_error_at_run_time_is_retried(caplog):
    """lgpio.error from a read at run time is a GPIO error: reported, the pin set up again, presses count."""
    gpio = FakeGPIO(flavour="lgpio")
    actions = Actions()
    with running(GpioButton(gpio=gpio, retry_delays=(0.01,)), actions) as b:
        gpio.fail_next("input", LgpioError("GPIO not allocated"))
        with caplog.at_level(logging.INFO, logger="button"):
            gpio.drive_low(11)
            assert b.wait_settled(3)
        assert "GPIO not allocated" in caplog.text and b.health()["ok"]
        gpio.drive_high(11)
        assert b.wait_settled(2)
        gpio.drive_low(11)
        assert actions.wait_for(1)


def test_a_dead_event_thread_is_noticed_and_the_missed_press_counts(gpio, caplog):
    """When the library's event thread dies, the periodic read counts the press and the button polls from then on."""
    actions = Actions()
    with caplog.at_level(logging.INFO, logger="button"):
        with running(GpioButton(gpio=gpio, watch_interval=0.1), actions) as b:
            assert b.mode == "edge"
            gpio.stop_events()
            gpio.drive_low(11)  # no edge is delivered any more
            assert actions.wait_for(1)
            assert b.wait_settled(2)
            assert b.mode == "poll" and b.health()["ok"]
            gpio.drive_high(11)
            assert b.wait_settled(2)
            gpio.drive_low(11)
            assert actions.wait_for(2)
    assert "without its edge event" in caplog.text


def test_the_periodic_read_is_every_few_seconds_at_most():
    """The edge path reads the pins at least every 5 s (2 s by default) even without edges."""
    assert GpioButton(gpio=FakeGPIO())._watch_interval <= 5.0


def test_edges_that_arrive_are_not_mistaken_for_a_dead_thread(gpio, caplog):
    """Quick taps inside the bounce window, with the periodic read running often, keep the edge path."""
    actions = Actions()
    with caplog.at_level(logging.WARNING, logger="button"):
        with running(GpioButton(gpio=gpio, watch_interval=0.01), actions) as b:
            for n in range(1, 6):
                gpio.drive_low(11)
                assert actions.wait_for(n)
                gpio.drive_high(11)  # let go inside the window: seen by the re-read
                assert b.wait_settled(2)
            assert b.mode == "edge"
    assert "without its edge event" not in caplog.text


# --- the LED -----------------------------------------------------------------------------

def change(event, count=5, local=True):
    return Change(event, State(count=count, goal=20, presses=1), local=local)


@contextmanager
def lit(gpio, pin=12, waiting=lambda: False):
    led = Led(pin, gpio, waiting=waiting)
    led.start_thread()
    try:
        assert gpio.wait_for_output(pin, 1)  # set up, off
        yield led
    finally:
        led.stop()


def highs(levels):
    """The (start, length) of each time the LED was on, from its output log."""
    spans, on_at = [], None
    for t, level in levels:
        if level and on_at is None:
            on_at = t
        elif not level and on_at is not None:
            spans.append((on_at, t - on_at))
            on_at = None
    return spans


def test_led_flashes_once_for_a_stored_press(gpio):
    """A press committed here: one flash of about 0.3 s, then off."""
    with lit(gpio) as led:
        led.on_change(change("press"))
        assert gpio.wait_for_output(12, 3)
    spans = highs(gpio.levels_of(12))
    assert len(spans) == 1 and 0.25 <= spans[0][1] <= 0.45, gpio.levels_of(12)
    assert gpio.levels_of(12)[0][1] == 0  # off from the start


def test_led_flashes_twice_for_an_undo(gpio):
    """An undo committed here: two short flashes."""
    with lit(gpio) as led:
        led.on_change(change("undo"))
        assert gpio.wait_for_output(12, 5)
    spans = highs(gpio.levels_of(12))
    assert len(spans) == 2 and all(0.1 <= length <= 0.3 for _, length in spans), gpio.levels_of(12)


def test_led_stays_on_for_ten_seconds_at_the_goal(gpio):
    """The press that reaches the goal lights it for 10 s (the thread is read, not waited for)."""
    with lit(gpio) as led:
        led.on_change(change("press", count=0))
        assert gpio.wait_for_output(12, 2)
        level, until = led.level_at(time.monotonic())
        assert level == 1 and 9.0 <= until - time.monotonic() <= 10.0
        assert not gpio.wait_for_output(12, 3, timeout=0.3)  # still on


def test_led_ignores_other_servers_and_other_events(gpio):
    """A press from another server (through Redis), a set or a round: no flash."""
    with lit(gpio) as led:
        for c in (change("press", local=False), change("set"), change("round"), change("live")):
            led.on_change(c)
        assert not gpio.wait_for_output(12, 2, timeout=0.3)


def test_led_blinks_fast_for_three_seconds_when_a_press_failed(gpio):
    """failed(): about 5 flashes a second, for 3 s."""
    with lit(gpio) as led:
        led.failed()
        assert gpio.wait_for_output(12, 11)  # five flashes: on and off, five times
        level, until = led.level_at(led._since + 2.85)  # still blinking near the end of its 3 s
        assert level == 1 and abs(until - (led._since + 2.9)) < 1e-6
        spans = highs(gpio.levels_of(12))
        assert led.level_at(led._since + 3.05) == (0, None)
    assert all(0.05 <= length <= 0.2 for _, length in spans), gpio.levels_of(12)
    gaps = [b[0] - a[0] for a, b in zip(spans, spans[1:])]
    assert all(0.12 <= gap <= 0.35 for gap in gaps), gpio.levels_of(12)


def test_led_blinks_slowly_while_presses_wait_and_stops_when_stored(gpio):
    """While presses wait on local disk: 1 s on, 1 s off; off once they are stored."""
    with lit(gpio) as led:
        led.set_waiting(True)
        assert gpio.wait_for_output(12, 4, timeout=4)  # off, on, off, on
        spans = highs(gpio.levels_of(12))
        assert 0.85 <= spans[0][1] <= 1.2, gpio.levels_of(12)
        led.set_waiting(False)
        levels = len(gpio.levels_of(12))
        assert gpio.wait_for_output(12, levels + 1)
        assert gpio.levels_of(12)[-1][1] == 0


def test_led_flash_wins_over_waiting_and_waiting_comes_back(gpio):
    """A stored press flashes even while presses wait; the slow blink goes on after it."""
    with lit(gpio) as led:
        led.set_waiting(True)
        led.on_change(change("press"))
        now = time.monotonic()
        assert led.level_at(now)[0] == 1
        waiting_since = led._waiting_since
        assert waiting_since is not None  # the flash did not end the waiting
        assert led.level_at(waiting_since + 2.5)[0] == 1  # after the flash: the blink's own phase
        assert led.level_at(waiting_since + 3.5)[0] == 0


def test_led_is_off_and_released_at_exit(gpio):
    """stop() turns it off and gives the pin back (cleanup of that pin), even mid-pattern."""
    led = Led(12, gpio)
    led.start_thread()
    assert gpio.wait_for_output(12, 1)
    led.on_change(change("press", count=0))
    assert gpio.wait_for_output(12, 2)
    led.stop()
    assert gpio.levels_of(12)[-1][1] == 0
    assert gpio.cleanups == 1 and 12 not in gpio._setup


def test_led_pin_that_fails_is_retried_and_never_raises(gpio, caplog, monkeypatch):
    """A setup failure of the LED pin is logged and retried; the LED works once the pin does."""
    monkeypatch.setattr("thebutton.led.RETRY", 0.05)
    gpio.fail_next("setup", LgpioError("GPIO busy"), times=None)
    with caplog.at_level(logging.ERROR, logger="button.led"):
        led = Led(12, gpio)
        led.start_thread()
        try:
            assert not gpio.wait_for_output(12, 1, timeout=0.2)
            assert led.health()["ok"] is False and "GPIO busy" in led.health()["error"]
            gpio.clear_failures()
            assert gpio.wait_for_output(12, 1)
            led.on_change(change("press"))
            assert gpio.wait_for_output(12, 3)
        finally:
            led.stop()
    assert caplog.text.count("cannot use LED pin 12") == 1  # said once, not at every retry


def test_an_led_pin_that_sets_up_but_cannot_be_driven_waits_between_tries(gpio, caplog, monkeypatch):
    """setup() works, output() fails: the LED's thread waits RETRY between tries (it does not spin),
    says so once, and the light works again once the pin does."""
    monkeypatch.setattr("thebutton.led.RETRY", 0.3)
    setups = []
    third = threading.Event()
    real_setup = gpio.setup

    def counted_setup(*args, **kwargs):
        setups.append(time.monotonic())
        if len(setups) >= 3:
            third.set()
        return real_setup(*args, **kwargs)

    gpio.setup = counted_setup
    gpio.fail_next("output", LgpioError("GPIO not allocated"), times=None)
    with caplog.at_level(logging.INFO, logger="button.led"):
        led = Led(12, gpio)
        led.start_thread()
        try:
            led.on_change(change("press", count=0))  # the goal: on for 10 s, so each try drives it
            assert third.wait(3)  # it does try again, once every RETRY
            assert setups[2] - setups[0] >= 2 * 0.3 * 0.9, setups
            assert led.health()["ok"] is False and "not allocated" in led.health()["error"]
            gpio.clear_failures()
            shown = len(gpio.levels_of(12))
            assert gpio.wait_for_output(12, shown + 2)  # set up once more, then on: the goal's light
            assert gpio.levels_of(12)[-1][1] == 1
            deadline = time.monotonic() + 2  # health is said just after the output (no event for it)
            while not led.health()["ok"] and time.monotonic() < deadline:
                time.sleep(0.01)
            assert led.health()["ok"] is True
        finally:
            led.stop()
    assert caplog.text.count("LED pin 12 failed") == 1 and caplog.text.count("works again") == 1


def test_led_never_delays_the_caller(gpio):
    """on_change and failed return at once even while the pin's output hangs."""
    gate = threading.Event()
    real_output = gpio.output

    def slow_output(pin, level):
        gate.wait(5)
        real_output(pin, level)

    gpio.output = slow_output
    led = Led(12, gpio)
    led.start_thread()
    try:
        t0 = time.perf_counter()
        for _ in range(100):
            led.on_change(change("press"))
            led.failed()
        assert time.perf_counter() - t0 < 0.5
    finally:
        gate.set()
        led.stop()
