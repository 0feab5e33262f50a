"""Devices over HTTP: /api/devices and its errors, /hook/<secret> by GET and POST with query, JSON and
form fields, ids that count once (also across a restart and across two servers on one Redis), the "at"
window, the rate per device, the throttle on wrong secrets, Pipedrive's won deals, and no secret kept."""
import copy
import datetime
import json
import os
import time
import urllib.parse

from tests.conftest import TOKEN, ServerProcess
from tests.redis_server import redis_server  # noqa: F401 - the fixture
from tests.test_server import AUTH, ServerTestCase

# Shaped like Pipedrive's documented webhooks v2 body for a change of a deal ("previous" holds
# the fields that changed, with their old values).
PIPEDRIVE_WON = {
    "meta": {"action": "change", "entity": "deal", "version": "2.0", "company_id": 12882925, "user_id": 18487521,
             "id": 1, "entity_id": 42, "webhook_id": 99, "webhook_owner_id": 18487521,
             "permitted_user_ids": [18487521], "attempt": 1, "host": "company.pipedrive.com",
             "timestamp": 1727447128, "change_source": "app"},
    "data": {"id": 42, "title": "Acme Corp 50 licences", "value": 5000, "currency": "EUR", "status": "won",
             "stage_id": 3, "pipeline_id": 1, "owner_id": 18487521, "person_id": 3, "org_id": 2,
             "add_time": "2024-09-27T14:25:27Z", "update_time": "2024-09-30T09:12:05Z",
             "won_time": "2024-09-30T09:12:05Z"},
    "previous": {"status": "open", "won_time": None, "update_time": "2024-09-29T16:00:00Z"},
}


def variant(**changes):
    body = copy.deepcopy(PIPEDRIVE_WON)
    for path, value in changes.items():
        part, key = path.split("__")
        if value is KeyError:
            body[part].pop(key, None)
        else:
            body[part][key] = value
    return body


