"""A stand-in for the RPi.GPIO module that follows its rules, for tests without a Pi.

Like the real module: BOARD/BCM numbering that must be chosen before setup(),
inputs with pull-ups or pull-downs, edge callbacks delivered from the module's own
event thread with the channel number, ``bouncetime`` in milliseconds after a
delivered edge, ``wait_for_edge`` that conflicts with ``add_event_detect``, and
``cleanup()`` that forgets every channel and the numbering mode. Test-only:
``drive_low()`` / ``drive_high()`` move the pin (and return once its callbacks ran),
``fail_next()`` makes the next call(s) of a function raise, and ``reads`` counts
``input()`` calls.

``FakeGPIO(edge_detection=False)`` behaves like RPi.GPIO 0.7.1 on kernel 6.6 or later,
where the sysfs GPIO numbers moved: ``add_event_detect`` raises
``RuntimeError("Failed to add edge detection")`` every time and ``wait_for_edge``
raises ``RuntimeError("Error waiting for edge")``, while ``setup()``, ``input()`` and ``cleanup()`` still work.

``FakeGPIO(flavour="lgpio")`` is rpi-lgpio, the drop-in on a Pi 5 and on Bookworm: the
module carries ``lgpio`` (``gpio.lgpio.error``, a plain ``Exception`` as in the lgpio
module), and where it cannot watch a pin ``add_event_detect`` raises
``lgpio.error("GPIO busy")``, which is not a RuntimeError.

Outputs: ``setup(pin, OUT, initial=...)`` and ``output(pin, level)`` as in the library (an
output on a pin not set up as one is a RuntimeError); every level an output takes is kept
with the fake's clock in ``outputs`` (``levels_of(pin)``), and ``cleanup()`` turns
outputs back into inputs. ``stop_events()`` ends the event thread as a library's callback
thread can die: edges are then never delivered, while ``input()`` still reads the pin.
"""
import queue
import threading
import time
import types


class LgpioError(Exception):
    """lgpio.error: what the lgpio module raises, an Exception and not a RuntimeError."""

BOARD, BCM = 10, 11
IN, OUT = 1, 0
LOW, HIGH = 0, 1
PUD_OFF, PUD_DOWN, PUD_UP = 20, 21, 22
RISING, FALLING, BOTH = 31, 32, 33
# Physical pins of the 40-pin header that are GPIOs (the rest are power and ground).
BOARD_GPIO_PINS = {3, 5, 7, 8, 10, 11, 12, 13, 15, 16, 18, 19, 21, 22, 23, 24, 26, 27, 28,
                   29, 31, 32, 33, 35, 36, 37, 38, 40}


