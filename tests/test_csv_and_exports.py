"""The CSV export against spreadsheets (no formula at a comma or a semicolon) and against load (2 at once)."""
import csv
import io
import socket
import threading

from hypothesis import given, settings
from hypothesis import strategies as st
from tornado.httpclient import AsyncHTTPClient
from tornado.testing import gen_test

from tests.conftest import until
from tests.test_history_api import HistoryApiTestCase
from tests.test_server import AUTH
from thebutton.history import FORMULA_START, csv_row, spreadsheet_text


def cells_a_spreadsheet_may_see(line):
    """Every piece of a CSV line split at commas and at semicolons, as a spreadsheet without quote rules would."""
    pieces = []
    for sep in (",", ";"):
        pieces += line.split(sep)
    return pieces


def starts_a_formula(piece):
    return piece.lstrip('"')[:1] in FORMULA_START and piece.lstrip('"') != ""


def csv_line(note):
    out = io.StringIO()
    csv.writer(out).writerow(csv_row({"id": 7, "at": "2026-12-03T16:04:36.902-05:00", "source": "api",
                                      "count_before": 3, "count_after": 2, "undone": False, "note": note}))
    return out.getvalue().rstrip("\r\n")


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet='=+-@;,"\' aZé\t', max_size=12))
def test_no_cell_starts_a_formula_however_the_line_is_split(note):
    """Whatever the text, no piece of its CSV line, split at , or at ;, starts (after quotes) with = + - @ or a tab."""
    line = csv_line(note)
    bad = [piece for piece in cells_a_spreadsheet_may_see(line) if starts_a_formula(piece)]
    assert not bad, (note, line, bad)
    (parsed,) = csv.reader([line])
    assert parsed[6].replace("'", "") == note.replace("'", "")  # only quotes were added


def test_the_cases_that_broke():
    """x;=1+1 is split by German, French and Dutch spreadsheets and evaluated; a quote before = too."""
    assert spreadsheet_text("x;=1+1") == "x;'=1+1"
    assert spreadsheet_text("a,@b") == "a,'@b"
    assert spreadsheet_text('say "=1"') == 'say "=1"'  # mid-cell: not where a cell starts
    assert spreadsheet_text('"=1"') == "\"'=1\""
    assert spreadsheet_text("x; -2") == "x; -2"  # a space first: a spreadsheet reads text
    assert spreadsheet_text("Acme; Inc.") == "Acme; Inc."
    assert spreadsheet_text(None) == ""


class ExportLoadTest(HistoryApiTestCase):
    def setUp(self):
        super().setUp()
        for note in ("x;=1+1", "plain"):
            self.press(note)
        self.gate = threading.Event()  # history reads wait on it while the test holds exports open
        self.entered = 0
        history = self.repository.history

        def gated(*args, **kwargs):
            self.entered += 1
            self.gate.wait(30)
            return history(*args, **kwargs)
        self.repository.history = gated

    def tearDown(self):
        self.gate.set()
        super().tearDown()

    def test_semicolon_split_csv_over_http(self):
        """The export itself: the note x;=1+1 is written x;'=1+1."""
        self.gate.set()
        body = self.fetch("/api/history.csv").body.decode("utf-8-sig")
        assert "x;'=1+1" in body and "x;=1+1" not in body

    def export(self, client):
        return client.fetch(self.get_url("/api/history.csv"), raise_error=False, request_timeout=30)

    @gen_test(timeout=30)
    async def test_a_third_export_waits_and_presses_do_not(self):
        """Eight exports at once: two run, six get 429 with Retry-After; a press meanwhile is stored and answered."""
        client = AsyncHTTPClient(force_instance=True, max_clients=20)
        running = [self.export(client) for _ in range(8)]
        await until(lambda: self.entered >= 2)
        press = await client.fetch(self.get_url("/api/press"), method="POST", body=b"", headers=AUTH,
                                   raise_error=False, request_timeout=10)
        assert press.code == 200 and self.repository.state().presses == 3
        assert self.entered == 2  # the others never reached the store
        self.gate.set()
        answers = [await r for r in running]
        codes = sorted(a.code for a in answers)
        assert codes == [200, 200] + [429] * 6, codes
        refused = [a for a in answers if a.code == 429][0]
        assert int(refused.headers["Retry-After"]) >= 1 and b"exports are running" in refused.body
        client.close()

    @gen_test(timeout=30)
    async def test_a_client_that_leaves_mid_export_frees_its_slot(self):
        """An export whose client hangs up stops, and its slot is free again for the next."""
        leaver = socket.create_connection(("127.0.0.1", self.get_http_port()))
        leaver.sendall(b"GET /api/history.csv?limit=5000 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        await until(lambda: self.entered == 1)
        leaver.close()
        self.gate.set()  # its page is read, and then it sees that nobody waits
        client = AsyncHTTPClient(force_instance=True, max_clients=20)
        first = await self.export(client)
        assert first.code == 200
        self.gate.clear()
        self.entered = 0
        two = [self.export(client), self.export(client)]
        await until(lambda: self.entered == 2)  # both slots: the leaver's was given back
        self.gate.set()
        assert [(await r).code for r in two] == [200, 200]
        client.close()
