"""RPi.GPIO for a real server process under test: the tests' FakeGPIO, steered through a folder.

Put tests/pi on PYTHONPATH and name the folder in FAKE_GPIO_DIR. While a file ``busy`` is in
it, ``setup()`` fails as on a Pi where /dev/gpiomem cannot be opened yet. Lines written to
the FIFO ``drive`` ("low 11", "high 11") move input pins. Every level an output takes is
appended to ``outputs`` as "monotonic-time pin level", and ``cleanup()`` as "time cleanup".
"""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))

from tests.fake_gpio import FakeGPIO  # noqa: E402

FOLDER = os.environ["FAKE_GPIO_DIR"]


class SteeredGPIO(FakeGPIO):
    def setup(self, channel, direction, pull_up_down=20, initial=None):
        if os.path.exists(os.path.join(FOLDER, "busy")):
            raise RuntimeError("No access to /dev/gpiomem.  Try running as root!")
        super().setup(channel, direction, pull_up_down, initial)

    def _set_output(self, channel, level):
        super()._set_output(channel, level)
        with open(os.path.join(FOLDER, "outputs"), "a") as f:
            f.write("%.4f %d %d\n" % (time.monotonic(), channel, self._levels[channel]))

    def cleanup(self, channel=None):
        super().cleanup(channel)
        with open(os.path.join(FOLDER, "outputs"), "a") as f:
            f.write("%.4f cleanup %s\n" % (time.monotonic(), "all" if channel is None else channel))


_gpio = SteeredGPIO()


def _follow_drive():
    path = os.path.join(FOLDER, "drive")
    while True:
        with open(path) as fifo:  # blocks until the test opens it for writing
            for line in fifo:
                how, pin = line.split()
                (_gpio.drive_low if how == "low" else _gpio.drive_high)(int(pin))


if os.path.exists(os.path.join(FOLDER, "drive")):
    threading.Thread(target=_follow_drive, name="fake-gpio-drive", daemon=True).start()


def __getattr__(name):
    return getattr(_gpio, name)
