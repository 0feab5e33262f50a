"""/metrics: the Prometheus names and values, per-application registries, 405 for other methods."""
import dataclasses
import json

from prometheus_client.parser import text_string_to_metric_families
from tornado.testing import ExpectLog, gen_test

from tests.conftest import TOKEN as PROCESS_TOKEN
from tests.conftest import build_app, until
from tests.test_server import AUTH, ServerTestCase
from thebutton.metrics import Metrics
from thebutton.store import Change, State


def samples(text):
    """{(name, frozenset(labels)): value} of a Prometheus text exposition."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(text, name, **labels):
    return samples(text).get((name, frozenset(labels.items())))


class MetricsTest(ServerTestCase):

    def scrape(self):
        response = self.fetch("/metrics")
        assert response.code == 200
        return response

    def test_names_and_values_at_start(self):
        """A fresh server exposes count, goal, viewers, button_up and no presses yet, as Prometheus text."""
        response = self.scrape()
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        text = response.body.decode()
        assert value(text, "the_button_remaining") == 3
        assert value(text, "the_button_goal") == 3
        assert value(text, "the_button_viewers") == 0
        assert value(text, "the_button_button_up") == 1
        assert "# TYPE the_button_presses_total counter" in text
        assert "# TYPE the_button_store_seconds histogram" in text
        assert value(text, "the_button_store_seconds_count") == 0

    @gen_test
    async def test_values_after_presses_and_viewers(self):
        """After presses from two sources and with two viewers open, every figure follows."""
        sockets = [await self.ws_connect() for _ in range(2)]
        for ws in sockets:
            await self.read_json(ws)
        for _ in range(2):
            await self.http_client.fetch(self.get_url("/api/press"), method="POST", body=b"", headers=AUTH)
        await self.io_loop.run_in_executor(None, lambda: self.repository.press(source="gpio"))
        await self.read_json(sockets[0])
        await until(lambda: self.feed.state.count == 0)
        text = (await self.http_client.fetch(self.get_url("/metrics"))).body.decode()
        assert value(text, "the_button_remaining") == 0
        assert value(text, "the_button_viewers") == 2
        assert value(text, "the_button_presses_total", source="api") == 2
        assert value(text, "the_button_presses_total", source="gpio") == 1
        assert value(text, "the_button_store_seconds_count") == 3
        assert value(text, "the_button_store_seconds_sum") > 0
        await self.http_client.fetch(self.get_url("/api/undo"), method="POST", body=b"", headers=AUTH)
        await until(lambda: self.feed.state.count == 1)
        text = (await self.http_client.fetch(self.get_url("/metrics"))).body.decode()
        assert value(text, "the_button_remaining") == 1
        assert value(text, "the_button_presses_total", source="api") == 2  # a counter never goes down
        assert value(text, "the_button_store_seconds_count") == 4

    def test_button_down(self):
        """the_button_button_up is 0 when the press source is not working."""
        self.health_value = {"kind": "gpio", "ok": False, "error": "thread died"}
        assert value(self.scrape().body.decode(), "the_button_button_up") == 0

    def test_presses_from_other_servers_are_not_counted(self):
        """A change another server made (local False) moves the gauges but not this server's counter."""
        state = State(count=1, goal=3, presses=2, serial=self.feed.state.serial + 1)
        change = Change("press", state, source="api", local=False, took=None)
        self.changes.fire(change)
        self.changes.fire(dataclasses.replace(change, local=True, took=0.002,
                                              state=dataclasses.replace(state, count=0, serial=state.serial + 1)))
        text = self.scrape().body.decode()
        assert value(text, "the_button_remaining") == 0
        assert value(text, "the_button_presses_total", source="api") == 1
        assert value(text, "the_button_store_seconds_count") == 1

    def test_other_methods_are_405_in_json(self):
        """POST, PUT and DELETE on /metrics are 405 with a JSON error."""
        for method in ("POST", "PUT", "DELETE"):
            with ExpectLog("tornado.access", ".*", required=False):
                code, body = self.api(method, "/metrics", b"" if method != "DELETE" else None)
            assert code == 405 and "not allowed" in body["error"]

    def test_each_app_has_its_own_registry(self):
        """Two applications in one process never share a figure."""
        from thebutton.feed import Feed
        other_feed = Feed(State(count=7, goal=9, presses=2))
        other = Metrics(other_feed)
        other.on_change(Change("press", other_feed.state, source="api", took=0.001))
        build_app(self.repository, other_feed, other)
        mine = self.scrape().body.decode()
        theirs = other.exposition().decode()
        assert value(mine, "the_button_remaining") == 3 and value(theirs, "the_button_remaining") == 7
        assert value(mine, "the_button_presses_total", source="api") is None
        assert value(theirs, "the_button_presses_total", source="api") == 1


def test_server_process_counts_presses(server_factory):
    """python websocketserver.py serves /metrics and counts the presses it stores, by source."""
    import urllib.request
    server = server_factory("--button=none", "--admin-token=" + PROCESS_TOKEN, "--goal=20")
    for _ in range(3):
        assert server.request("POST", "/api/press")[0] == 200
    with urllib.request.urlopen(server.url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    assert value(text, "the_button_remaining") == 17
    assert value(text, "the_button_presses_total", source="api") == 3
    assert value(text, "the_button_button_up") == 1
    assert json.loads(urllib.request.urlopen(server.url + "/api/count", timeout=10).read())["count"] == 17


def test_promtool_finds_nothing_to_fix(server_factory):
    """Prometheus' own linter (Debian's promtool) passes our exposition, with every series filled in."""
    import subprocess
    import urllib.request
    server = server_factory("--button=none", "--admin-token=" + PROCESS_TOKEN)
    assert server.request("POST", "/api/press")[0] == 200
    assert server.request("POST", "/api/undo")[0] == 200
    with urllib.request.urlopen(server.url + "/metrics", timeout=10) as r:
        text = r.read()
    assert b"the_button_store_seconds_bucket" in text and b"the_button_presses_total" in text
    lint = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, timeout=30)
    assert lint.returncode == 0, (lint.stdout + lint.stderr).decode()
    assert not (lint.stdout + lint.stderr).strip(), "promtool printed a finding: " + (lint.stdout + lint.stderr).decode()
