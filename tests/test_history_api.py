"""The history API in-process: /api/history, /api/history.csv, /api/rounds, notes on presses and the stored title."""
import csv
import io
import json
import sqlite3
import threading
from urllib.parse import quote

from tornado.testing import ExpectLog, gen_test

import thebutton.history as history_module
from tests.test_server import AUTH, ServerTestCase

BAD_LIMITS = ["abc", "0", "1001", "-1", "", "1.5", "+5", "5x", "١٢", "99999999999999999999"]
BAD_BEFORES = ["abc", "0", "-1", "", "2.0", "99999999999999999999", "1e3"]


class HistoryApiTestCase(ServerTestCase):
    def press(self, note=None):
        body = {} if note is None else {"note": note}
        code, state = self.api("POST", "/api/press", body)
        assert code == 200, state
        return state

    def assert_error(self, response_code, body, code):
        assert response_code == code, body
        assert isinstance(body, dict) and isinstance(body["error"], str) and body["error"]

    async def fetch_json(self, method, path, body=None):
        response = await self.http_client.fetch(
            self.get_url(path), method=method, headers=AUTH, raise_error=False,
            body=(b"" if method in ("POST", "PUT") else None) if body is None else json.dumps(body))
        return response.code, json.loads(response.body)


class HistoryTest(HistoryApiTestCase):
    def test_history_is_empty_on_a_fresh_store(self):
        """A fresh store has no presses: {"presses": []}, readable without a token."""
        code, body = self.api("GET", "/api/history", headers={})
        assert (code, body) == (200, {"presses": []})

    def test_history_lists_presses_newest_first_with_every_field(self):
        """Each press has id, at (with offset), source, count_before, count_after, undone, note and by."""
        code, _ = self.api("POST", "/api/press", {"note": "Acme Corp", "by": "Ana"})
        assert code == 200
        self.press()
        self.api("POST", "/api/undo")
        code, body = self.api("GET", "/api/history", headers={})
        newest, oldest = body["presses"]
        assert set(newest) == {"id", "at", "source", "count_before", "count_after", "undone", "note", "by", "device"}
        assert (oldest["by"], newest["by"]) == ("Ana", None)
        assert (oldest["source"], oldest["count_before"], oldest["count_after"]) == ("api", 3, 2)
        assert (oldest["note"], oldest["undone"]) == ("Acme Corp", False)
        assert (newest["note"], newest["undone"], newest["id"]) == (None, True, oldest["id"] + 1)
        assert newest["at"].endswith("+00:00")

    def test_history_pages_with_limit_and_before(self):
        """limit caps the page and before gives only older presses, so paging walks the whole log once."""
        for _ in range(7):
            self.press()
        seen = []
        before = ""
        while True:
            code, body = self.api("GET", "/api/history?limit=3" + before, headers={})
            assert code == 200 and len(body["presses"]) <= 3
            if not body["presses"]:
                break
            seen += [p["id"] for p in body["presses"]]
            before = "&before=%d" % body["presses"][-1]["id"]
        assert seen == sorted(seen, reverse=True) and len(set(seen)) == 7

    def test_history_default_limit_is_50(self):
        """Without limit, the latest 50 presses come back."""
        for _ in range(55):
            self.repository.press()
        code, body = self.api("GET", "/api/history", headers={})
        assert len(body["presses"]) == 50 and body["presses"][0]["id"] == 55

    def test_bad_limit_is_400_json(self):
        """A limit that is not a whole number from 1 to 1000 is 400 with a JSON error."""
        self.press()
        for limit in BAD_LIMITS:
            code, body = self.api("GET", "/api/history?limit=" + quote(limit), headers={})
            self.assert_error(code, body, 400)
            assert "limit" in body["error"], limit

    def test_bad_before_is_400_json(self):
        """A before that is not a positive whole number is 400 with a JSON error."""
        for before in BAD_BEFORES:
            code, body = self.api("GET", "/api/history?before=" + quote(before), headers={})
            self.assert_error(code, body, 400)
            assert "before" in body["error"], before

    def test_history_limit_bounds_are_allowed(self):
        """limit=1 and limit=1000 are both fine."""
        self.press()
        self.press()
        assert len(self.api("GET", "/api/history?limit=1", headers={})[1]["presses"]) == 1
        assert len(self.api("GET", "/api/history?limit=1000", headers={})[1]["presses"]) == 2

    def test_other_methods_on_history_routes_are_405_json(self):
        """POST, PUT and DELETE on the history routes are 405 with a JSON error and Allow: GET."""
        for path in ("/api/history", "/api/history.csv", "/api/rounds"):
            for method in ("POST", "PUT", "DELETE"):
                body = b"{}" if method != "DELETE" else None
                response = self.fetch(path, method=method, body=body, headers=AUTH, raise_error=False)
                assert response.code == 405, (method, path)
                assert json.loads(response.body)["error"]
                assert response.headers["Allow"] == "GET, HEAD"
        assert self.repository.state().count == 3

    def test_store_reads_run_off_the_ioloop(self):
        """history() and rounds() are called from an executor thread, never the IOLoop's."""
        threads = []
        history, rounds = self.repository.history, self.repository.rounds

        def record(read):
            def wrapper(*args, **kwargs):
                threads.append(threading.current_thread())
                return read(*args, **kwargs)
            return wrapper
        self.repository.history = record(history)
        self.repository.rounds = record(rounds)
        for path in ("/api/history", "/api/history.csv", "/api/rounds"):
            assert self.fetch(path).code == 200
        assert len(threads) == 3 and threading.main_thread() not in threads

    def test_store_failure_is_503_json(self):
        """When the database cannot be read, the history routes answer 503 in JSON and /healthz says so until a read works."""
        broken = sqlite3.connect(":memory:", check_same_thread=False)
        broken.close()
        working, self.repository._reader = self.repository._reader, broken
        try:
            for path in ("/api/history", "/api/history.csv", "/api/rounds"):
                with ExpectLog("button.web", "cannot read"):
                    code, body = self.api("GET", path, headers={})
                self.assert_error(code, body, 503)
                assert "counter.db" in body["error"]
            health = self.api("GET", "/healthz", headers={})[1]
            assert health["ok"] is False and health["store"]["kind"] == "sqlite"
        finally:
            self.repository._reader = working
        self.api("GET", "/api/history", headers={})
        assert self.api("GET", "/healthz", headers={})[1]["store"]["ok"] is True


