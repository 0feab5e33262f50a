"""The press light (``--led=PIN``): an LED that tells whoever pressed that the press is safe.

What it shows comes from the change path and the store's health, never from the button
thread's hopes: one flash when a press made through this server is committed, two for an
undo, on for 10 s when the goal is reached, a slow blink while presses wait on local disk
for the shared store (Redis away), and a fast blink for 3 s when a press could not be
stored at all. Off otherwise, and off at exit.

Threads: ``on_change`` runs on the IOLoop (a listener) and ``failed`` in the button
thread; both only note what to show and wake the LED's own thread, which alone drives
the pin. So the light never delays a press, and a GPIO error on the LED's pin is logged
and retried without touching the button.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

from tornado.ioloop import PeriodicCallback

from thebutton.store import Change

log = logging.getLogger("button.led")

Steps = Sequence[Tuple[int, float]]  # (level, seconds) in turn

FLASH: Steps = ((1, 0.3),)  # a press is stored
DOUBLE: Steps = ((1, 0.15), (0, 0.15), (1, 0.15))  # an undo is stored
FAILED: Steps = ((1, 0.1), (0, 0.1)) * 15  # ~5 a second for 3 s: a press could not be stored
GOAL: Steps = ((1, 10.0),)  # the goal is reached
WAITING_HALF = 1.0  # slow blink: 1 s on, 1 s off while presses wait on local disk
RETRY = 10.0  # seconds between attempts to set up a pin that failed


class Led:
    """One LED on a BOARD pin (active high: pin, resistor, LED, ground), driven by its own thread.

    ``waiting`` (called on the IOLoop every half second) says whether presses wait on local
    disk for the shared store; ``gpio`` is the RPi.GPIO module (or the tests' fake).
    """

    def __init__(self, pin: int, gpio: Any, waiting: Callable[[], bool] = lambda: False,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.pin = pin
        self._gpio = gpio
        self._waiting_of = waiting
        self._clock = clock
        self._cond = threading.Condition()
        self._steps: Steps = ()
        self._since = 0.0
        self._waiting_since: Optional[float] = None
        self._stopping = False
        self._ready = False
        self._output_failed = False  # the last error was of output(), not of setup()
        self._error: Optional[str] = None
        self._thread: Optional[threading.Thread] = None
        self._check: Optional[PeriodicCallback] = None

    # --- what to show: any thread, never waits on the pin ------------------------
    def show(self, steps: Steps) -> None:
        """Start a pattern now, in place of the one showing (the newest news wins)."""
        with self._cond:
            self._steps, self._since = steps, self._clock()
            self._cond.notify_all()

    def on_change(self, change: Change) -> None:
        """The IOLoop thread (a listener): light up for what this server committed."""
        if not change.local:
            return  # another server's press: its own light tells
        if change.event == "press":
            self.show(GOAL if change.state.count == 0 else FLASH)
        elif change.event == "undo":
            self.show(DOUBLE)

    def failed(self) -> None:
        """Any thread: a press could not be stored (the store refused it)."""
        self.show(FAILED)

    def set_waiting(self, waiting: bool) -> None:
        with self._cond:
            if waiting and self._waiting_since is None:
                self._waiting_since = self._clock()
                self._cond.notify_all()
            elif not waiting and self._waiting_since is not None:
                self._waiting_since = None
                self._cond.notify_all()

    def _check_waiting(self) -> None:
        # The IOLoop thread: the store's health is read where it may be read.
        try:
            self.set_waiting(bool(self._waiting_of()))
        except Exception:  # the light must not break the loop
            log.exception("reading the store's health for the LED failed")

    # --- the LED's own thread ------------------------------------------------------
    def start(self) -> None:
        """On the IOLoop: start the LED's thread and the check of waiting presses."""
        self.start_thread()
        self._check = PeriodicCallback(self._check_waiting, 500)
        self._check.start()

    def start_thread(self) -> None:
        """The LED's own thread alone (start() also checks the store from the IOLoop)."""
        self._thread = threading.Thread(target=self._run, name="led", daemon=True)
        self._thread.start()

    def level_at(self, now: float) -> Tuple[int, Optional[float]]:
        """The level to show at ``now`` and when it changes next (None: not until told)."""
        with self._cond:
            steps, since, waiting_since = self._steps, self._since, self._waiting_since
        t = since
        for level, seconds in steps:
            if now < t + seconds:
                return level, t + seconds
            t += seconds
        if waiting_since is not None:
            phase = (now - waiting_since) % (2 * WAITING_HALF)
            return (1, now + WAITING_HALF - phase) if phase < WAITING_HALF else (0, now + 2 * WAITING_HALF - phase)
        return 0, None

    def _run(self) -> None:
        shown: Optional[int] = None
        while True:
            with self._cond:
                if self._stopping:
                    break
            if not self._ready:
                if not self._set_up():
                    with self._cond:
                        self._cond.wait_for(lambda: self._stopping, RETRY)
                    continue
                shown = 0  # set up as an output that is off
            level, until = self.level_at(self._clock())
            if level != shown:
                if self._output(level):
                    shown = level
                else:  # set up, yet it cannot be driven: wait as for a setup that failed, never spin
                    shown = None
                    with self._cond:
                        self._cond.wait_for(lambda: self._stopping, RETRY)
                    continue
            with self._cond:
                if self._stopping:
                    break
                # Woken by show(), set_waiting() or stop(); else at the next change of level.
                self._cond.wait(None if until is None else max(0.0, until - self._clock()))
        if self._ready:
            self._output(0)

    def _set_up(self) -> bool:
        g = self._gpio
        try:
            g.setwarnings(False)
            g.setmode(g.BOARD)
            g.setup(self.pin, g.OUT, initial=g.LOW)
        except Exception as e:  # RuntimeError, ValueError, lgpio.error...: the light only, retried
            self._say(f"cannot use LED pin {self.pin}: {e}")
            return False
        self._ready = True
        if self._error and not self._output_failed:  # after an output() failure: once an output() works
            log.info("LED pin %s works again", self.pin)
            self._error = None
        return True

    def _output(self, level: int) -> bool:
        try:
            self._gpio.output(self.pin, self._gpio.HIGH if level else self._gpio.LOW)
        except Exception as e:  # the pin went away: set it up again
            self._ready, self._output_failed = False, True
            self._say(f"LED pin {self.pin} failed: {e}")
            return False
        if self._error:
            log.info("LED pin %s works again", self.pin)
            self._error = None
        self._output_failed = False
        return True

    def _say(self, message: str) -> None:
        if message != self._error:
            log.error("%s (retrying every %g s; presses are not affected)", message, RETRY)
        self._error = message

    def health(self) -> Dict[str, Any]:
        return {"pin": self.pin, "ok": self._ready and self._error is None, "error": self._error}

    def stop(self, timeout: float = 2.0) -> None:
        """The LED off, its thread ended, and its pin given back (GPIO.cleanup(pin))."""
        if self._check is not None:
            self._check.stop()
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        try:
            self._gpio.cleanup(self.pin)
        except Exception as e:  # cleanup at exit must not hide the reason we exit
            log.warning("GPIO cleanup of the LED pin failed: %s", e)

