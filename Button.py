"""Sources of presses: a GPIO push button, the keyboard, or nothing.

Each source turns its input into calls of ``on_press()`` from its own thread, one
call per press. It knows nothing of SQLite or Tornado: what a press *means* is the
caller's business.
"""
from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Callable, List, Optional, Tuple

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


class GpioButton:
    """A push button on a Raspberry Pi pin, read through RPi.GPIO (or rpi-lgpio on a Pi 5).

    Wiring with the default ``pull="up"``: one leg of the button to physical pin 11
    (GPIO17), the other to a ground pin such as physical pin 9; the internal pull-up
    holds the pin HIGH and a press pulls it LOW. With ``pull="down"`` wire the other
    leg to 3.3 V (physical pin 1) instead: a press drives the pin HIGH.

    The pin is read one of two ways, chosen in ``open()`` and logged. By edge
    detection: RPi.GPIO's own thread only wakes the button thread, which reads the
    pin, debounces and calls ``on_press``. By polling, where edge detection cannot
    be set up (RPi.GPIO 0.7.1 on kernel 6.6 or later raises "Failed to add edge
    detection" while ``input()`` still works): the button thread reads the pin every
    ``poll_interval`` seconds through the same debouncer. A GPIO error at run time is
    logged once and the pin is set up again with backoff, while ``health()`` reports it.
    """

    name = "gpio"

    def __init__(
        self,
        pin: int = 11,
        pull: str = "up",
        gpio=None,
        bouncetime: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
        retry_delays: Tuple[float, ...] = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0),
        poll_interval: float = 0.005,
    ) -> None:
        if pull not in PULLS:
            raise ButtonError(f"pull must be one of {', '.join(PULLS)}, not {pull!r}")
        if gpio is None:
            gpio = _import_gpio()
        self.pin = pin
        self.pull = pull
        self._gpio = gpio
        self._bouncetime = bouncetime
        self._clock = clock
        self._retry_delays = retry_delays
        self._cond = threading.Condition()
        self._edges = 0
        self._settled = True
        self._stopping = False
        self._error: Optional[str] = None
        self._thread: Optional[threading.Thread] = None
        self._debouncer = Debouncer(bouncetime)
        self._poll_interval = poll_interval
        self.mode: Optional[str] = None  # "edge" or "poll" once open() has set the pin up
        self._mode_reason: Optional[str] = None
        self._polls = 0

    def _is_pressed(self) -> bool:
        level = self._gpio.input(self.pin)
        return bool(level) == (self.pull == "down")

    def open(self) -> None:
        """Set the pin up and read it once; ButtonError with the reason if GPIO refuses.

        Edge detection is tried first; where it fails with the error RPi.GPIO gives
        when it cannot watch the pin, the button thread polls the pin instead.
        """
        try:
            self._setup()
            mode, reason = self._add_edge_detection()
            pressed = self._is_pressed()
        except Exception as e:  # RPi.GPIO raises RuntimeError, ValueError, OSError...
            raise ButtonError(f"cannot use GPIO pin {self.pin}: {e}") from e
        self._debouncer = Debouncer(self._bouncetime, pressed=pressed)
        if (mode, reason) != (self.mode, self._mode_reason):
            if mode == "edge":
                log.info("reading pin %s by edge detection", self.pin)
            else:
                log.warning("reading pin %s by polling every %g ms: edge detection unavailable (%s)",
                            self.pin, round(self._poll_interval * 1000, 3), reason)
        self.mode, self._mode_reason = mode, reason

    def _setup(self) -> None:
        g = self._gpio
        g.setwarnings(False)
        g.setmode(g.BOARD)
        g.setup(self.pin, g.IN, pull_up_down=g.PUD_UP if self.pull == "up" else g.PUD_DOWN)

    def _add_edge_detection(self) -> Tuple[str, Optional[str]]:
        """("edge", None) when the pin is watched for edges, else ("poll", why not)."""
        g = self._gpio
        try:
            g.add_event_detect(self.pin, g.BOTH, callback=self._on_edge)
        except (RuntimeError, OSError) as e:  # "Failed to add edge detection" (kernel 6.6+)
            return "poll", str(e) or type(e).__name__
        return "edge", None

    def _on_edge(self, channel: int) -> None:
        # Runs in RPi.GPIO's event thread: only wake the button thread.
        with self._cond:
            self._edges += 1
            self._settled = False
            self._cond.notify_all()

    def start(self, on_press: Callable[[], None]) -> None:
        """Start the button thread; ``on_press`` is called from it once per press."""
        self._thread = threading.Thread(
            target=self._run, args=(on_press,), name="button-gpio", daemon=True
        )
        self._thread.start()

    def _run(self, on_press: Callable[[], None]) -> None:
        # The button thread.
        try:
            self._retry_forever(on_press)
        except BaseException as e:
            self._error = f"button thread stopped: {type(e).__name__}: {e}"
            log.critical("the GPIO button thread stopped; presses are no longer counted: %s", e)
            raise

    def _retry_forever(self, on_press: Callable[[], None]) -> None:
        while not self._stopping:
            try:
                if self.mode == "poll":
                    self._poll(on_press)
                else:
                    self._watch(on_press)
            except Exception as e:  # any GPIO fault: report it, then set the pin up again
                self._report(f"{type(e).__name__}: {e}")
                if not self._reopen():
                    return
                log.info("GPIO pin %s works again", self.pin)
                self._error = None
                with self._cond:
                    self._settled = True
                    self._cond.notify_all()

    def _report(self, message: str) -> None:
        if message != self._error:
            log.error("GPIO pin %s failed, retrying: %s", self.pin, message)
        self._error = message

    def _reopen(self) -> bool:
        """Set the pin up again, with backoff, until it works (True) or the button stops (False).

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
            try:
                self._gpio.remove_event_detect(self.pin)
            except Exception:  # the pin may not have detection to remove
                pass
            try:
                self.open()
            except ButtonError as e:
                self._report(str(e))
                continue
            return True

    def _watch(self, on_press: Callable[[], None]) -> None:
        """Wait for edges and re-reads; return when stopping, raise on a GPIO error."""
        recheck_at: Optional[float] = None
        seen = self._edges
        while True:
            with self._cond:
                while not self._stopping and self._edges == seen:
                    if recheck_at is not None:
                        remaining = recheck_at - self._clock()
                        if remaining <= 0:
                            break
                        self._cond.wait(remaining)
                    else:
                        self._cond.wait()
                if self._stopping:
                    return
                seen = self._edges
            is_press, recheck_at = self._debouncer.sample(self._is_pressed(), self._clock())
            if is_press:
                self._press(on_press)
            with self._cond:
                if recheck_at is None and self._edges == seen:
                    self._settled = True
                    self._cond.notify_all()

    def _poll(self, on_press: Callable[[], None]) -> None:
        """Read the pin every poll interval; return when stopping, raise on a GPIO error."""
        while True:
            is_press, recheck_at = self._debouncer.sample(self._is_pressed(), self._clock())
            if is_press:
                self._press(on_press)
            with self._cond:
                self._polls += 1
                self._settled = recheck_at is None
                self._cond.notify_all()
                # A plain timed wait (not wait_for, which costs more per wake): stop() ends it at once.
                if not self._stopping:
                    self._cond.wait(self._poll_interval)
                if self._stopping:
                    return

    @staticmethod
    def _press(on_press: Callable[[], None]) -> None:
        try:
            on_press()
        except Exception:  # a failed press must not stop the button
            log.exception("a button press could not be handled")

    def wait_settled(self, timeout: float) -> bool:
        """Wait until every change so far has been read and no re-read is due; False on timeout.

        When polling, "read" means a whole poll that began after this call.
        """
        with self._cond:
            if self.mode == "poll":
                target = self._polls + 2
                return self._cond.wait_for(lambda: self._polls >= target and self._settled, timeout)
            return self._cond.wait_for(lambda: self._settled, timeout)

    def health(self) -> dict:
        alive = self._thread is not None and self._thread.is_alive()
        health = {"kind": self.name, "pin": self.pin, "mode": self.mode,
                  "ok": alive and self._error is None, "alive": alive, "error": self._error}
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


def _import_gpio():
    """RPi.GPIO (or its drop-in rpi-lgpio); ButtonError with the reason if it cannot load."""
    try:
        import RPi.GPIO as gpio  # noqa: N814 - the module's own name
    except ImportError as e:
        raise ButtonError(f"RPi.GPIO is not installed ({e})") from e
    except Exception as e:  # RPi.GPIO raises RuntimeError off a Pi; rpi-lgpio its own errors
        raise ButtonError(f"RPi.GPIO cannot run here: {e}") from e
    return gpio


def make_button(kind: str, pin: int = 11, pull: str = "up", stdin=None, gpio=None):
    """The button for ``--button=kind``; for "auto", the first of gpio, keyboard, none that works.

    Logs the choice and why each earlier source was passed over. Raises
    ButtonError for "gpio" when GPIO cannot be used.
    """
    if kind not in BUTTON_CHOICES:
        raise ButtonError(f"--button must be one of {', '.join(BUTTON_CHOICES)}, not {kind!r}")
    stdin = stdin if stdin is not None else sys.stdin
    skipped: List[str] = []
    if kind in ("gpio", "auto"):
        try:
            button = GpioButton(pin, pull, gpio=gpio)
            button.open()
        except ButtonError as e:
            if kind == "gpio":
                raise
            skipped.append(f"gpio: {e}")
        else:
            log.info("button: GPIO physical pin %s, pull %s, read by %s", pin, pull,
                     "polling" if button.mode == "poll" else "edge detection")
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