class CsvTest(HistoryApiTestCase):
    def get_csv(self, query=""):
        response = self.fetch("/api/history.csv" + query)
        assert response.code == 200
        return response, list(csv.reader(io.StringIO(response.body.decode("utf-8-sig"), newline="")))

    def test_csv_is_a_download_with_a_header_line(self):
        """The CSV is text/csv in UTF-8 with a byte order mark (for Excel), an attachment, header line first."""
        self.press("Café ☕")
        response, rows = self.get_csv()
        assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
        assert response.headers["Content-Disposition"] == 'attachment; filename="the-button-history.csv"'
        assert response.body.startswith("\ufeffid,at,source,count_before,count_after,undone,note,by,device\r\n".encode())
        assert rows[0] == ["id", "at", "source", "count_before", "count_after", "undone", "note", "by", "device"]
        (_, _, source, before, after, undone, note, by, device), = rows[1:]
        assert (source, before, after, undone, note, by, device) == ("api", "3", "2", "false", "Café ☕", "", "")

    def test_csv_rows_match_the_json_history(self):
        """The CSV has the same presses in the same order as /api/history."""
        self.press("one")
        self.press()
        self.api("POST", "/api/undo")
        _, rows = self.get_csv()
        presses = self.api("GET", "/api/history", headers={})[1]["presses"]
        assert [r[:6] for r in rows[1:]] == [
            [str(p["id"]), p["at"], p["source"], str(p["count_before"]), str(p["count_after"]),
             "true" if p["undone"] else "false"] for p in presses]
        assert [r[6] for r in rows[1:]] == ["", "one"]

    def test_csv_quotes_commas_quotes_and_neutralises_formulas(self):
        """Notes with commas and quotes survive a round trip; a note starting with = + - @ is kept as text."""
        notes = ['Acme, Inc. "big" deal', "=HYPERLINK(\"http://x\")", "+1 555", "-2+3", "@SUM(A1)", "ok = fine"]
        for note in notes:
            self.press(note)
        _, rows = self.get_csv()
        got = [r[6] for r in rows[:0:-1]]
        assert got == ['Acme, Inc. "big" deal', "'=HYPERLINK(\"http://x\")", "'+1 555", "'-2+3",
                       "'@SUM(A1)", "ok = fine"]

    def test_csv_limit_and_before_page_across_store_reads(self):
        """limit beyond one store page is read page by page; before starts below a given id."""
        history_module.PAGE, page = 2, history_module.PAGE
        try:
            for _ in range(7):
                self.repository.press()
            _, rows = self.get_csv("?limit=5")
            assert [r[0] for r in rows[1:]] == ["7", "6", "5", "4", "3"]
            _, rows = self.get_csv("?limit=100&before=4")
            assert [r[0] for r in rows[1:]] == ["3", "2", "1"]
        finally:
            history_module.PAGE = page

    def test_csv_default_limit_is_1000_and_max_100000(self):
        """Without limit the CSV has the latest 1000 presses; limit 100000 is allowed, 100001 is not."""
        history_module.PAGE, page = 100, history_module.PAGE
        history_module.CSV_LIMIT, default = 150, history_module.CSV_LIMIT
        try:
            for _ in range(160):
                self.repository.press()
            _, rows = self.get_csv()
            assert len(rows) == 151 and rows[1][0] == "160"
        finally:
            history_module.PAGE, history_module.CSV_LIMIT = page, default
        assert default == 1000
        _, rows = self.get_csv("?limit=100000")
        assert len(rows) == 161
        code, body = self.api("GET", "/api/history.csv?limit=100001", headers={})
        self.assert_error(code, body, 400)

    def test_csv_bad_limit_or_before_is_400_json(self):
        """A bad limit or before on the CSV route is 400 with a JSON error, not a CSV."""
        queries = ["?limit=" + quote(v) for v in BAD_LIMITS if v != "1001"]
        for query in queries + ["?before=" + quote(v) for v in BAD_BEFORES]:
            response = self.fetch("/api/history.csv" + query)
            assert response.code == 400, query
            assert response.headers["Content-Type"].startswith("application/json")
            assert json.loads(response.body)["error"]


