"""Webhooks against a local HTTP receiver: the body, retries, order, a hanging receiver, a dead URL, secrets."""
import http.server
import json
import logging
import queue
import threading
import time

import pytest
import tornado.web
from tornado.httpserver import HTTPServer
from tornado.locks import Condition, Event
from tornado.testing import bind_unused_port, gen_test

from tests.conftest import TOKEN as PROCESS_TOKEN
from tests.conftest import free_port, until
from tests.test_server import AUTH, ServerTestCase
from thebutton.store import Change, State
from thebutton.webhooks import Webhooks, parse_urls, redact, retry_delays, sentence


class Receiver:
    """A webhook receiver we control: answers the codes queued in ``codes`` (then 200), or hangs.

    With ``hang`` it hangs on every request; with ``hang_first = n`` on the first n only.
    """

    def __init__(self, hang=False):
        self.codes = []
        self.attempts = []  # every body received, answered or not
        self.accepted = []  # bodies answered 2xx
        self.hang = hang
        self.hang_first = 0
        self.sock, self.port = bind_unused_port()
        self.server = None

    def start(self):
        """Serve on the current IOLoop (Tornado 6.1 binds a Condition to the loop current at its birth)."""
        self.changed = Condition()
        self.never = Event()
        receiver = self

        class Hook(tornado.web.RequestHandler):
            async def post(self):
                body = json.loads(self.request.body)
                receiver.attempts.append(body)
                receiver.changed.notify_all()
                if receiver.hang or len(receiver.attempts) <= receiver.hang_first:
                    await receiver.never.wait()  # accepts, never answers (until the receiver stops)
                    return
                code = receiver.codes.pop(0) if receiver.codes else 200
                if code == 200:
                    receiver.accepted.append(body)
                    receiver.changed.notify_all()
                self.set_status(code)
                if code == 429:
                    self.set_header("Retry-After", "0")
                self.finish("ok")

        self.server = HTTPServer(tornado.web.Application([(r"/.*", Hook)]))
        self.server.add_sockets([self.sock])

    def url(self, path="/hook"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    async def wait(self, predicate, timeout=10.0):
        """Wait (on the receiver's own notifications) until predicate() holds."""
        from tornado.ioloop import IOLoop
        deadline = IOLoop.current().time() + timeout
        while not predicate():
            if not await self.changed.wait(timeout=deadline):
                raise AssertionError("receiver condition not met in %ss: %r" % (timeout, self.attempts))

    def stop(self):
        if self.server is not None:
            self.never.set()
            self.server.stop()


class Recorder(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


class WebhookTestCase(ServerTestCase):
    hang = False
    options = {}

    def setUp(self):
        self.receiver = Receiver(hang=self.hang)
        self.recorder = Recorder()
        logging.getLogger("button").addHandler(self.recorder)
        logging.getLogger("button").setLevel(logging.DEBUG)
        super().setUp()
        self.receiver.start()

    def urls(self):
        return [self.receiver.url()]

    def get_app(self):
        app = super().get_app()
        options = dict(first_delay=0.02, max_delay=0.1, give_up_after=60.0)
        options.update(self.options)
        self.hooks = Webhooks(self.urls(), **options)
        self.changes.listen(self.hooks.on_change)
        return app

    def tearDown(self):
        self.hooks.close()
        self.receiver.stop()
        super().tearDown()
        logging.getLogger("button").removeHandler(self.recorder)

    async def press(self):
        response = await self.http_client.fetch(self.get_url("/api/press"), method="POST", body=b"", headers=AUTH)
        return json.loads(response.body)


class DeliveryTest(WebhookTestCase):
    @gen_test
    async def test_press_is_posted_as_json_with_a_sentence(self):
        """A press reaches the receiver as {"event", "count", "goal", "presses", "note", "text"}."""
        await self.press()
        await self.receiver.wait(lambda: self.receiver.accepted)
        assert self.receiver.accepted == [
            {"event": "press", "count": 2, "goal": 3, "presses": 1, "note": None, "by": None, "device": None, "text": "2 left of 3"}]

    @gen_test
    async def test_another_servers_change_is_not_posted(self):
        """With a shared store every server hears every change; only the one that made it posts it."""
        import dataclasses
        other = dataclasses.replace(Change("press", self.repository.state(), source="gpio"), local=False)
        self.changes.fire(other)
        await self.press()
        await self.receiver.wait(lambda: self.receiver.accepted)
        assert [body["count"] for body in self.receiver.accepted] == [2]

    @gen_test
    async def test_note_leads_the_sentence(self):
        """A press with a note is posted with the note and a sentence that starts with it."""
        await self.http_client.fetch(self.get_url("/api/press"), method="POST", body=b'{"note": "Acme Corp"}',
                                     headers=AUTH)
        await self.receiver.wait(lambda: self.receiver.accepted)
        body = self.receiver.accepted[0]
        assert (body["note"], body["text"]) == ("Acme Corp", "Acme Corp! 2 left of 3")

    @gen_test
    async def test_who_pressed_is_named(self):
        """A press with "by" is posted with it, and the sentence names them first."""
        await self.http_client.fetch(self.get_url("/api/press"), method="POST",
                                     body=b'{"note": "Acme Corp", "by": "Ana"}', headers=AUTH)
        await self.receiver.wait(lambda: self.receiver.accepted)
        body = self.receiver.accepted[0]
        assert (body["by"], body["text"]) == ("Ana", "Ana: Acme Corp! 2 left of 3")

    @gen_test
    async def test_undo_and_set_are_posted(self):
        """Undo and set are posted too, each with its own sentence."""
        await self.press()
        await self.http_client.fetch(self.get_url("/api/undo"), method="POST", body=b"", headers=AUTH)
        await self.http_client.fetch(self.get_url("/api/count"), method="PUT", body=b'{"count": 1}', headers=AUTH)
        await self.receiver.wait(lambda: len(self.receiver.accepted) == 3)
        assert [b["text"] for b in self.receiver.accepted] == ["2 left of 3", "Undo: 3 left of 3", "Set: 1 left of 3"]

    @gen_test
    async def test_retried_after_500s_and_delivered_once(self):
        """500, 503 and 429 are retried with backoff; the message is then accepted exactly once."""
        self.receiver.codes = [500, 503, 429]
        await self.press()
        await self.receiver.wait(lambda: self.receiver.accepted)
        assert len(self.receiver.attempts) == 4
        assert [b["count"] for b in self.receiver.accepted] == [2]
        assert sum("retrying" in line for line in self.recorder.lines) == 3
        await self.press()
        await self.receiver.wait(lambda: len(self.receiver.accepted) == 2)
        assert len(self.receiver.attempts) == 5

    @gen_test
    async def test_order_per_url_is_kept(self):
        """Five quick presses arrive in commit order even when the first one needs retries."""
        self.receiver.codes = [500, 500]
        for _ in range(5):
            await self.press()
        await self.receiver.wait(lambda: len(self.receiver.accepted) == 5)
        assert [b["count"] for b in self.receiver.accepted] == [2, 1, 0, 3, 2]
        assert self.receiver.accepted[2]["text"] == "Goal reached! 3 of 3"

    @gen_test
    async def test_client_error_is_dropped_not_retried(self):
        """A 404 is logged and that message dropped at once; the next one is delivered."""
        self.receiver.codes = [404]
        await self.press()
        await until(lambda: any("HTTP 404" in line for line in self.recorder.lines))
        await self.press()
        await self.receiver.wait(lambda: self.receiver.accepted)
        assert [b["count"] for b in self.receiver.accepted] == [1]
        assert len(self.receiver.attempts) == 2


class TimeoutTest(WebhookTestCase):
    options = dict(request_timeout=0.3)

    @gen_test
    async def test_timeout_is_retried_and_then_delivered_once(self):
        """A receiver that hangs past request_timeout gets the message again, and accepts it exactly once."""
        self.receiver.hang_first = 1
        await self.press()
        await self.receiver.wait(lambda: self.receiver.accepted)
        attempts = [b["count"] for b in self.receiver.attempts]
        assert attempts == [2, 2] and [b["count"] for b in self.receiver.accepted] == [2]
        assert sum("Timeout" in line and "retrying" in line for line in self.recorder.lines) == 1
        await self.press()  # the first message is not sent a third time before the next one
        await self.receiver.wait(lambda: len(self.receiver.accepted) == 2)
        assert [b["count"] for b in self.receiver.attempts] == [2, 2, 1]


class HangingTest(WebhookTestCase):
    hang = True
    options = dict(request_timeout=60.0, max_queue=3)

    def urls(self):
        self.good = Receiver()
        return [self.receiver.url(), self.good.url()]

    def setUp(self):
        super().setUp()
        self.good.start()

    def tearDown(self):
        self.good.stop()
        super().tearDown()

    @gen_test
    async def test_hanging_receiver_delays_neither_the_feed_nor_other_urls(self):
        """With a receiver that accepts and never answers, a press still reaches sockets and other URLs at once."""
        ws = await self.ws_connect()
        await self.read_json(ws)
        await self.press()
        await self.read_json(ws)
        await self.receiver.wait(lambda: self.receiver.attempts)  # now hanging on the first message
        started = time.monotonic()
        await self.press()
        msg = await self.read_json(ws)
        took = time.monotonic() - started
        assert msg["count"] == 1 and took < 0.25, "press to socket took %.3f s" % took
        await self.good.wait(lambda: len(self.good.accepted) == 2)
        assert [b["count"] for b in self.good.accepted] == [2, 1]

    @gen_test
    async def test_queue_is_bounded_and_the_drop_is_logged_once(self):
        """Behind a hanging receiver at most max_queue messages wait; the drop is logged once per burst."""
        await self.press()
        await self.receiver.wait(lambda: self.receiver.attempts)
        for _ in range(10):
            await self.press()
        target = self.hooks.targets[0]
        await until(lambda: self.feed.state.presses == 11)
        assert [json.loads(body)["count"] for body, _ in target.queue] == [2, 1, 0]  # the newest three
        assert sum("queue full" in line for line in self.recorder.lines) == 1
        await self.good.wait(lambda: len(self.good.accepted) == 11)


class DeadUrlTest(WebhookTestCase):
    options = dict(first_delay=0.02, max_delay=0.05, give_up_after=0.5, connect_timeout=1.0)
    secret_path = "/services/T0001/B0002/XXXXsecretXXXX"

    def urls(self):
        self.dead_port = free_port()  # nothing listens there: connections are refused
        return ["http://office:hunter2@127.0.0.1:%d%s" % (self.dead_port, self.secret_path)]

    @gen_test
    async def test_dead_url_is_retried_then_given_up(self):
        """A refused URL is retried with backoff, then given up with a log line; the server goes on."""
        await self.press()
        await until(lambda: any("gave up" in line for line in self.recorder.lines))
        assert sum("retrying" in line for line in self.recorder.lines) >= 3
        target = self.hooks.targets[0]
        await until(lambda: not target.queue)
        assert target.given_up == 1 and target.delivered == 0
        assert (await self.press())["count"] == 1

    @gen_test
    async def test_secrets_are_not_logged(self):
        """The log names the URL as scheme://host:port/… only: no password, no path token."""
        await self.press()
        await until(lambda: any("gave up" in line for line in self.recorder.lines))
        text = "\n".join(self.recorder.lines)
        assert "http://127.0.0.1:%d/…" % self.dead_port in text
        assert "hunter2" not in text and "XXXXsecretXXXX" not in text and "office" not in text


def change(event, count, goal=20, note=None, by=None):
    return Change(event, State(count=count, goal=goal, presses=goal - count), note=note, by=by, source="api")


def test_sentences():
    """Each change reads as a sentence people understand in Slack or Teams."""
    assert sentence(change("press", 7, note="Acme Corp")) == "Acme Corp! 7 left of 20"
    assert sentence(change("press", 7)) == "7 left of 20"
    assert sentence(change("press", 7, note="Acme Corp", by="Ana")) == "Ana: Acme Corp! 7 left of 20"
    assert sentence(change("press", 0, by="Ben")) == "Ben: Goal reached! 20 of 20"
    assert sentence(change("press", 0)) == "Goal reached! 20 of 20"
    assert sentence(change("press", 0, note="Big deal")) == "Big deal! Goal reached! 20 of 20"
    assert sentence(change("undo", 8)) == "Undo: 8 left of 20"
    assert sentence(change("set", 8)) == "Set: 8 left of 20"
    assert sentence(change("round", 20)) == "New round: 20 to go"


def test_press_that_wraps_is_a_new_round():
    """A press at 0 wraps to the goal and reads as a new round, not as "20 left of 20"."""
    assert sentence(change("press", 20)) == "New round: 20 to go"
    assert sentence(change("press", 20, note="Acme Corp")) == "Acme Corp! New round: 20 to go"
    assert sentence(change("press", 1, goal=1)) == "New round: 1 to go"
    assert sentence(change("press", 19)) == "19 left of 20"


def test_default_retries_last_over_a_minute_doubling_to_the_cap():
    """By default a failing message is retried for at least a minute, each wait double the last up to the cap."""
    hooks = Webhooks(["http://127.0.0.1:9/hook"])
    waits = list(hooks.retry_delays())
    assert sum(waits) >= 60
    assert waits[0] == hooks.first_delay <= 5
    cap = hooks.max_delay
    assert cap in waits and max(waits) == cap
    for before, after in zip(waits, waits[1:-1]):  # the last wait may be cut short at the end
        assert after == min(before * 2, cap)


def test_retry_delays_double_to_the_cap_and_end_with_the_window():
    """The backoff waits double up to the cap and add up to give_up_after, the last one cut short."""
    assert list(retry_delays(1, 4, 20)) == [1, 2, 4, 4, 4, 4, 1]
    assert list(retry_delays(0.5, 60, 3.5)) == [0.5, 1, 2]
    assert list(retry_delays(1, 60, 0)) == []


def test_note_cannot_ping_a_slack_channel():
    """A note's <, > and & reach Slack as text, not as a mention or a link."""
    from thebutton.webhooks import payload
    body = json.loads(payload(change("press", 5, note="<!channel> & co")))
    assert body["text"] == "&lt;!channel&gt; &amp; co! 5 left of 20"
    assert body["note"] == "<!channel> & co"


def test_parse_urls_and_redact():
    """--webhook takes comma-separated http(s) URLs; a bad one is an error that hides its secrets."""
    assert parse_urls(" http://a/x , https://b:8443/y ") == ["http://a/x", "https://b:8443/y"]
    assert parse_urls("") == []
    assert redact("https://user:pw@hooks.slack.com/services/T/B/SECRET") == "https://hooks.slack.com/…"
    for bad in ("ftp://u:pw@host/SECRET", "hooks.slack.com/SECRET", "http://u:pw@h:99999/SECRET"):
        with pytest.raises(ValueError) as e:
            parse_urls(bad)
        assert "SECRET" not in str(e.value) and "pw" not in str(e.value)


def test_server_process_posts_to_webhook(server_factory):
    """python websocketserver.py --webhook=URL posts each press to that URL."""
    received = queue.Queue()

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.put((self.headers["Content-Type"], json.loads(body)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        url = "http://127.0.0.1:%d/hook" % httpd.server_address[1]
        server = server_factory("--button=none", "--admin-token=" + PROCESS_TOKEN, "--goal=20", "--webhook=" + url)
        assert server.request("POST", "/api/press")[0] == 200
        content_type, body = received.get(timeout=10)
        assert content_type == "application/json"
        assert (body["event"], body["count"], body["text"]) == ("press", 19, "19 left of 20")
    finally:
        httpd.shutdown()
        httpd.server_close()
