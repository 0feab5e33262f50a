"""Webhooks: after each committed change, a JSON POST to each --webhook URL (Slack, Teams, ...).

A listener on the change path (``thebutton.changes.Changes``). ``on_change`` runs
on the IOLoop and only appends to a bounded queue per URL; one delivery task per URL
sends that queue in order with Tornado's AsyncHTTPClient, retrying refusals, timeouts,
5xx and 429 with exponential backoff. A dead or hanging receiver only ever holds up its
own queue: never a press, the feed, or another URL.

URLs may carry secrets (Slack's path token, user:password@), so logs name a URL only as
scheme://host/….
"""
from __future__ import annotations

import asyncio
import collections
import email.utils
import json
import logging
import time
from typing import Deque, Iterator, List, Optional, Sequence, Tuple
from urllib.parse import urlsplit

import tornado.util
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.ioloop import IOLoop
from tornado.locks import Event

from thebutton.languages import DEFAULT, Words
from thebutton.store import Change

log = logging.getLogger("button.webhooks")

MAX_QUEUE = 1000  # messages waiting per URL; when full the oldest goes


def parse_urls(value: str) -> List[str]:
    """The URLs of a comma-separated --webhook value; ValueError naming the bad one (redacted)."""
    urls = [part.strip() for part in value.split(",") if part.strip()]
    for url in urls:
        try:
            parts = urlsplit(url)
            _ = parts.port  # raises ValueError for a bad port
        except ValueError:
            raise ValueError(f"--webhook: not a URL: {redact(url)}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"--webhook URLs must be http:// or https:// with a host, not {redact(url)}")
    return urls


def redact(url: str) -> str:
    """scheme://host[:port]/… : what a log may say of a URL that could hold a token or password."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(a malformed URL)"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme or '?'}://{host}{port}/…"


def sentence(change: Change, words: Optional[Words] = None) -> str:
    """The change as a sentence for people, e.g. "Acme Corp! 7 left of 20" or "Goal reached! 20 of 20".

    In the language of ``words`` (the catalogue of --lang; English when None).
    """
    t = words or Words(DEFAULT)
    state = change.state
    count, goal = state.count, state.goal
    if change.event == "press":
        if count == 0:
            text = t("webhook.goal_reached", goal=goal)
        elif count == goal:  # a press at 0 wraps to the goal
            text = t("webhook.new_round", goal=goal)
        else:
            text = t("webhook.left", count=count, goal=goal)
        text = t("webhook.note", note=change.note, text=text) if change.note else text
        who = change.by or change.device  # a device's press without a name says which device
        return t("webhook.by", by=who, text=text) if who else text
    if change.event == "undo":
        return t("webhook.undo", count=count, goal=goal)
    if change.event == "round":
        return t("webhook.new_round", goal=goal)
    return t("webhook.set", count=count, goal=goal)


def slack_escape(text: str) -> str:
    # Slack reads <...> as links and mentions (<!channel>); a note must stay plain text.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def payload(change: Change, words: Optional[Words] = None) -> bytes:
    """The JSON body every receiver gets."""
    state = change.state
    return json.dumps({
        "event": change.event,
        "count": state.count,
        "goal": state.goal,
        "presses": state.presses,
        "note": change.note,
        "by": change.by,
        "device": change.device,
        "text": slack_escape(sentence(change, words)),
    }).encode()


class Retry(Exception):
    """A delivery failed in a way worth trying again (refused, timeout, 5xx, 429)."""

    def __init__(self, reason: str, wait: Optional[float] = None) -> None:
        super().__init__(reason)
        self.wait = wait  # seconds the receiver asked for (Retry-After), if any


class Target:
    """One URL: its queue and its delivery task. Used on the IOLoop thread only."""

    def __init__(self, url: str, hooks: Webhooks) -> None:
        self.url = url
        self.shown = redact(url)
        self.hooks = hooks
        # (body, when it was queued): the give-up deadline counts from then.
        self.queue: Deque[Tuple[bytes, float]] = collections.deque()
        self.wake = Event()
        self.dropped = 0  # dropped for a full queue since the last report
        self.started = False
        self.delivered = 0
        self.given_up = 0

    def put(self, body: bytes) -> None:
        if len(self.queue) >= self.hooks.max_queue:
            self.queue.popleft()
            if not self.dropped:  # once per burst; the total comes when it is over
                log.warning("webhook %s: queue full (%d), dropping the oldest messages",
                            self.shown, self.hooks.max_queue)
            self.dropped += 1
        self.queue.append((body, time.monotonic()))
        self.wake.set()
        if not self.started:
            self.started = True
            IOLoop.current().spawn_callback(self.run)

    def report_dropped(self) -> None:
        if self.dropped:
            log.warning("webhook %s: %d messages were dropped while its queue was full", self.shown, self.dropped)
            self.dropped = 0

    async def run(self) -> None:
        """Send the queue in order, one message at a time, until the hooks close."""
        while not self.hooks.closed:
            if not self.queue:
                self.report_dropped()
                self.wake.clear()
                await self.wake.wait()
                continue
            body, queued = self.queue[0]
            ok = await self.deliver(body, queued)
            if self.queue and self.queue[0][0] is body:  # not pushed out meanwhile by a full queue
                self.queue.popleft()
            if ok:
                self.delivered += 1
                self.report_dropped()

    async def deliver(self, body: bytes, queued: float) -> bool:
        """Try one message until it is accepted, refused for good, or too old; True when accepted."""
        hooks = self.hooks
        delays = hooks.retry_delays()
        while not hooks.closed:
            try:
                await self.post(body)
                return True
            except Retry as e:
                # The clock counts from the queueing, so time spent in requests and behind
                # other messages counts too; each wait lasts at least its delay, so the schedule
                # runs out only once the clock has, too.
                left = queued + hooks.give_up_after - time.monotonic()
                delay = next(delays, None)
                if left <= 0 or delay is None:
                    self.give_up(str(e))
                    return False
                # A Retry-After may ask for longer than the backoff (up to max_delay), never shorter.
                wait = min(max(delay, e.wait or 0.0), hooks.max_delay, left)
                log.info("webhook %s: %s; retrying in %.1f s", self.shown, e, wait)
                await hooks.sleep(wait)
            except HTTPClientError as e:
                log.warning("webhook %s refused a message (HTTP %d): dropped", self.shown, e.code)
                return False
        return False

    def give_up(self, reason: str) -> None:
        # The receiver has been failing for give_up_after: what waited as long goes too.
        now = time.monotonic()
        stale = 1
        while len(self.queue) > 1 and self.queue[1][1] + self.hooks.give_up_after <= now:
            del self.queue[1]
            stale += 1
        self.given_up += stale
        log.error("webhook %s: gave up on %d message(s) after %.0f s of failures (%s)",
                  self.shown, stale, self.hooks.give_up_after, reason)

    async def post(self, body: bytes) -> None:
        request = HTTPRequest(
            self.url, method="POST", body=body,
            headers={"Content-Type": "application/json", "User-Agent": "the-button"},
            connect_timeout=self.hooks.connect_timeout, request_timeout=self.hooks.request_timeout,
            follow_redirects=False,
        )
        try:
            # raise_error=False returns only answers with a status; a timeout still raises.
            response = await self.hooks.client.fetch(request, raise_error=False)
        except Exception as e:  # refused, reset, timeout, DNS, TLS: the connection never gave an answer
            raise Retry(self.scrub(f"{type(e).__name__}: {e}")) from None
        code = response.code
        if 200 <= code < 300:
            return
        if code == 429 or code >= 500:
            raise Retry(f"HTTP {code}", retry_after(response.headers.get("Retry-After")))
        raise HTTPClientError(code, response=response)

    def scrub(self, text: str) -> str:
        return text.replace(self.url, self.shown)


def retry_delays(first: float, most: float, give_up_after: float) -> Iterator[float]:
    """The backoff waits between attempts: first, doubling up to most, until they add up to give_up_after.

    The last wait is cut short so that the waits add up to give_up_after exactly.
    """
    delay, total = min(first, most), 0.0
    while total < give_up_after:
        wait = min(delay, give_up_after - total)
        yield wait
        total += wait
        delay = min(delay * 2, most)


def retry_after(value: Optional[str]) -> Optional[float]:
    """Seconds from a Retry-After header (seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class Webhooks:
    """POSTs each committed change to every URL, in order per URL, without ever blocking.

    Failures are retried with backoff from ``first_delay`` doubling to ``max_delay``,
    until a message has waited ``give_up_after`` seconds; then it is logged and dropped.
    A 4xx other than 429 drops the message at once. Each URL queues at most
    ``max_queue`` messages; past that the oldest go (logged once per burst).
    """

    def __init__(self, urls: Sequence[str], max_queue: int = MAX_QUEUE, connect_timeout: float = 5.0,
                 request_timeout: float = 10.0, first_delay: float = 1.0, max_delay: float = 60.0,
                 give_up_after: float = 300.0, words: Optional[Words] = None) -> None:
        self.words = words or Words(DEFAULT)  # the sentences' language (--lang; auto is English)
        self.max_queue = max_queue
        self.connect_timeout = connect_timeout
        self.request_timeout = request_timeout
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.give_up_after = give_up_after
        self.closed = False
        self.stopped = Event()  # set by close: cuts short every backoff wait
        self.targets = [Target(url, self) for url in urls]
        self._client: Optional[AsyncHTTPClient] = None

    def retry_delays(self) -> Iterator[float]:
        """The backoff schedule of one message (see ``retry_delays``)."""
        return retry_delays(self.first_delay, self.max_delay, self.give_up_after)

    @property
    def client(self) -> AsyncHTTPClient:
        if self._client is None:
            # Our own client, so that close() closes only ours, with a slot per URL: one
            # hanging receiver cannot hold a connection another URL needs.
            self._client = AsyncHTTPClient(force_instance=True, max_clients=max(10, len(self.targets)))
        return self._client

    def on_change(self, change: Change) -> None:
        """The listener on the change path (IOLoop thread): queue the message for every URL.

        Only changes made through this server: with a shared store every server hears every
        change, and each change should reach a chat once, from the server that made it.
        """
        if self.closed or not change.local or change.event == "live":
            return  # "live": the store out of reach or back, which is no news for a chat
        body = payload(change, self.words)
        for target in self.targets:
            target.put(body)

    async def sleep(self, seconds: float) -> None:
        try:
            await self.stopped.wait(timeout=IOLoop.current().time() + seconds)
        except (tornado.util.TimeoutError, asyncio.TimeoutError):
            pass

    def close(self) -> None:
        """Stop delivering; what is still queued is dropped (with a log line if anything was)."""
        self.closed = True
        self.stopped.set()
        for target in self.targets:
            target.wake.set()
            if target.queue:
                log.warning("webhook %s: %d message(s) not delivered at stop", target.shown, len(target.queue))
        if self._client is not None:
            self._client.close()