class RoundsTest(HistoryApiTestCase):
    def rounds(self):
        code, body = self.api("GET", "/api/rounds", headers={})
        assert code == 200
        return body["rounds"]

    def test_fresh_store_has_one_open_round(self):
        """GET /api/rounds on a fresh store: one round at the goal, open, no presses."""
        (only,) = self.rounds()
        assert set(only) == {"started", "ended", "goal", "presses", "reached"}
        assert (only["goal"], only["presses"], only["ended"], only["reached"]) == (3, 0, None, False)

    def test_presses_to_zero_reach_the_round(self):
        """Pressing down to 0 ends the round reached."""
        for _ in range(3):
            self.press()
        (done,) = self.rounds()
        assert (done["presses"], done["reached"]) == (3, True) and done["ended"] is not None

    def test_wrap_starts_the_next_round(self):
        """The press at 0 starts a new round, which is listed first."""
        for _ in range(5):
            self.press()
        newest, done = self.rounds()
        assert (newest["presses"], newest["ended"], done["reached"]) == (1, None, True)

    def test_set_ends_the_round_not_reached(self):
        """PUT /api/count with a new count ends the round (not reached) and starts one."""
        self.press()
        self.api("PUT", "/api/count", {"count": 3, "goal": 10})
        newest, ended = self.rounds()
        assert (newest["goal"], newest["presses"], newest["ended"]) == (10, 0, None)
        assert (ended["goal"], ended["presses"], ended["reached"]) == (3, 1, False)
        assert ended["ended"] == newest["started"]

    def test_undo_reopens_a_reached_round_and_removes_a_wrapped_one(self):
        """Undo of a wrap removes its round; undo of the press that reached 0 reopens the round."""
        for _ in range(4):
            self.press()
        assert len(self.rounds()) == 2
        assert self.api("POST", "/api/undo")[1]["count"] == 0
        (reached,) = self.rounds()
        assert reached["reached"] is True
        assert self.api("POST", "/api/undo")[1]["count"] == 1
        (reopened,) = self.rounds()
        assert (reopened["presses"], reopened["reached"], reopened["ended"]) == (2, False, None)


