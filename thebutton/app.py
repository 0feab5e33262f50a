"""make_app: the Tornado Application, built only from what it is given.

The routes: the pages and their assets (thebutton/pages.py), the feed (thebutton/feed.py),
the JSON API (thebutton/api.py, thebutton/history.py), the devices and their hooks
(thebutton/devices.py) and /metrics. Changes reach the feed
through the change path that websocketserver.py wires, not through the handlers.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Dict, Optional

from thebutton.api import (
    AuthHandler,
    CountHandler,
    HealthHandler,
    PressHandler,
    ScreenCommandHandler,
    ScreensHandler,
    Throttle,
    UndoHandler,
)
from thebutton.devices import DeviceHandler, DevicesHandler, HookHandler
from thebutton.feed import MAX_CLIENT_MESSAGE, Feed, FeedSocket
from thebutton.history import Exports, HistoryCsvHandler, HistoryHandler, LeaderboardHandler, RoundsHandler
from thebutton.hosts import HostRule
from thebutton.metrics import Metrics, MetricsHandler
from thebutton.pages import CountdownHandler, PageHandler, StaticHandler, icon_routes
from thebutton.store import Store
from thebutton.web import Application, DefaultHandler


def make_app(
    store: Store,
    feed: Feed,
    metrics: Metrics,
    root: str,
    token: Optional[str] = None,
    health: Optional[Callable[[], Dict[str, Any]]] = None,
    throttle: Optional[Throttle] = None,
    hosts: Optional[HostRule] = None,
    lang: str = "auto",
) -> Application:
    """The application of one server.

    ``root`` holds the templates (default.html, admin.html, history.html) and static/;
    ``health`` is the press source's health() (None: no press source); ``token`` the
    admin token (None: the write API is off); ``hosts`` the names it answers to (default:
    the LAN's and this machine's, thebutton/hosts.py); ``lang`` the pages' language (a code
    of thebutton/languages.py, or auto: each browser's).
    """
    if health is None:
        health = no_button
    if hosts is None:
        hosts = HostRule()
    static_path = os.path.join(root, "static")
    api = dict(store=store, feed=feed, token=token, throttle=throttle or Throttle())
    return Application(
        [
            (r"/", CountdownHandler, dict(feed=feed, template="default.html", lang=lang)),
            *icon_routes(static_path),
            (r"/websocket", FeedSocket, dict(feed=feed, hosts=hosts)),
            (r"/api/count", CountHandler, api),
            (r"/api/press", PressHandler, api),
            (r"/api/undo", UndoHandler, api),
            (r"/api/auth", AuthHandler, api),
            (r"/api/screens", ScreensHandler, api),
            (r"/api/screens/reload", ScreenCommandHandler, dict(api, command="reload")),
            (r"/api/screens/identify", ScreenCommandHandler, dict(api, command="identify")),
            (r"/api/devices", DevicesHandler, api),
            (r"/api/devices/([^/]+)", DeviceHandler, api),
            (r"/hook/([^/]*)", HookHandler, api),
            (r"/healthz", HealthHandler, dict(feed=feed, health=health, store=store)),
            (r"/metrics", MetricsHandler, dict(metrics=metrics)),
            (r"/api/history", HistoryHandler, dict(store=store)),
            (r"/api/history\.csv", HistoryCsvHandler, dict(store=store, exports=Exports())),
            (r"/api/rounds", RoundsHandler, dict(store=store)),
            (r"/api/leaderboard", LeaderboardHandler, dict(store=store)),
            (r"/admin", PageHandler, dict(feed=feed, template="admin.html", lang=lang)),
            (r"/history", PageHandler, dict(feed=feed, template="history.html", lang=lang)),
        ],
        template_path=root,
        static_path=static_path,
        static_handler_class=StaticHandler,
        default_handler_class=DefaultHandler,
        websocket_max_message_size=MAX_CLIENT_MESSAGE,
        hosts=hosts,
    )


def no_button() -> Dict[str, Any]:
    return {"kind": "none", "ok": True}
