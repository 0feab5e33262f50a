"""Prometheus metrics at /metrics: the count, the viewers, the presses and how long commits take.

Each application gets its own ``Metrics`` with its own registry, so two apps in one
process (tests, for one) never share a figure. Gauges of what is true now (count, goal,
viewers, button up) are read at scrape time; the press counter and the commit-time
histogram are fed by ``on_change``, a listener on the change path (IOLoop thread).
"""
from __future__ import annotations

import functools
from typing import Callable, Optional

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from thebutton.store import Change
from thebutton.web import BaseHandler

# Seconds: an SQLite commit with its fsync is around a millisecond; Redis across a LAN a few.
STORE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """The figures of one application. ``feed`` is its Feed; ``health`` the button's health()."""

    def __init__(self, feed, health: Optional[Callable[[], dict]] = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.feed = feed
        self.health = health or (lambda: {"ok": True})
        r = self.registry
        Gauge("the_button_remaining", "Presses left to the goal (the count on the page)", registry=r).set_function(
            lambda: self.feed.state.count)
        Gauge("the_button_goal", "The goal of the current round", registry=r).set_function(
            lambda: self.feed.state.goal)
        Gauge("the_button_viewers", "Open WebSocket viewers on this server", registry=r).set_function(
            lambda: len(self.feed.waiters))
        Gauge("the_button_button_up", "1 when the press source (GPIO, keyboard) works, else 0",
              registry=r).set_function(self.button_up)
        screens = Gauge("the_button_screens", "Screens this server lists: connected now, or gone in the last 7 days",
                        ["state"], registry=r)
        for state in ("connected", "disconnected"):
            screens.labels(state=state).set_function(functools.partial(self.screens, state))
        self.presses = Counter("the_button_presses", "Presses stored through this server since it started",
                               ["source"], registry=r)
        self.store_seconds = Histogram("the_button_store_seconds", "Seconds a write took to commit",
                                       buckets=STORE_BUCKETS, registry=r)

    def screens(self, state: str) -> float:
        return float(self.feed.screens.counts()[state])

    def button_up(self) -> float:
        try:
            return 1.0 if self.health().get("ok") else 0.0
        except Exception:  # a health check that fails is a button that is not up
            return 0.0

    def on_change(self, change: Change) -> None:
        """The listener on the change path (IOLoop thread): count our own presses and commit times."""
        if not change.local:
            return  # made on another server sharing the store: its own /metrics counts it
        if change.event == "press":
            self.presses.labels(source=change.source or "unknown").inc()
        if change.took is not None:
            self.store_seconds.observe(change.took)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class MetricsHandler(BaseHandler):
    """GET /metrics: the Prometheus text format. Other methods: 405 in JSON, like every route."""

    def initialize(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def get(self) -> None:
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(self.metrics.exposition())