class NoteTest(HistoryApiTestCase):
    @gen_test
    async def test_note_is_stored_and_sent_with_its_press(self):
        """A press with a note: stored, in the history, and in that press's socket message as "note"."""
        ws = await self.ws_connect()
        await self.read_json(ws)
        code, state = await self.fetch_json("POST", "/api/press", {"note": "  Acme Corp "})
        assert code == 200 and state["count"] == 2
        msg = await self.read_json(ws)
        assert (msg["event"], msg["note"], msg["source"], msg["count"]) == ("press", "Acme Corp", "api", 2)
        await self.fetch_json("POST", "/api/press")
        msg = await self.read_json(ws)
        assert msg["event"] == "press" and "note" not in msg
        code, body = await self.fetch_json("GET", "/api/history")
        assert [p["note"] for p in body["presses"]] == [None, "Acme Corp"]

    def test_bad_note_is_400_and_changes_nothing(self):
        """A note of 101 characters, with control characters, or not a string: 400 JSON, no press stored."""
        self.press("fine")
        for note in ["x" * 101, "a\x00b", "tab\there", "new\nline", "\u202eevil", "a\u2028b", "\u2066x",
                     7, ["x"], {"a": 1}, True]:
            code, body = self.api("POST", "/api/press", {"note": note})
            self.assert_error(code, body, 400)
            assert "note" in body["error"], note
        state = self.repository.state()
        assert (state.count, state.presses) == (2, 1)
        assert len(self.api("GET", "/api/history", headers={})[1]["presses"]) == 1

    def test_notes_with_joiners_and_soft_hyphens_are_accepted(self):
        """Emoji joined by a zero-width joiner, a Persian zero-width non-joiner and a soft hyphen are text, not controls."""
        notes = ["\U0001f469\u200d\U0001f4bb Acme", "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645", "Super\u00adcalifragilistic"]
        for note in notes:
            code, body = self.api("POST", "/api/press", {"note": note})
            assert code == 200, (note, body)
        presses = self.api("GET", "/api/history", headers={})[1]["presses"]
        assert [p["note"] for p in presses] == notes[::-1]

    def test_note_of_100_characters_and_blank_note_are_accepted(self):
        """100 characters (after trimming) is the longest note; a blank note is a press without one."""
        self.press("  " + "n" * 100 + "  ")
        self.press("   ")
        presses = self.api("GET", "/api/history", headers={})[1]["presses"]
        assert [p["note"] for p in presses] == [None, "n" * 100]


class TitleTest(HistoryApiTestCase):
    @gen_test
    async def test_title_is_stored_broadcast_and_reset(self):
        """PUT /api/count {"title"} is stored and reaches every socket as "title"; "" goes back to the default."""
        ws = await self.ws_connect()
        assert (await self.read_json(ws))["title"] == "Countdown to 3"
        code, state = await self.fetch_json("PUT", "/api/count", {"title": " Sales Q3 "})
        assert code == 200 and state["title"] == "Sales Q3"
        msg = await self.read_json(ws)
        assert (msg["event"], msg["title"]) == ("set", "Sales Q3")
        assert self.repository.state().title == "Sales Q3"
        code, body = await self.fetch_json("GET", "/api/count")
        assert body["title"] == "Sales Q3"
        code, state = await self.fetch_json("PUT", "/api/count", {"title": ""})
        assert state["title"] == "Countdown to 3"
        assert (await self.read_json(ws))["title"] == "Countdown to 3"
        assert self.repository.state().title is None

    def test_title_only_set_keeps_the_round(self):
        """Changing only the title starts no new round and keeps the count."""
        self.press()
        self.api("PUT", "/api/count", {"title": "Hello"})
        code, body = self.api("GET", "/api/rounds", headers={})
        assert len(body["rounds"]) == 1 and body["rounds"][0]["presses"] == 1
        assert self.repository.state().count == 2

    def test_bad_title_is_400_and_changes_nothing(self):
        """A title of 81 characters, with control characters, or not a string: 400, count and title unchanged."""
        self.api("PUT", "/api/count", {"title": "Kept"})
        for title in ["t" * 81, "bell\x07", 5, ["x"], None, "a\u2028b"]:
            code, body = self.api("PUT", "/api/count", {"title": title, "count": 1})
            self.assert_error(code, body, 400)
            assert "title" in body["error"], title
        state = self.repository.state()
        assert (state.title, state.count) == ("Kept", 3)

    def test_title_of_80_characters_is_accepted(self):
        """80 characters is the longest title."""
        code, state = self.api("PUT", "/api/count", {"title": "t" * 80})
        assert code == 200 and state["title"] == "t" * 80
