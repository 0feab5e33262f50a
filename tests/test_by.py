"""Who pressed ("by") through the API: stored, sent to every socket with the press, in the CSV; bad names are 400."""
import csv
import io

from tornado.testing import gen_test

from tests.test_server import AUTH, ServerTestCase


class ByTest(ServerTestCase):
    @gen_test
    async def test_a_press_with_a_name_reaches_every_socket_with_it(self):
        ws = await self.ws_connect()
        await self.read_json(ws)
        response = await self.http_client.fetch(self.get_url("/api/press"), method="POST", headers=AUTH,
                                                body=b'{"note": "Acme Corp", "by": "Ana"}')
        assert response.code == 200
        msg = await self.read_json(ws)
        assert (msg["event"], msg["count"], msg["note"], msg["by"]) == ("press", 2, "Acme Corp", "Ana")
        await self.http_client.fetch(self.get_url("/api/press"), method="POST", headers=AUTH, body=b"")
        msg = await self.read_json(ws)
        assert msg["count"] == 1 and "by" not in msg  # no name, no field: as for a note

    def test_bad_names_are_400_and_change_nothing(self):
        for by in ("", "\u200b\u200b", "x" * 41, 7, None, "a\u2066b"):
            code, body = self.api("POST", "/api/press", {"by": by})
            if by is None:
                assert code == 200  # null is "no name"
                continue
            assert code == 400 and "by" in body["error"], by
        assert self.repository.state().presses == 1

    def test_the_csv_has_who_pressed_and_never_a_formula(self):
        self.api("POST", "/api/press", {"by": "=Ana"})
        self.api("POST", "/api/press", {"by": "Ben"})
        text = self.fetch("/api/history.csv").body.decode("utf-8-sig")
        rows = list(csv.reader(io.StringIO(text, newline="")))
        assert rows[0][-2] == "by" and [r[-2] for r in rows[1:]] == ["Ben", "'=Ana"]


class LeaderboardApiTest(ServerTestCase):
    def test_the_leaderboard_route(self):
        """GET /api/leaderboard (default period round), month and all; a bad period is 400; no token needed."""
        for by in ("Ana", None, "ana"):  # the goal here is 3: three presses end the round, reached
            assert self.api("POST", "/api/press", {} if by is None else {"by": by})[0] == 200
        code, board = self.api("GET", "/api/leaderboard", headers={})
        assert code == 200 and board["period"] == "round" and board["since"]
        assert [(x["by"], x["presses"]) for x in board["leaders"]] == [("ana", 2)]
        assert board["unattributed"] == 1 and board["leaders"][0]["last"].endswith("+00:00")
        code, month = self.api("GET", "/api/leaderboard?period=month", headers={})
        assert code == 200 and month["leaders"] == board["leaders"] and "T00:00:00" in month["since"]
        code, ever = self.api("GET", "/api/leaderboard?period=all", headers={})
        assert code == 200 and ever["since"] is None and ever["leaders"] == board["leaders"]
        code, body = self.api("GET", "/api/leaderboard?period=week", headers={})
        assert code == 400 and "period must be one of round, month, all" == body["error"]
