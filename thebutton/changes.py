"""The one path of committed changes, and the press source that starts most of them.

A store calls ``Changes.publish`` after each commit (and when it goes out of reach or
comes back), from whichever thread committed: the button thread, an executor thread, the
Redis store's thread. ``fire`` then runs on the IOLoop and hands the change to every
listener in turn: the feed of sockets, metrics, webhooks, MQTT. A listener must not
block, and one that raises is logged and does not stop the others.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Dict, List, Optional, Protocol

from tornado.ioloop import IOLoop

from thebutton.store import Change, Listener

log = logging.getLogger("button.changes")


class PressSource(Protocol):
    """A physical press source (Button.py's GpioButton, KeyboardButton, NoButton)."""

    name: str  # the press's source in the store: gpio, keyboard, none

    def start(self, on_press: Callable[[], None]) -> None:
        """Call ``on_press()`` from the source's own thread for every press, until stop()."""

    def health(self) -> Dict[str, Any]:
        """{"kind": ..., "ok": bool, ...}; cheap, called on the IOLoop."""

    def stop(self, timeout: float = 2.0) -> None:
        """Stop and let go of the hardware (GPIO.cleanup())."""


class Changes:
    """From any thread to the IOLoop once, then to each listener in turn."""

    def __init__(self, loop: Optional[IOLoop] = None) -> None:
        self.loop = loop or IOLoop.current()
        self.listeners: List[Listener] = []

    def listen(self, listener: Listener) -> None:
        self.listeners.append(listener)

    def publish(self, change: Change) -> None:
        """Any thread: the IOLoop's add_callback is the only thread-safe door into it."""
        self.loop.add_callback(self.fire, change)

    def fire(self, change: Change) -> None:
        """The IOLoop thread: every listener hears the change, whatever another one does."""
        for listener in list(self.listeners):
            try:
                listener(change)
            except Exception:  # one listener's fault must not keep the change from the others
                log.exception("a listener failed on a %s change", change.event)