class DevicesTest(ServerTestCase):
    def setUp(self):
        super().setUp()
        assert self.api("PUT", "/api/count", {"goal": 100, "count": 100})[0] == 200

    def add(self, name="Lobby button", kind="button", by=None):
        body = {"name": name, "kind": kind}
        if by is not None:
            body["by"] = by
        code, device = self.api("POST", "/api/devices", body)
        assert code == 201, device
        return device

    def hook(self, url, method="GET", body=None, headers=None, query=""):
        kw = {"method": method, "headers": headers or {}}
        if method == "POST":
            kw["body"] = body if isinstance(body, bytes) else json.dumps(body).encode() if body is not None else b""
        response = self.fetch(url + query, **kw)
        return response.code, json.loads(response.body or b"null"), response

    def latest(self):
        return self.api("GET", "/api/history?limit=1", headers={})[1]["presses"][0]

    # --- /api/devices ---------------------------------------------------------------------
    def test_a_device_is_added_listed_and_removed(self):
        """POST gives the URL once; GET lists without secrets; DELETE is 204 and its URL is 404 after."""
        device = self.add(by="Sales")
        assert set(device) == {"name", "kind", "by", "url", "created"}
        assert device["url"].startswith("/hook/") and len(device["url"]) - len("/hook/") >= 22  # >= 128 bits
        code, listed = self.api("GET", "/api/devices")
        assert code == 200
        [row] = listed["devices"]
        assert row["name"] == "Lobby button" and row["by"] == "Sales" and row["presses"] == 0
        assert row["last_seen"] is None and "url" not in row and device["url"][6:] not in json.dumps(listed)
        assert self.hook(device["url"])[0] == 200
        row = self.api("GET", "/api/devices")[1]["devices"][0]
        assert row["presses"] == 1 and row["last_seen"]
        response = self.fetch("/api/devices/Lobby%20button", method="DELETE", headers=AUTH)
        assert response.code == 204 and not response.body
        code, body, _ = self.hook(device["url"])
        assert code == 404 and "error" in body
        assert self.api("GET", "/api/devices")[1]["devices"] == []

    def test_two_devices_have_different_secrets(self):
        """Every device gets its own random URL."""
        assert self.add("One")["url"] != self.add("Two")["url"]

    def test_device_errors_change_nothing(self):
        """A name used (any case) is 409; bad kind, name, by or fields 400; no token 401; unknown name 404."""
        self.add()
        assert self.api("POST", "/api/devices", {"name": "LOBBY BUTTON", "kind": "button"})[0] == 409
        for bad in ({"name": "", "kind": "button"}, {"name": "x" * 41, "kind": "button"},
                    {"name": "Desk", "kind": "toaster"}, {"name": "Desk"}, {"name": "Desk", "kind": "button", "by": ""},
                    {"name": "Desk", "kind": "button", "colour": "red"}, {"name": "a\u202eb", "kind": "button"}):
            code, body = self.api("POST", "/api/devices", bad)
            assert code == 400 and body["error"], bad
        assert self.api("POST", "/api/devices", b"not json")[0] == 400
        assert self.api("POST", "/api/devices", {"name": "Desk", "kind": "button"}, headers={})[0] == 401
        assert self.api("GET", "/api/devices", headers={})[0] == 401
        assert self.fetch("/api/devices/Nobody", method="DELETE", headers=AUTH).code == 404
        assert self.fetch("/api/devices/Lobby%20button", method="DELETE").code == 401
        assert [d["name"] for d in self.api("GET", "/api/devices")[1]["devices"]] == ["Lobby button"]

    # --- /hook/<secret> -------------------------------------------------------------------------
    def test_a_hook_by_get_is_a_press_from_the_device(self):
        """GET presses: source "device", the device's name and its "by"; the answer is the state."""
        url = self.add(by="Sales")["url"]
        code, state, _ = self.hook(url)
        assert code == 200 and state["count"] == 99 and "duplicate" not in state
        press = self.latest()
        assert (press["source"], press["device"], press["by"], press["note"]) == ("device", "Lobby button", "Sales", None)

    def test_fields_come_from_the_query_or_a_json_or_form_body(self):
        """note and by by query, by JSON body, by a form (Zapier); the body wins over the query."""
        url = self.add()["url"]
        assert self.hook(url, query="?note=Acme&by=Ana")[0] == 200
        assert (self.latest()["note"], self.latest()["by"]) == ("Acme", "Ana")
        assert self.hook(url, "POST", {"note": "Globex", "by": "Ben"}, query="?note=ignored")[0] == 200
        assert (self.latest()["note"], self.latest()["by"]) == ("Globex", "Ben")
        form = urllib.parse.urlencode({"note": "Initech"}).encode()
        code, _, _ = self.hook(url, "POST", form, {"Content-Type": "application/x-www-form-urlencoded"})
        assert code == 200 and self.latest()["note"] == "Initech"
        assert self.hook(url, "POST", None)[0] == 200 and self.latest()["note"] is None

    def test_bad_hook_fields_are_400_and_change_nothing(self):
        """A bad note, by, id, at, an unknown field or a body that is not a JSON object: 400, no press."""
        url = self.add()["url"]
        for query in ("?note=" + "x" * 101, "?by=", "?id=" + "x" * 101, "?at=yesterday", "?colour=red"):
            code, body, _ = self.hook(url, query=query)
            assert code == 400 and body["error"], query
        for body in (b"[1]", b"not json", {"note": 7}):
            assert self.hook(url, "POST", body)[0] == 400, body
        assert self.repository.state().count == 100

    def test_the_same_id_counts_once(self):
        """An id (field or Idempotency-Key) repeated by the device: 200, "duplicate": true, nothing changed."""
        url = self.add()["url"]
        code, first, _ = self.hook(url, query="?id=abc-1")
        code, again, _ = self.hook(url, query="?id=abc-1")
        assert code == 200 and again["duplicate"] is True and again["count"] == first["count"] == 99
        headers = {"Idempotency-Key": "retry-7"}
        assert "duplicate" not in self.hook(url, "POST", {"note": "x"}, headers)[1]
        assert self.hook(url, "POST", {"note": "x"}, headers)[1]["duplicate"] is True
        other = self.add("Desk")["url"]
        assert "duplicate" not in self.hook(other, query="?id=abc-1")[1]  # another device's ids are its own
        assert self.repository.state().count == 97

    def test_an_id_of_null_leaves_the_idempotency_key_header_in_force(self):
        """A template's empty id field ("id": null) is no id: the header's key still counts once."""
        url = self.add()["url"]
        headers = {"Content-Type": "application/json", "Idempotency-Key": "zap-77"}
        assert self.hook(url, "POST", {"id": None, "note": "x"}, headers)[1]["count"] == 99
        code, body, _ = self.hook(url, "POST", {"id": None, "note": "x"}, headers)
        assert code == 200 and body["duplicate"] is True and body["count"] == 99

    def test_query_fields_follow_the_same_rules_as_a_bodys(self):
        """?note= with a control character is 400 like a body's; ?id= is compared as sent, not trimmed."""
        url = self.add()["url"]
        code, body, _ = self.hook(url, query="?note=a%01b")
        assert code == 400 and "control" in body["error"]
        assert self.api("GET", "/api/count", headers={})[1]["count"] == 100
        assert self.hook(url, query="?id=%20x")[1]["count"] == 99
        code, body, _ = self.hook(url, "POST", {"id": " x"}, {"Content-Type": "application/json"})
        assert body.get("duplicate") is True and body["count"] == 99
        code, body, _ = self.hook(url, query="?note=%ff")
        assert code == 400 and "UTF-8" in body["error"]

    def test_at_may_be_unix_seconds_with_nanoseconds(self):
        """date +%s.%N gives nine decimals: still Unix seconds, in the query as in a body."""
        url = self.add()["url"]
        at = "%.9f" % (time.time() - 60)
        assert self.hook(url, query="?at=" + at)[0] == 200
        kept = datetime.datetime.fromisoformat(self.latest()["at"])
        assert abs(kept.timestamp() - float(at)) < 0.002

    def test_a_device_named_with_dots_alone_is_refused(self):
        """'..' or '.' in DELETE /api/devices/<name> would be a path going up in every browser."""
        for name in (".", "..", "..."):
            code, body = self.api("POST", "/api/devices", {"name": name, "kind": "button"})
            assert code == 400 and "dots" in body["error"], name
        assert self.api("GET", "/api/devices")[1]["devices"] == []
        assert self.add(name="v1.2")["name"] == "v1.2"

    def test_at_is_kept_within_the_last_24_hours(self):
        """"at" as ISO-8601 or Unix seconds is the press's time; older than 24 h or in the future: 400."""
        url = self.add()["url"]
        two_hours_ago = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=2)
        assert self.hook(url, "POST", {"at": two_hours_ago.isoformat()})[0] == 200
        kept = datetime.datetime.fromisoformat(self.latest()["at"])
        assert abs((kept - two_hours_ago).total_seconds()) < 0.01
        unix = int(time.time()) - 600
        assert self.hook(url, query="?at=%d" % unix)[0] == 200
        assert abs(datetime.datetime.fromisoformat(self.latest()["at"]).timestamp() - unix) < 0.01
        assert self.repository.state().count == 98  # the count changed now, for both
        for at in (time.time() - 25 * 3600, time.time() + 3600):
            code, body, _ = self.hook(url, "POST", {"at": at})
            assert code == 400 and "at must" in body["error"]
        assert self.repository.state().count == 98

    def test_a_device_presses_at_most_10_a_minute(self):
        """The 11th press in a minute: 429 with Retry-After, nothing changed; another device still presses."""
        url = self.add()["url"]
        for _ in range(10):
            assert self.hook(url)[0] == 200
        code, body, response = self.hook(url)
        assert code == 429 and 0 < int(response.headers["Retry-After"]) <= 60 and body["error"]
        assert self.repository.state().count == 90
        assert self.hook(self.add("Desk")["url"])[0] == 200

    def test_wrong_secrets_are_404_then_429(self):
        """An unknown secret is 404 and counts as a wrong token: after 10 a minute, 429 (a right URL too)."""
        url = self.add()["url"]
        for i in range(10):
            code, body, _ = self.hook("/hook/not-a-secret-%d" % i)
            assert code == 404 and "no device" in body["error"]
        code, _, response = self.hook("/hook/not-a-secret-x")
        assert code == 429 and response.headers["Retry-After"]
        assert self.hook(url)[0] == 429  # this address is locked out for a while
        assert self.repository.state().count == 100

    def test_head_on_a_hook_never_presses(self):
        """An uptime monitor's HEAD answers 200 without a press."""
        url = self.add()["url"]
        assert self.fetch(url, method="HEAD").code == 200
        assert self.repository.state().count == 100

    def test_a_device_press_reaches_the_feed_metrics_and_history(self):
        """The feed's press message names the device; /metrics counts source "device"; the CSV has it."""
        url = self.add()["url"]
        self.hook(url, query="?note=Acme")
        metrics = self.fetch("/metrics").body.decode()
        assert 'the_button_presses_total{source="device"} 1.0' in metrics
        csv_text = self.fetch("/api/history.csv").body.decode("utf-8-sig")
        header, row = csv_text.splitlines()[:2]
        assert header.split(",")[-1] == "device" and row.split(",")[-1] == "Lobby button"

    def test_the_secret_is_not_in_the_database_file(self):
        """Only a hash is kept: the database's bytes do not hold the URL's secret."""
        secret = self.add()["url"][len("/hook/"):]
        self.repository.close()
        data = b""
        for suffix in ("", "-wal"):
            path = self.repository.path + suffix if hasattr(self.repository, "path") else None
            if path and os.path.exists(path):
                with open(path, "rb") as f:
                    data += f.read()
        assert data and secret.encode() not in data

    # --- Pipedrive -------------------------------------------------------------------------------
    def test_pipedrive_a_deal_won_is_one_press_with_its_title(self):
        """A deal whose status changes to won: a press, note = the deal's title."""
        url = self.add("Pipedrive", "pipedrive", by="Sales")["url"]
        code, state, _ = self.hook(url, "POST", PIPEDRIVE_WON)
        assert code == 200 and state["count"] == 99
        press = self.latest()
        assert (press["note"], press["device"], press["by"]) == ("Acme Corp 50 licences", "Pipedrive", "Sales")

    def test_pipedrive_retries_and_a_deal_won_again_count_once(self):
        """Pipedrive's retry (meta.attempt 2, the same body) and the same deal reopened and won again: duplicates."""
        url = self.add("Pipedrive", "pipedrive")["url"]
        assert self.hook(url, "POST", PIPEDRIVE_WON)[1]["count"] == 99
        retry = variant(meta__attempt=2)
        code, body, _ = self.hook(url, "POST", retry)
        assert code == 200 and body["duplicate"] is True
        assert self.hook(url, "POST", variant(data__status="open", previous__status="won"))[1].get("ignored")
        assert self.hook(url, "POST", PIPEDRIVE_WON)[1]["duplicate"] is True
        assert self.hook(url, "POST", variant(data__id=43, meta__entity_id=43))[1]["count"] == 98  # another deal

    def test_pipedrive_version_1_is_ignored_with_a_reason_that_says_so(self):
        """A v1 webhook (meta.v, meta.object, current) presses nothing and says to make a v2 one."""
        url = self.add(name="CRM", kind="pipedrive")["url"]
        v1 = {"v": 1, "matches_filters": {"current": []}, "meta": {"v": 1, "action": "updated", "object": "deal",
              "id": 42, "company_id": 1, "user_id": 1, "host": "company.pipedrive.com", "timestamp": 1727447128},
              "current": {"id": 42, "title": "Acme", "status": "won"}, "previous": {"id": 42, "status": "open"},
              "event": "updated.deal"}
        code, body, _ = self.hook(url, "POST", v1, {"Content-Type": "application/json"})
        assert code == 200 and "version 1" in body["ignored"]
        assert self.api("GET", "/api/count", headers={})[1]["count"] == 100

    def test_pipedrive_everything_else_is_ignored_with_200(self):
        """Other objects, actions, statuses and changes that are not to won: 200 {"ignored": why}, nothing changed."""
        url = self.add("Pipedrive", "pipedrive")["url"]
        for body in (variant(meta__entity="person"), variant(meta__action="create"), variant(meta__action="delete"),
                     variant(data__status="open"), variant(data__status="lost", previous__status="open"),
                     variant(previous__status="won"), variant(previous__status=KeyError),
                     {**copy.deepcopy(PIPEDRIVE_WON), "previous": None}, {"hello": "world"}, b"not json", b""):
            code, answer, _ = self.hook(url, "POST", body)
            assert code == 200 and answer["ignored"], body
        assert self.hook(url)[1]["ignored"]  # a GET
        assert self.repository.state().count == 100


