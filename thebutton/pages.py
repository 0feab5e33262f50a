"""The pages: the countdown (/), /admin, /history, and their static files.

Every page is rendered with the limits of thebutton/validation.py (``limits``), so that a
page's fields and scripts use the server's numbers, not copies of them.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from typing import Any, Dict, List, Optional

import tornado.escape
import tornado.web

from thebutton.feed import Feed
from thebutton.languages import CATALOGUES, Words, choose
from thebutton.validation import page_limits
from thebutton.web import ApiError, BaseHandler


def page_version(template_path: str, static_path: str) -> str:
    """A short hash of the countdown page and its assets: open pages reload when it changes."""
    digest = hashlib.sha256()
    files = [os.path.join(template_path, "default.html")]
    for folder in (static_path, CATALOGUES):  # new words reload the pages too
        for root, _dirs, names in sorted(os.walk(folder)):
            files.extend(os.path.join(root, name) for name in sorted(names))
    for path in files:
        with open(path, "rb") as f:
            digest.update(f.read())
    return digest.hexdigest()[:12]


# A Host header that may go into the CSP as it is: a name or an IPv4 or [IPv6] address, a port.
CSP_HOST = re.compile(r"(?:[A-Za-z0-9_.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")


class SecurityHeaders(tornado.web.RequestHandler):
    """Headers for everything a browser renders: our own scripts, styles and sounds only."""

    def set_default_headers(self) -> None:
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Referrer-Policy", "no-referrer")
        # The Host is the client's: only a plain host[:port] goes into the policy. Another
        # one (spaces or ";" would add directives, a control character would make
        # set_header raise before any handler runs) gets 'self' alone, which CSP 3
        # browsers also apply to ws: and wss: on this host.
        host = self.request.host
        sockets = f" ws://{host} wss://{host}" if CSP_HOST.fullmatch(host) else ""
        self.set_header(
            "Content-Security-Policy",
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            f"media-src 'self' data: blob:; connect-src 'self'{sockets}; "
            "object-src 'none'; base-uri 'none'; form-action 'none'",
        )


class PageHandler(SecurityHeaders, BaseHandler):
    """A page from a template; its data come from the API and the feed. /: the countdown."""

    def initialize(self, feed: Feed, template: str, lang: str = "auto") -> None:
        self.feed = feed
        self.template = template
        self.lang = lang  # --lang: a language code, or auto (the browser's Accept-Language)

    def page_values(self) -> Dict[str, Any]:
        limits = page_limits()
        t = Words(choose(self.lang, self.request.headers.get("Accept-Language")))
        state = self.feed.state
        # The server's own default heading ("Countdown to 20") is said in the page's language;
        # a title someone set is theirs and stays as it is.
        title = self.feed.heading() if state.title or self.feed.title else t("page.default_title", goal=state.goal)
        return {"title": title, "limits": limits, "limits_json": json.dumps(limits), "t": t, "lang": t.code,
                "words_json": json.dumps(t.client(self.template), ensure_ascii=False), "t_html": html_words(t)}

    def get(self) -> None:
        self.set_header("Cache-Control", "no-cache")
        if self.lang == "auto":
            self.set_header("Vary", "Accept-Language")
        if self.template != "default.html":
            self.set_header("X-Frame-Options", "DENY")  # no other site frames the admin page
        self.render(self.template, **self.page_values())


def html_words(t: Words) -> Any:
    """t_html(key, name=markup): the text of key, escaped, with each {name} replaced by markup of ours."""
    def t_html(key: str, **markup: str) -> str:
        parts = re.split(r"(\{[a-z_]+\})", t.words[key])
        return "".join(markup.get(p[1:-1], p) if p.startswith("{") and p.endswith("}") else
                       tornado.escape.xhtml_escape(p) for p in parts)
    return t_html


class CountdownHandler(PageHandler):
    """GET /: the countdown page, with the current count already in the HTML."""

    def page_values(self) -> Dict[str, Any]:
        state = self.feed.state
        values = super().page_values()
        values.update(state=state, version=self.feed.version, done=(state.goal - state.count) / state.goal,
                      beat=self.feed.ping_interval, night=self.feed.night)
        return values


class StaticHandler(SecurityHeaders, BaseHandler, tornado.web.StaticFileHandler):
    """The page's assets. A path that is not a file of static/ is 404 (or 400), never a 500.

    StaticFileHandler's own refusals become the one error shape: 403 (outside static/, a
    folder; Tornado 6.6 says so already in get_absolute_path) is 404, and a Range past
    the end (416, which it answers as an empty text/plain) is 416 in words.
    """

    async def get(self, path: str, include_body: bool = True) -> None:
        try:
            await super().get(path, include_body)
        except tornado.web.HTTPError as e:
            if e.status_code == 403:  # outside static/, or a folder: nothing to show here
                raise ApiError(404, "no such file") from None
            raise
        if self.get_status() == 416:
            raise ApiError(416, "range not satisfiable", {"Content-Range": f"bytes */{self.get_content_size()}"})

    async def head(self, *args: str, **kwargs: str) -> None:
        await self.get(args[0], include_body=False)  # the one path argument; reads no file

    def validate_absolute_path(self, root: str, absolute_path: str) -> Optional[str]:
        if "\x00" in absolute_path:  # the OS refuses the name: not a file of ours
            raise ApiError(400, "bad path")
        return super().validate_absolute_path(root, absolute_path)


def icon_routes(static_path: str) -> List[Any]:
    """The icons browsers ask for at the top level, from static/."""
    icons = r"/(favicon\.ico|apple-touch-icon\.png|apple-touch-icon-precomposed\.png)"
    return [(icons, StaticHandler, {"path": static_path})]
