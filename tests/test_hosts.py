"""Host names and Origins (DNS rebinding): the names the server answers to, over raw HTTP and in Chromium."""
import http.server
import json
import threading

import pytest
from playwright.sync_api import sync_playwright
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.testing import gen_test
from tornado.websocket import websocket_connect

from tests.conftest import TOKEN, ServerProcess, free_port
from tests.test_page import CHROMIUM, FLAGS
from tests.test_server import ServerTestCase
from thebutton.hosts import HostRule, parse_hosts

RULE = HostRule(parse_hosts("button.example.com,.corp.example"), own=["pi-office", "pi-office.example.net"])


@pytest.mark.parametrize("host", [
    "127.0.0.1", "127.0.0.1:8888", "10.0.0.7", "[::1]:8888", "[fe80::1]", "localhost", "localhost:8888",
    "thebutton", "THEBUTTON:80", "thebutton.local", "thebutton.local.", "tv.lan", "pi.home", "pi.home.arpa",
    "pi.internal", "pi.localdomain", "pi-office", "pi-office.example.net", "button.example.com",
    "corp.example", "tv.corp.example"])
def test_names_the_server_answers_to(host):
    assert RULE.allows_host(host)


@pytest.mark.parametrize("host", [
    "evil.example", "evil.example:8888", "thebutton.local.evil.example", "button.example.com.evil.example",
    "notcorp.example", "localhost.evil.example", "", ":8888", "[::1", "[::1]x", "a:b", "evil.example:80:80"])
def test_names_it_does_not(host):
    assert not RULE.allows_host(host)


def test_any_name_with_a_star():
    assert HostRule(parse_hosts("*"), own=[]).allows_host("evil.example")


def test_bad_hosts_option():
    with pytest.raises(ValueError, match="--hosts takes host names"):
        parse_hosts("good.example, http://bad/")


def test_origins():
    assert RULE.allows_origin("http://thebutton.local:8888") and RULE.allows_origin("https://[::1]:8443")
    assert not RULE.allows_origin("http://evil.example") and not RULE.allows_origin("null")
    assert not RULE.allows_origin("http://[::1")


class HostHeaderTest(ServerTestCase):
    def test_a_foreign_host_gets_421_on_every_route(self):
        """Pages, assets, the API, the feed and unknown paths: 421 in JSON naming --hosts; nothing changes."""
        port = self.get_http_port()
        for method, path in [("GET", "/"), ("GET", "/admin"), ("GET", "/api/history"), ("GET", "/api/history.csv"),
                             ("GET", "/static/app.js"), ("GET", "/healthz"), ("GET", "/nothing"),
                             ("POST", "/api/press"), ("GET", "/websocket")]:
            headers = {"Host": "evil.example:%d" % port, "Authorization": "Bearer " + self.token}
            response = self.fetch(path, method=method, body=b"" if method == "POST" else None, headers=headers,
                                  raise_error=False)
            assert response.code == 421, (method, path, response.code)
            assert "--hosts=evil.example" in json.loads(response.body)["error"], (path, response.body)
        assert self.repository.state().presses == 0

    def test_lan_names_are_answered(self):
        port = self.get_http_port()
        for host in ("127.0.0.1:%d" % port, "localhost", "thebutton.local", "pi", "box.home.arpa", "[::1]:80"):
            assert self.fetch("/api/count", headers={"Host": host}).code == 200, host

    @gen_test
    async def test_the_feed_checks_the_origin(self):
        """A handshake from a page of another site is 403 in JSON; a page of ours, or no Origin (a TV, a script), opens."""
        port = self.get_http_port()
        url = "ws://127.0.0.1:%d/websocket" % port
        for origin in ("http://evil.example", "null", "http://thebutton.local.evil.example:%d" % port):
            with pytest.raises(HTTPClientError) as refused:
                await websocket_connect(HTTPRequest(url, headers={"Origin": origin}))
            assert refused.value.code == 403, origin
            assert "page elsewhere" in json.loads(refused.value.response.body)["error"]
        for origin in (None, "http://127.0.0.1:%d" % port, "http://thebutton.local:8888"):
            headers = {"Origin": origin} if origin else {}
            ws = await websocket_connect(HTTPRequest(url, headers=headers))
            assert json.loads(await ws.read_message())["count"] == 3
            ws.close()


@pytest.fixture
def elsewhere():
    """A web site of someone else's: a page that tries to watch the feed of the server given in its query."""
    page = b"""<!doctype html><title>elsewhere</title><script>
      const target = new URLSearchParams(location.search).get("ws");
      const ws = new WebSocket(target);
      ws.onopen = () => { document.title = "opened"; };
      ws.onmessage = (e) => { document.title = "read " + e.data.slice(0, 20); };
      ws.onerror = () => { document.title = "refused"; };
    </script>"""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args):
            pass
    httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def test_a_page_from_the_internet_cannot_read_the_server(db_path, elsewhere):
    """In Chromium, with evil.example resolving to the server (DNS rebinding): the page, the history and the
    feed are refused; the same server by its own name works."""
    port = free_port()
    server = ServerProcess(db_path, "--button=none", "--admin-token=" + TOKEN, port=port).start()
    try:
        server.request("POST", "/api/press", {"note": "Acme Corp"})
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                        args=FLAGS + ["--host-resolver-rules=MAP evil.example 127.0.0.1, "
                                                      "MAP thebutton.local 127.0.0.1"])
            page = browser.new_page()
            answer = page.goto("http://evil.example:%d/api/history" % port)
            assert answer.status == 421 and "Acme" not in page.content()
            assert page.goto("http://evil.example:%d/" % port).status == 421
            assert page.goto("http://thebutton.local:%d/api/history" % port).status == 200
            assert "Acme Corp" in page.content()
            page.goto("http://evil.example:%d/?ws=ws://127.0.0.1:%d/websocket" % (elsewhere, port))
            page.wait_for_function("document.title !== 'elsewhere'")
            assert page.title() == "refused"
            browser.close()
    finally:
        server.stop()
