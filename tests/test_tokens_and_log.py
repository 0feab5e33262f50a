"""Wrong tokens counted by IPv6 /64, the admin token checked at start, and a log without query strings."""
import socket
import tempfile
import urllib.error
import urllib.request

from tornado.httpserver import HTTPServer

from tests.conftest import ServerProcess
from tests.test_server import AUTH, ServerTestCase
from thebutton.hosts import client_key as throttle_key

WRONG = {"Authorization": "Bearer wrong-guess"}


def test_ipv6_addresses_count_by_their_64():
    """Every address of one /64 is one client; another /64, an IPv4 address and a mapped one are their own."""
    one = {throttle_key(a) for a in ("2001:db8:1:2::1", "2001:db8:1:2:ffff:1:2:3", "2001:DB8:1:2::abcd")}
    assert one == {"2001:db8:1:2::/64"}
    assert throttle_key("2001:db8:1:3::1") == "2001:db8:1:3::/64"
    assert throttle_key("fe80::1%eth0") == "fe80::/64"
    assert throttle_key("192.0.2.7") == "192.0.2.7"
    assert throttle_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert throttle_key("not an address") == "not an address"


class PretendAddresses(HTTPServer):
    """An HTTPServer that gives each connection the next client address of a list (the test's)."""

    def __init__(self, app, addresses, **options):
        super().__init__(app, **options)
        self.addresses = addresses

    def handle_stream(self, stream, address):
        return super().handle_stream(stream, (self.addresses.pop(0), 0, 0, 0))


class SixtyFourTest(ServerTestCase):
    def get_http_server(self):
        self.addresses = []
        return PretendAddresses(self._app, self.addresses, **self.get_httpserver_options())

    def fetch_from(self, address, headers):
        self.addresses.append(address)
        return self.fetch("/api/press", method="POST", body=b"", headers=dict(headers, Connection="close"),
                          raise_error=False)

    def test_a_new_address_of_the_same_64_does_not_start_over(self):
        """Ten wrong tokens from ten addresses of one /64: the eleventh address of it waits; other clients do not."""
        for i in range(10):
            assert self.fetch_from("2001:db8:5:6::%x" % (i + 1), WRONG).code == 403
        response = self.fetch_from("2001:db8:5:6:aaaa::1", WRONG)
        assert response.code == 429 and int(response.headers["Retry-After"]) >= 1
        assert b"2001:db8:5:6::/64" in response.body
        assert self.fetch_from("2001:db8:5:6::99", AUTH).code == 429  # even with the right token: it waits
        assert self.fetch_from("2001:db8:5:7::1", AUTH).code == 200  # the next /64 is someone else
        assert self.fetch_from("192.0.2.1", AUTH).code == 200
        assert self.repository.state().count == 1


def run_server_briefly(token, *args):
    """Start the real server with this admin token; return (exit status or None if it ran, its output)."""
    server = ServerProcess(tempfile.mkdtemp() + "/counter.db", "--button=none", "--admin-token=" + token, *args)
    try:
        server.start()
    except AssertionError:
        return server.proc.returncode, server.output()
    output = server.output()
    server.stop()
    return None, output + server.output()


def test_a_non_ascii_token_is_refused_at_start():
    """A token no client can send (not ASCII, or a space at its end) stops the start with one line."""
    for token in ("sécret-token-of-the-office", "a-long-enough-token-with-a-newline\n"):
        status, output = run_server_briefly(token)
        assert status == 2, output
        lines = output.strip().splitlines()
        assert len(lines) == 1 and "admin token must be printable ASCII" in lines[0], output
        assert token.strip() not in output  # the token itself is never printed


def test_a_short_token_is_accepted_with_a_warning():
    """The README's old s3cret still works, with a warning at start; a long one starts quietly."""
    status, output = run_server_briefly("s3cret")
    assert status is None and "anyone on the LAN can guess it" in output, output
    assert "s3cret" not in output
    status, output = run_server_briefly("0123456789abcdef")
    assert status is None and "guess" not in output, output


def test_no_query_string_reaches_the_log(server_factory):
    """Requests of every kind with a secret in the query: the log names them, never the query."""
    secret = "SECRETVALUE42"
    server = server_factory("--button=none", "--admin-token=0123456789abcdef-token")
    def call(method, path, body=None, headers=()):
        request = urllib.request.Request(server.url + path, data=body, method=method, headers=dict(headers))
        try:
            with urllib.request.urlopen(request, timeout=10) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code
    query = "?token=%s&note=%s" % (secret, secret)
    assert call("GET", "/api/count" + query) == 200
    assert call("GET", "/" + query) == 200
    assert call("GET", "/static/app.js" + query) == 200
    assert call("GET", "/static/nothing-here.js" + query) == 404
    assert call("GET", "/api/nothing" + query) == 404
    assert call("GET", "/api/press" + query) == 405
    assert call("POST", "/api/press" + query, b"") == 401
    assert call("POST", "/api/press" + query, b"", {"Authorization": "Bearer " + secret}) == 403
    assert call("PUT", "/api/count" + query, b"garbage", {"Authorization": "Bearer 0123456789abcdef-token"}) == 400
    assert call("GET", "/websocket" + query) == 400
    assert call("GET", "/api/history" + query + "&limit=0") == 400
    assert call("GET", "/" + query + "x" * 9000) == 414
    assert call("GET", "/api/history?limit=%FF" + secret) == 400  # not UTF-8: Tornado quotes the value
    for bad in ("Content-Length: x", "Authorization Bearer " + secret, "Authorization: Bearer \x01" + secret):  # requests Tornado refuses itself
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
            raw.sendall(("GET /api/count%s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\n\r\n" % (query, bad)).encode())
            raw.recv(4096)
    assert server.request("GET", "/api/count", token=None)[0] == 200  # after the others: their lines are out
    server.stop()
    log = server.output()
    assert "GET /api/count (127.0.0.1)" in log and "404 GET /api/nothing (127.0.0.1)" in log, log
    assert secret not in log and "token=" not in log, log