class FakeGPIO:
    BOARD, BCM, IN, OUT, LOW, HIGH = BOARD, BCM, IN, OUT, LOW, HIGH
    PUD_OFF, PUD_DOWN, PUD_UP = PUD_OFF, PUD_DOWN, PUD_UP
    RISING, FALLING, BOTH = RISING, FALLING, BOTH

    def __init__(self, clock=time.monotonic, edge_detection=True, flavour="rpi"):
        self._clock = clock
        self.edge_detection = edge_detection
        self.flavour = flavour
        if flavour == "lgpio":
            self.lgpio = types.SimpleNamespace(error=LgpioError)
        self.outputs = []  # (time, pin, level) for every level an output pin took
        self._events_stopped = False
        self.reads = 0
        self._lock = threading.RLock()
        self._read = threading.Condition(self._lock)
        self._mode = None
        self._levels = {}
        self._driven = set()  # input pins a test has moved (pressed or let go): set up again, they stay
        self._setup = {}
        self._detect = {}  # channel -> dict(edge, callbacks, bouncetime, last)
        self._waiters = []
        self._events = queue.Queue()
        self._failures = {}
        self.cleanups = 0
        self.calls = []
        self._thread = threading.Thread(target=self._deliver, name="fake-gpio-events", daemon=True)
        self._thread.start()

    # --- test controls ---------------------------------------------------------
    def fail_next(self, name, exc, times=1):
        """Make the next ``times`` calls of ``name`` raise ``exc``."""
        with self._lock:
            self._failures[name] = [exc, times]

    def stop_events(self):
        """End the event thread, as a library's callback thread can die: no edge is delivered after."""
        with self._lock:
            self._events_stopped = True
        self._events.put(None)

    def levels_of(self, pin):
        """[(time, level)] of one output pin, oldest first."""
        with self._lock:
            return [(t, level) for t, p, level in self.outputs if p == pin]

    def wait_for_output(self, pin, count, timeout=5.0):
        """Wait until output ``pin`` has taken ``count`` levels in all; False on timeout."""
        with self._read:
            return self._read.wait_for(lambda: len([1 for _t, p, _l in self.outputs if p == pin]) >= count, timeout)

    def wait_for_reads(self, n, timeout=2.0):
        """Wait until ``input()`` has been called ``n`` more times; False on timeout."""
        with self._read:
            target = self.reads + n
            return self._read.wait_for(lambda: self.reads >= target, timeout)

    def drive_low(self, channel):
        self._drive(channel, LOW)

    def drive_high(self, channel):
        self._drive(channel, HIGH)

    def clear_failures(self):
        """The failures set with fail_next end now (a pin that was busy is free)."""
        with self._lock:
            self._failures.clear()

    def _maybe_fail(self, name):
        with self._lock:
            failure = self._failures.get(name)
            if failure is None:
                return
            if failure[1] is not None:  # times=None: until clear_failures()
                failure[1] -= 1
                if failure[1] <= 0:
                    del self._failures[name]
        raise failure[0]

    def _drive(self, channel, level):
        with self._lock:
            old = self._levels.get(channel, LOW)
            self._levels[channel] = level
            self._driven.add(channel)
            if old == level:
                return
            edge = RISING if level == HIGH else FALLING
            for waiter in list(self._waiters):
                if waiter["channel"] == channel and waiter["edge"] in (edge, BOTH):
                    waiter["hit"].set()
            detect = self._detect.get(channel)
            if detect is None or detect["edge"] not in (edge, BOTH):
                return
            now = self._clock()
            if detect["bouncetime"] and now - detect["last"] < detect["bouncetime"] / 1000:
                return  # RPi.GPIO drops edges inside bouncetime of the last one delivered
            detect["last"] = now
            detect["pending"] = True
            if self._events_stopped:
                return  # the event thread is gone: the edge is never delivered
            done = threading.Event()
            self._events.put((channel, list(detect["callbacks"]), done))
        done.wait(5)

    def _deliver(self):
        # The module's own event thread, as in RPi.GPIO.
        while True:
            item = self._events.get()
            if item is None:
                return  # stop_events(): the thread dies without a word, as a library's can
            channel, callbacks, done = item
            with self._lock:
                detect = self._detect.get(channel)
                if detect is not None:
                    detect["pending"] = False
                    detect["detected"] = True
            for callback in callbacks:
                callback(channel)
            done.set()

    # --- the RPi.GPIO API -------------------------------------------------------
    def setwarnings(self, flag):
        pass

    def setmode(self, mode):
        self._maybe_fail("setmode")
        if mode not in (BOARD, BCM):
            raise ValueError("An invalid mode was passed to setmode()")
        if self._mode is not None and self._mode != mode:
            raise ValueError("A different mode has already been set!")
        self._mode = mode

    def getmode(self):
        return self._mode

    def _check_channel(self, channel):
        if self._mode is None:
            raise RuntimeError("Please set pin numbering mode using GPIO.setmode(GPIO.BOARD) or GPIO.setmode(GPIO.BCM)")
        if self._mode == BOARD and channel not in BOARD_GPIO_PINS:
            raise ValueError("The channel sent is invalid on a Raspberry Pi")

    def setup(self, channel, direction, pull_up_down=PUD_OFF, initial=None):
        self._maybe_fail("setup")
        self._check_channel(channel)
        if direction not in (IN, OUT):
            raise ValueError("An invalid direction was passed to setup()")
        if direction == OUT and pull_up_down != PUD_OFF:
            raise ValueError("pull_up_down parameter is not valid for outputs")
        with self._lock:
            self._setup[channel] = direction
            if direction == IN:
                if channel not in self._driven:  # a pin held by its button stays where it is held
                    self._levels[channel] = HIGH if pull_up_down == PUD_UP else LOW
            else:
                self._set_output(channel, LOW if initial is None else initial)
        self.calls.append(("setup", channel, direction, pull_up_down))

    def _set_output(self, channel, level):
        # With the lock held.
        self._levels[channel] = HIGH if level else LOW
        self.outputs.append((self._clock(), channel, self._levels[channel]))
        self._read.notify_all()

    def output(self, channel, value):
        self._maybe_fail("output")
        self._check_channel(channel)
        with self._lock:
            if self._setup.get(channel) != OUT:
                raise RuntimeError("The GPIO channel has not been set up as an OUTPUT")
            self._set_output(channel, value)

    def input(self, channel):
        self._maybe_fail("input")
        self._check_channel(channel)
        with self._lock:
            if channel not in self._setup:
                raise RuntimeError("You must setup() the GPIO channel first")
            self.reads += 1
            self._read.notify_all()
            return self._levels[channel]

    def add_event_detect(self, channel, edge, callback=None, bouncetime=None):
        self._maybe_fail("add_event_detect")
        self._check_channel(channel)
        if self._setup.get(channel) != IN:
            raise RuntimeError("You must setup() the GPIO channel as an input first")
        if edge not in (RISING, FALLING, BOTH):
            raise ValueError("The edge must be set to RISING, FALLING or BOTH")
        if not self.edge_detection:
            if self.flavour == "lgpio":  # lgpio's own error comes through rpi-lgpio unchanged
                raise LgpioError("GPIO busy")
            # RPi.GPIO 0.7.1 exports the pin under its old sysfs number, which kernel 6.6 refuses.
            raise RuntimeError("Failed to add edge detection")
        with self._lock:
            if channel in self._detect:
                raise RuntimeError("Conflicting edge detection already enabled for this GPIO channel")
            self._detect[channel] = dict(edge=edge, callbacks=[callback] if callback else [],
                                         bouncetime=bouncetime or 0, last=float("-inf"),
                                         pending=False, detected=False)

    def add_event_callback(self, channel, callback):
        with self._lock:
            if channel not in self._detect:
                raise RuntimeError("Add event detection using add_event_detect first before adding a callback")
            self._detect[channel]["callbacks"].append(callback)

    def remove_event_detect(self, channel):
        with self._lock:
            self._detect.pop(channel, None)

    def event_detected(self, channel):
        with self._lock:
            detect = self._detect.get(channel)
            if detect is None or not detect["detected"]:
                return False
            detect["detected"] = False
            return True

    def wait_for_edge(self, channel, edge, bouncetime=None, timeout=None):
        self._check_channel(channel)
        if not self.edge_detection:
            raise RuntimeError("Error waiting for edge")
        with self._lock:
            if channel in self._detect:
                raise RuntimeError("Conflicting edge detection events already exist for this GPIO channel")
            waiter = dict(channel=channel, edge=edge, hit=threading.Event())
            self._waiters.append(waiter)
        try:
            hit = waiter["hit"].wait(None if timeout is None else timeout / 1000)
        finally:
            with self._lock:
                self._waiters.remove(waiter)
        return channel if hit else None

    def cleanup(self, channel=None):
        with self._lock:
            self.cleanups += 1
            channels = list(self._setup) if channel is None else [channel]
            for ch in channels:
                self._setup.pop(ch, None)
                self._detect.pop(ch, None)
            if channel is None:
                self._mode = None
