"""Sources of presses: a GPIO push button, the keyboard, or nothing.

Each source turns its input into calls of ``on_press()`` from its own thread, one
call per press. It knows nothing of SQLite or Tornado: what a press *means* is the
caller's business.
"""
from __future__ import annotations

import collections
import logging
import sys
import threading
import time
from typing import Any, Callable, Deque, Dict, List, Optional, Sequence, Tuple, Type

from thebutton.store import InvalidValue
from thebutton.validation import check_name

log = logging.getLogger("button")

PULLS = ("up", "down")  # --pull
BUTTON_CHOICES = ("auto", "gpio", "keyboard", "none")  # --button


class ButtonError(Exception):
    """The button source cannot be used; the message says why, in one line."""


class Debouncer:
    """Turns pin readings into presses: a press counts once, however it bounces or is held.

    The first change to "pressed" counts at once (no added latency); after any
    accepted change the pin is ignored for ``window`` seconds, then read again, so
    contact bounce on press and on release never makes a second press.
    """

    def __init__(self, window: float = 0.05, pressed: bool = False) -> None:
        self.window = window
        self.pressed = pressed
        self._locked_until = float("-inf")

    def sample(self, pressed: bool, now: float) -> Tuple[bool, Optional[float]]:
        """Feed one reading taken at ``now``; returns (is a new press, when to read again or None)."""
        if now < self._locked_until:
            return False, self._locked_until
        if pressed == self.pressed:
            return False, None
        self.pressed = pressed
        self._locked_until = now + self.window
        return pressed, self._locked_until


class ButtonSpec:
    """One push button to watch: its BOARD pin and what a press of it does.

    ``action`` is "press" (the main button), "undo", or a name: that button presses with
    "by" = the name (a person's or a team's button).
    """

    __slots__ = ("pin", "action")

    def __init__(self, pin: int, action: str = "press") -> None:
        self.pin = pin
        self.action = action

    def __repr__(self) -> str:
        return f"ButtonSpec({self.pin}, {self.action!r})"


# The header's pins (BOARD numbering, 40-pin header of every Pi since the B+) that are GPIOs;
# the others are 3.3 V, 5 V and ground, which no library can read or drive.
BOARD_GPIO_PINS = frozenset((3, 5, 7, 8, 10, 11, 12, 13, 15, 16, 18, 19, 21, 22, 23, 24, 26, 27, 28, 29,
                             31, 32, 33, 35, 36, 37, 38, 40))


def check_board_pin(pin: int, what: str) -> None:
    """ButtonError in one line when ``pin`` is not a GPIO of the header (a power or ground pin, or none)."""
    if pin not in BOARD_GPIO_PINS:
        kind = "a power or ground pin" if 1 <= pin <= 40 else "not a pin of the 40-pin header"
        raise ButtonError(f"{what}: pin {pin} is {kind}, not a GPIO (BOARD numbering: 3, 5, 7, 8, 10, 11, ...)")


def parse_buttons(text: str, main_pin: int, led_pin: Optional[int] = None) -> List[ButtonSpec]:
    """``--buttons=13:undo,15:Ana``: the extra buttons; ButtonError in one line when it is wrong.

    A pin used twice, the main pin again or the LED's pin is an error; a name follows the
    rules of a press's "by" (1-40 characters, thebutton/validation.py).
    """
    specs: List[ButtonSpec] = []
    used = {main_pin: "the main button (--pin)"}
    if led_pin is not None:
        used[led_pin] = "the LED (--led)"
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        pin_text, sep, action = item.partition(":")
        action = action.strip()
        if not sep or not action:
            raise ButtonError(f"--buttons: {item!r} must be PIN:undo or PIN:NAME, e.g. 13:undo,15:Ana")
        try:
            pin = int(pin_text)
        except ValueError:
            raise ButtonError(f"--buttons: {pin_text.strip()!r} is not a pin number (BOARD numbering, e.g. 13)") from None
        if pin in used:
            raise ButtonError(f"--buttons: pin {pin} is used twice (also by {used[pin]})")
        check_board_pin(pin, f"--buttons={item}")
        used[pin] = f"--buttons={item}"
        if action.lower() == "undo":
            specs.append(ButtonSpec(pin, "undo"))
            continue
        try:
            name = check_name(action, "a button's name")
        except InvalidValue as e:
            raise ButtonError(f"--buttons={item}: {e}") from None
        specs.append(ButtonSpec(pin, name))
    return specs