def test_an_id_counts_once_across_a_restart(db_path):
    """A retry after the server restarted is still a duplicate (the ids are in the database)."""
    server = ServerProcess(db_path, f"--admin-token={TOKEN}", "--button=none").start()
    try:
        url = server.request("POST", "/api/devices", {"name": "Shelly", "kind": "button"})[1]["url"]
        assert server.request("POST", url, {"id": "press-1"}, token=None)[1]["count"] == 19
    finally:
        assert server.stop() == 0
    again = ServerProcess(db_path, f"--admin-token={TOKEN}", "--button=none").start()
    try:
        code, body = again.request("POST", url, {"id": "press-1"}, token=None)
        assert code == 200 and body["duplicate"] is True and body["count"] == 19
        assert again.request("GET", "/api/devices")[1]["devices"][0]["presses"] == 1
    finally:
        again.stop()


def test_two_servers_on_one_redis_share_devices_and_ids(redis_server, tmp_path):  # noqa: F811
    """A device added on one server works on the other; a retry landing on the other server is a duplicate."""
    a = ServerProcess(str(tmp_path / "a.db"), f"--store={redis_server.url}", f"--admin-token={TOKEN}",
                      "--button=none").start()
    b = ServerProcess(str(tmp_path / "b.db"), f"--store={redis_server.url}", f"--admin-token={TOKEN}",
                      "--button=none").start()
    try:
        url = a.request("POST", "/api/devices", {"name": "Flic hub", "kind": "button", "by": "Ops"})[1]["url"]
        assert [d["name"] for d in b.request("GET", "/api/devices")[1]["devices"]] == ["Flic hub"]
        assert b.request("GET", url + "?id=click-9", token=None)[1]["count"] == 19
        code, body = a.request("GET", url + "?id=click-9", token=None)
        assert code == 200 and body["duplicate"] is True
        press = a.request("GET", "/api/history")[1]["presses"][0]
        assert (press["device"], press["by"], press["source"]) == ("Flic hub", "Ops", "device")
        secret = url[len("/hook/"):]
        client = redis_server.client()
        for key in client.keys("*"):
            name = key.decode() if isinstance(key, bytes) else key
            assert secret not in name, name
            assert secret not in redis_values(client, key), name  # read back whole (DUMP may be compressed)
        assert b.request("DELETE", "/api/devices/Flic%20hub")[0] == 204
        assert a.request("GET", url, token=None)[0] == 404
    finally:
        a.stop()
        b.stop()


def redis_values(client, key):
    """Every value under one Redis key as text, whatever the key's type."""
    kind = client.type(key)
    kind = kind.decode() if isinstance(kind, bytes) else kind
    read = {"string": lambda: [client.get(key)], "hash": lambda: [x for kv in client.hgetall(key).items() for x in kv],
            "list": lambda: client.lrange(key, 0, -1), "set": lambda: list(client.smembers(key)),
            "zset": lambda: [m for m, _ in client.zrange(key, 0, -1, withscores=True)]}
    assert kind in read or kind == "stream", kind
    parts = read[kind]() if kind in read else [json.dumps(e) for e in client.xrange(key)]
    return "\n".join(p.decode("utf-8", "replace") if isinstance(p, bytes) else str(p) for p in parts)