def _gpio_errors(gpio) -> Tuple[Type[BaseException], ...]:
    """What the GPIO library raises when it cannot do something.

    RPi.GPIO raises RuntimeError (and OSError, ValueError); rpi-lgpio also lets through
    ``lgpio.error``, a plain Exception, from the lgpio calls under it (e.g. "GPIO busy").
    """
    errors: Tuple[Type[BaseException], ...] = (RuntimeError, OSError, ValueError)
    lgpio_error = getattr(getattr(gpio, "lgpio", None), "error", None)
    if isinstance(lgpio_error, type) and issubclass(lgpio_error, BaseException):
        errors += (lgpio_error,)
    return errors


class _Input:
    """A watched pin: its debouncer, and when it went down while a hold may still come."""

    __slots__ = ("pin", "action", "debouncer", "down_at", "changes")

    def __init__(self, spec: ButtonSpec, debouncer: Debouncer) -> None:
        self.pin = spec.pin
        self.action = spec.action
        self.debouncer = debouncer
        self.down_at: Optional[float] = None
        self.changes = 0  # edges seen when this pin's level last changed (edge mode)


class GpioButton:
    """Push buttons on Raspberry Pi pins, read through RPi.GPIO (or rpi-lgpio on a Pi 5).

    Wiring with the default ``pull="up"``: one leg of the button to physical pin 11
    (GPIO17), the other to a ground pin such as physical pin 9; the internal pull-up
    holds the pin HIGH and a press pulls it LOW. With ``pull="down"`` wire the other
    leg to 3.3 V (physical pin 1) instead: a press drives the pin HIGH. ``buttons`` adds
    more buttons wired the same way (an undo button, a person's button).

    The pins are read one of two ways, chosen in ``open()`` and logged. By edge
    detection: the library's own thread only wakes the button thread, which reads the
    pins, debounces and calls ``on_press``; the pins are also read every
    ``watch_interval`` seconds, so that a change the library's thread never announced
    (the thread died) still counts, and then the button polls. By polling, where edge
    detection cannot be set up (RPi.GPIO 0.7.1 on kernel 6.6 or later raises "Failed to
    add edge detection", rpi-lgpio its ``lgpio.error``): the button thread reads the pins
    every ``poll_interval`` seconds (12 ms: a press is seen within 20 ms at a fraction of
    a percent of a core). A pin that cannot be set up, now or later, is logged and set
    up again every few seconds (at most ``retry_delays[-1]``), while ``health()`` says why.

    ``hold`` (seconds, or None): a press counts when the button is let go, and holding it
    that long undoes the latest press instead. ``on_press`` is called from the button
    thread as ``on_press()`` for the main button, ``on_press(by=name)`` for a person's
    button and ``on_press(undo=True)`` for an undo.
    """

    name = "gpio"

    def __init__(
        self,
        pin: int = 11,
        pull: str = "up",
        gpio=None,
        bouncetime: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
        retry_delays: Tuple[float, ...] = (0.5, 1.0, 2.0, 5.0, 10.0),
        poll_interval: float = 0.012,
        buttons: Sequence[ButtonSpec] = (),
        hold: Optional[float] = None,
        watch_interval: float = 2.0,
    ) -> None:
        if pull not in PULLS:
            raise ButtonError(f"pull must be one of {', '.join(PULLS)}, not {pull!r}")
        if gpio is None:
            gpio = import_gpio()
        self.pin = pin
        self.pull = pull
        self._gpio = gpio
        self._errors = _gpio_errors(gpio)
        self._bouncetime = bouncetime
        self._clock = clock
        self._retry_delays = retry_delays
        self._specs = [ButtonSpec(pin, "press")] + list(buttons)
        self._hold = hold
        self._watch_interval = watch_interval
        self._inputs: List[_Input] = []
        self._cond = threading.Condition()
        self._edges = 0
        self._settled = True
        self._stopping = False
        self._error: Optional[str] = None
        self._thread: Optional[threading.Thread] = None
        self._poll_interval = poll_interval
        self.mode: Optional[str] = None  # "edge" or "poll" once open() has set the pins up
        self._mode_reason: Optional[str] = None
        self._polls = 0
        self._settle_waiters = 0
        self._edges_dead = False  # the library's event thread stopped announcing edges: poll for good
        # Presses read but not yet stored: the button thread only reads and times the pins, and
        # the press thread stores (a commit that waits for the SD card, or for a Redis that hangs,
        # never keeps the next press from being seen). Guarded by _cond.
        self._acts: Deque[Tuple[Callable[..., None], Dict[str, Any]]] = collections.deque()
        self._acting = 0  # taken from _acts and not yet done
        self._presser: Optional[threading.Thread] = None
        # Extra buttons (--buttons) whose pin could not be set up, with why: the other buttons
        # count meanwhile, and these are tried again (button thread only).
        self._missing: Dict[int, str] = {}
        self._missing_tries = 0
        self._missing_retry_at = 0.0

    @property
    def pins(self) -> List[int]:
        return [spec.pin for spec in self._specs]

    def _is_pressed(self, pin: int) -> bool:
        level = self._gpio.input(pin)
        return bool(level) == (self.pull == "down")

    def open(self) -> None:
        """Set the pins up and read them once; ButtonError with the reason if GPIO refuses.

        Edge detection is tried first; where the library cannot watch a pin, the button
        thread polls the pins instead.
        """
        try:
            missing = self._setup()
            specs = [spec for spec in self._specs if spec.pin not in missing]
            mode, reason = ("poll", self._mode_reason) if self._edges_dead else self._add_edge_detection(specs)
            # Set up again after a fault, a pin keeps what it knew (its debounced state, when it
            # went down): a press made while the pin failed counts at the next read, and a hold
            # goes on. At the first start the pins begin as they are.
            kept = {inp.pin: inp for inp in self._inputs}
            inputs = [kept.get(spec.pin) or self._new_input(spec) for spec in specs]
        except ButtonError:
            raise
        except Exception as e:  # RuntimeError, ValueError, OSError, lgpio.error...
            raise ButtonError(f"cannot use GPIO pin {self.pin}: {e}") from e
        with self._cond:
            self._inputs = inputs
        self._say_mode(mode, reason)
        self._say_missing(missing)

    def _new_input(self, spec: ButtonSpec) -> _Input:
        return _Input(spec, Debouncer(self._bouncetime, pressed=self._is_pressed(spec.pin)))

    def _say_missing(self, missing: Dict[int, str]) -> None:
        """Which extra buttons cannot be used now (logged as they change); health says so too."""
        for pin, why in missing.items():
            if self._missing.get(pin) != why:
                log.error("%s; the other buttons count meanwhile, and it is set up again every %g s at most",
                          why, self._retry_delays[-1])
        for pin in set(self._missing) - set(missing):
            log.info("GPIO pin %s works again", pin)
        if missing and not self._missing:
            self._missing_tries = 0
        self._missing = missing
        if missing:
            delay = self._retry_delays[min(self._missing_tries, len(self._retry_delays) - 1)]
            self._missing_tries += 1
            self._missing_retry_at = self._clock() + delay

    def _say_mode(self, mode: str, reason: Optional[str]) -> None:
        if (mode, reason) != (self.mode, self._mode_reason):
            pins = ", ".join(str(p) for p in self.pins)
            if mode == "edge":
                log.info("reading pin %s by edge detection", pins)
            elif self._edges_dead:
                log.warning("reading pin %s by polling every %g ms from now on: %s", pins,
                            round(self._poll_interval * 1000, 3), reason)
            else:
                log.warning("reading pin %s by polling every %g ms: edge detection unavailable (%s)", pins,
                            round(self._poll_interval * 1000, 3), reason)
        self.mode, self._mode_reason = mode, reason

    def _setup(self, specs: Optional[Sequence[ButtonSpec]] = None) -> Dict[int, str]:
        """Set the pins up; ButtonError when the main pin cannot be, else {extra pin: why} of those
        that cannot (each extra button stands on its own)."""
        g = self._gpio
        g.setwarnings(False)
        g.setmode(g.BOARD)
        missing: Dict[int, str] = {}
        for spec in self._specs if specs is None else specs:
            try:
                g.setup(spec.pin, g.IN, pull_up_down=g.PUD_UP if self.pull == "up" else g.PUD_DOWN)
            except Exception as e:  # RuntimeError, ValueError, lgpio.error...: say which pin
                if spec.action == "press" and spec.pin == self.pin:
                    raise ButtonError(f"cannot use GPIO pin {spec.pin}: {e}") from e
                missing[spec.pin] = f"cannot use GPIO pin {spec.pin} (--buttons {spec.pin}:{spec.action}): {e}"
        return missing

    def _retry_missing(self) -> None:
        """Set up again the extra buttons that could not be (button thread, between reads)."""
        specs = [spec for spec in self._specs if spec.pin in self._missing]
        missing = self._setup(specs)
        found = [spec for spec in specs if spec.pin not in missing]
        if found and self.mode == "edge":
            mode, reason = self._add_edge_detection(found)
            if mode == "poll":  # the new pin cannot be watched: every pin is polled, as at a start
                for spec in self._specs:
                    self._remove_edge_detection(spec.pin)
                self._say_mode(mode, reason)
        new = [self._new_input(spec) for spec in found]
        with self._cond:
            self._inputs = self._inputs + new
        self._say_missing(missing)

    def _missing_due(self) -> bool:
        return bool(self._missing) and self._clock() >= self._missing_retry_at

    def _add_edge_detection(self, specs: Sequence[ButtonSpec]) -> Tuple[str, Optional[str]]:
        """("edge", None) when every pin of ``specs`` is watched for edges, else ("poll", why not)."""
        g = self._gpio
        watched: List[int] = []
        try:
            for spec in specs:
                g.add_event_detect(spec.pin, g.BOTH, callback=self._on_edge)
                watched.append(spec.pin)
        except self._errors as e:  # "Failed to add edge detection" (kernel 6.6+), lgpio.error, ...
            for pin in watched:
                self._remove_edge_detection(pin)
            return "poll", str(e) or type(e).__name__
        return "edge", None

    def _remove_edge_detection(self, pin: int) -> None:
        try:
            self._gpio.remove_event_detect(pin)
        except Exception:  # the pin may have no detection to remove
            pass

    def _on_edge(self, channel: int) -> None:
        # Runs in the GPIO library's event thread: only wake the button thread.
        with self._cond:
            self._edges += 1
            self._settled = False
            self._cond.notify_all()

    def start(self, on_press: Callable[..., None]) -> None:
        """Start the button thread; ``on_press`` is called from it once per press (see the class)."""
        self._thread = threading.Thread(
            target=self._run, args=(on_press,), name="button-gpio", daemon=True
        )
        self._thread.start()

    def _run(self, on_press: Callable[..., None]) -> None:
        # The button thread.
        try:
            if self.mode is None and not self._reopen():  # open() failed before start: keep trying
                return
            self._retry_forever(on_press)
        except BaseException as e:
            self._error = f"button thread stopped: {type(e).__name__}: {e}"
            log.critical("the GPIO button thread stopped; presses are no longer counted: %s", e)
            raise

    def _retry_forever(self, on_press: Callable[..., None]) -> None:
        while not self._stopping:
            try:
                if self._missing_due():
                    self._retry_missing()
                if self.mode == "poll":
                    self._poll(on_press)
                else:
                    self._watch(on_press)
            except Exception as e:  # any GPIO fault: report it, then set the pins up again
                self._report(f"{type(e).__name__}: {e}")
                if not self._reopen():
                    return

    def fail_to_start(self, message: str) -> None:
        """open() failed before start(): say so; the button thread sets the pins up until they work."""
        self._error = message
        log.error("button: %s; the page, the API and /admin are served meanwhile, and the pin is "
                  "set up again every %g s at most", message, self._retry_delays[-1])

    def _report(self, message: str) -> None:
        if message != self._error:
            log.error("GPIO pin %s failed, retrying: %s", self.pin, message)
        self._error = message

    def _reopen(self) -> bool:
        """Set the pins up again, with backoff, until it works (True) or the button stops (False).

        Watching or polling a pin that failed to open would wait for ever on nothing, so
        nothing else runs until open() succeeds.
        """
        failures = 0
        while True:
            delay = self._retry_delays[min(failures, len(self._retry_delays) - 1)]
            failures += 1
            with self._cond:
                self._cond.wait_for(lambda: self._stopping, timeout=delay)
            if self._stopping:
                return False
            for spec in self._specs:
                self._remove_edge_detection(spec.pin)
            try:
                self.open()
            except ButtonError as e:
                self._report(str(e))
                continue
            log.info("GPIO pin %s works again", self.pin)
            self._error = None
            with self._cond:
                self._settled = True
                self._cond.notify_all()
            return True

    def _read_all(self, on_press: Callable[..., None], now: float, edges: Optional[int] = None) -> Tuple[Optional[float], bool]:
        """Read every pin once and act on presses, releases and holds.

        Returns (when a pin must be read again, or None; whether a pin changed that no
        edge announced). ``edges`` is the edge count this read follows (edge mode only).
        """
        due: Optional[float] = None
        unannounced = False
        for inp in self._inputs:
            was = inp.debouncer.pressed
            _, recheck = inp.debouncer.sample(self._is_pressed(inp.pin), now)
            if inp.debouncer.pressed != was:
                if edges is not None:
                    unannounced = unannounced or edges == inp.changes
                    inp.changes = edges
                self._changed(inp, inp.debouncer.pressed, now, on_press)
            if inp.down_at is not None and self._hold is not None:
                if now - inp.down_at >= self._hold:  # held long enough: an undo, and no press
                    inp.down_at = None
                    self._act(on_press, undo=True)
                else:
                    recheck = inp.down_at + self._hold if recheck is None else min(recheck, inp.down_at + self._hold)
            if recheck is not None:
                due = recheck if due is None else min(due, recheck)
        return due, unannounced

    def _changed(self, inp: _Input, pressed: bool, now: float, on_press: Callable[..., None]) -> None:
        """A debounced change of one pin: a press now, or (with hold) at the release."""
        if inp.action == "undo":
            if pressed:
                self._act(on_press, undo=True)
            return
        by = None if inp.action == "press" else inp.action
        if self._hold is None:
            if pressed:
                self._act(on_press, by=by)
        elif pressed:
            inp.down_at = now
        elif inp.down_at is not None:  # let go before the hold time: the press counts now
            held = now - inp.down_at
            inp.down_at = None
            if held >= self._hold:
                self._act(on_press, undo=True)
            else:
                self._act(on_press, by=by)

    def _watch(self, on_press: Callable[..., None]) -> None:
        """Wait for edges, re-reads and the periodic read; return when stopping, raise on a GPIO error."""
        # A first read at once: after a fault the pins may have changed while nothing watched.
        due, _ = self._read_all(on_press, self._clock())
        seen = self._edges
        for inp in self._inputs:
            inp.changes = seen
        while True:
            with self._cond:
                wake = due if due is not None else self._clock() + self._watch_interval
                if self._missing:
                    wake = min(wake, self._missing_retry_at)
                while not self._stopping and self._edges == seen:
                    remaining = wake - self._clock()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                if self._stopping:
                    return
                seen = self._edges
            if self._missing_due():
                return  # _retry_forever sets them up again, then watches anew
            self._settled = False  # for wait_settled(): a read is under way
            due, unannounced = self._read_all(on_press, self._clock(), seen)
            if unannounced and not self._edge_comes(seen):
                self._edges_dead = True
                self._say_mode("poll", "a change came without its edge event (the GPIO library's "
                                       "event thread has stopped?)")
                for spec in self._specs:
                    self._remove_edge_detection(spec.pin)
                return  # _retry_forever goes on polling
            with self._cond:
                if due is None and self._edges == seen:
                    self._settled = True
                    self._cond.notify_all()

    def _edge_comes(self, seen: int, within: float = 0.05) -> bool:
        """Whether an edge arrives soon after a change the periodic read found (it may just be late)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._edges != seen or self._stopping, timeout=within)

    def _poll(self, on_press: Callable[..., None]) -> None:
        """Read the pins every poll interval; return when stopping, raise on a GPIO error."""
        sleep, interval = time.sleep, self._poll_interval
        while True:
            due, _ = self._read_all(on_press, self._clock())
            self._polls += 1  # only this thread writes it
            self._settled = due is None
            if self._settle_waiters:
                with self._cond:
                    self._cond.notify_all()
            if self._stopping:
                return
            # A plain sleep: the cheapest wait there is (a Condition's timed wait costs several
            # times more per wake); stop() is seen within one interval.
            sleep(interval)
            if self._stopping or self._missing_due():
                return

    def _act(self, on_press: Callable[..., None], **kwargs: Any) -> None:
        """Hand a press (or undo) to the press thread, in order; the button thread reads on at once."""
        with self._cond:
            self._acts.append((on_press, {k: v for k, v in kwargs.items() if v}))  # the main button: on_press()
            if self._presser is None:
                self._presser = threading.Thread(target=self._press_loop, name="button-press", daemon=True)
                self._presser.start()
            self._cond.notify_all()

    def _press_loop(self) -> None:
        # The press thread: calls on_press for each press the button thread read, in order,
        # until stop() and every press read before it is handled.
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._acts) or self._stopping)
                if not self._acts:
                    return
                on_press, kwargs = self._acts.popleft()
                self._acting += 1
            try:
                on_press(**kwargs)
            except Exception:  # a failed press must not stop the button
                log.exception("a button press could not be handled")
            finally:
                with self._cond:
                    self._acting -= 1
                    self._cond.notify_all()

    def wait_settled(self, timeout: float) -> bool:
        """Wait until every change so far has been read and no re-read is due; False on timeout.

        When polling, "read" means a whole poll that began after this call. Every press read
        has been handled by on_press too.
        """
        with self._cond:
            self._settle_waiters += 1
            try:
                if self.mode == "poll":
                    target = self._polls + 2
                    return self._cond.wait_for(lambda: self._polls >= target and self._settled and self._handled(),
                                               timeout)
                return self._cond.wait_for(lambda: self._settled and self._handled(), timeout)
            finally:
                self._settle_waiters -= 1

    def _handled(self) -> bool:
        return not self._acts and not self._acting

    def health(self) -> dict:
        alive = self._thread is not None and self._thread.is_alive()
        error = self._error or ("; ".join(self._missing[pin] for pin in sorted(self._missing)) or None)
        health = {"kind": self.name, "pin": self.pin, "mode": self.mode,
                  "ok": alive and error is None and self.mode is not None,
                  "alive": alive, "error": error}
        if len(self._specs) > 1:
            health["buttons"] = {str(spec.pin): spec.action for spec in self._specs[1:]}
        if self._hold is not None:
            health["hold"] = self._hold
        if self.mode == "poll":
            health["poll_ms"] = round(self._poll_interval * 1000, 3)
            health["poll_reason"] = self._mode_reason
        return health

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the button thread and release the pins (GPIO.cleanup())."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._presser is not None:  # the presses read before the stop are stored first
            self._presser.join(timeout)
        try:
            self._gpio.cleanup()
        except Exception as e:  # cleanup at exit must not hide the reason we exit
            log.warning("GPIO cleanup failed: %s", e)


class KeyboardButton:
    """The simulated button: each Enter typed in the terminal is one press."""

    name = "keyboard"

    def __init__(self, stream=None) -> None:
        self._stream = stream if stream is not None else sys.stdin
        self._thread: Optional[threading.Thread] = None
        self._stopping = False

    def start(self, on_press: Callable[[], None]) -> None:
        self._thread = threading.Thread(
            target=self._run, args=(on_press,), name="button-keyboard", daemon=True
        )
        self._thread.start()

    def _run(self, on_press: Callable[[], None]) -> None:
        # The button thread: blocks on the terminal, so it is a daemon thread.
        for _line in self._stream:
            if self._stopping:
                return
            try:
                on_press()
            except Exception:  # a failed press must not stop the button
                log.exception("a keyboard press could not be handled")
        if not self._stopping:
            log.info("end of keyboard input: no more presses from the keyboard")

    def health(self) -> dict:
        return {"kind": self.name, "ok": True}

    def stop(self, timeout: float = 0.0) -> None:
        self._stopping = True


class NoButton:
    """No button at all: presses come only through the write API."""

    name = "none"

    def start(self, on_press: Callable[[], None]) -> None:
        pass

    def health(self) -> dict:
        return {"kind": self.name, "ok": True}

    def stop(self, timeout: float = 0.0) -> None:
        pass


def import_gpio():
    """RPi.GPIO (or its drop-in rpi-lgpio); ButtonError with the reason if it cannot load."""
    try:
        import RPi.GPIO as gpio  # noqa: N814 - the module's own name
    except ImportError as e:
        raise ButtonError(f"RPi.GPIO is not installed ({e})") from e
    except Exception as e:  # RPi.GPIO raises RuntimeError off a Pi; rpi-lgpio its own errors
        raise ButtonError(f"RPi.GPIO cannot run here: {e}") from e
    return gpio


def make_button(kind: str, pin: int = 11, pull: str = "up", stdin=None, gpio=None,
                buttons: Sequence[ButtonSpec] = (), hold: Optional[float] = None):
    """The button for ``--button=kind``; for "auto", the first of gpio, keyboard, none that works.

    Logs the choice and why each earlier source was passed over. "gpio" (and "auto" with
    ``buttons``, which only GPIO can read) raises ButtonError only when the GPIO library
    cannot be loaded at all; a pin that cannot be set up yet (no access to /dev/gpiomem at
    boot, a pin in use) is logged, and the button sets it up again until it works, so
    that the page is served meanwhile.
    """
    if kind not in BUTTON_CHOICES:
        raise ButtonError(f"--button must be one of {', '.join(BUTTON_CHOICES)}, not {kind!r}")
    stdin = stdin if stdin is not None else sys.stdin
    skipped: List[str] = []
    if kind in ("gpio", "auto"):
        try:
            button = GpioButton(pin, pull, gpio=gpio, buttons=buttons, hold=hold)
        except ButtonError as e:  # the library cannot be loaded
            if kind == "gpio" or buttons:
                raise
            skipped.append(f"gpio: {e}")
        else:
            try:
                button.open()
            except ButtonError as e:
                if kind == "gpio" or buttons:
                    button.fail_to_start(str(e))
                    return button
                skipped.append(f"gpio: {e}")
            else:
                log.info("button: GPIO physical pin %s, pull %s, read by %s", ", ".join(map(str, button.pins)),
                         pull, "polling" if button.mode == "poll" else "edge detection")
                return button
    if kind == "keyboard" or (kind == "auto" and _is_tty(stdin)):
        for reason in skipped:
            log.info("button: passed over %s", reason)
        log.info("button: keyboard (press Enter in this terminal to press the button)")
        return KeyboardButton(stdin)
    if kind == "auto":
        skipped.append("keyboard: standard input is not a terminal")
    for reason in skipped:
        log.info("button: passed over %s", reason)
    log.info("button: none (presses only through the write API)")
    return NoButton()


def _is_tty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or not a file
        return False
