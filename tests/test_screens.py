"""Screens you can see and steer (CONTRACT.md): the hello, the registry, its file, the API, metrics."""
import asyncio
import json
import os
import re
import time

import pytest
from playwright.sync_api import expect
from tornado.testing import gen_test
from tornado.websocket import websocket_connect

from tests.conftest import ROOT, ServerProcess, until
from tests.conftest import TOKEN as PROCESS_TOKEN
from tests.test_admin_page import ARTIFACTS, Tab, signed_in
from tests.test_metrics import value
from tests.test_page import browser, launch, playwright, quiet, quietly_wait  # noqa: F401 (fixtures)
from tests.test_server import AUTH, ServerTestCase
from thebutton.feed import HELLOS_PER_SECOND
from thebutton.screens import Hello, Screens, parse_hello


def hello(screen="Lobby TV", version="v1", sound="on", width=1920, height=1080, **more):
    body = {"screen": screen, "version": version, "sound": sound, "width": width, "height": height, **more}
    return json.dumps({"hello": body})


class ScreensTestCase(ServerTestCase):
    async def named(self, name, **fields):
        """A socket that said hello as ``name``, once the registry has it."""
        ws = await self.ws_connect()
        await self.read_json(ws)
        updates = self.feed.screens.updates
        ws.write_message(hello(name, **fields))
        await until(lambda: self.feed.screens.updates > updates)
        return ws

    async def call(self, method, path, body=None, headers=AUTH):
        """ServerTestCase.api for a test that runs on the IOLoop."""
        data = None if body is None and method == "GET" else json.dumps(body if body is not None else {})
        r = await self.http_client.fetch(self.get_url(path), method=method, body=data, headers=headers,
                                         raise_error=False)
        return r.code, json.loads(r.body) if r.body else None

    async def listing(self):
        code, body = await self.call("GET", "/api/screens")
        assert code == 200, body
        return {row["screen"]: row for row in body["screens"]}, [row["screen"] for row in body["screens"]]


class RegistryTest(ScreensTestCase):
    @gen_test
    async def test_named_screens_are_listed_with_what_they_said(self):
        """Each hello's screen is listed: address, version (current or not), sound and size."""
        self.feed.version = "v1"
        await self.named("Lobby TV")
        await self.named("Kitchen", version="v0", sound="blocked", width=1280, height=720)
        rows, _ = (await self.listing())
        assert set(rows) == {"Lobby TV", "Kitchen"}
        lobby, kitchen = rows["Lobby TV"], rows["Kitchen"]
        assert lobby["connected"] is True and lobby["address"] == "127.0.0.1"
        assert lobby["current"] is True and kitchen["current"] is False and kitchen["version"] == "v0"
        assert kitchen["sound"] == "blocked" and (kitchen["width"], kitchen["height"]) == (1280, 720)
        assert set(lobby) == {"screen", "address", "connected", "since", "last_seen", "version", "current",
                              "sound", "width", "height"}

    @gen_test
    async def test_two_sockets_of_one_name_are_one_screen_until_both_close(self):
        """Two tabs named alike are one connected screen; it is gone only when the last closes."""
        first = await self.named("Lobby TV")
        second = await self.named("Lobby TV", sound="off")
        rows, order = (await self.listing())
        assert order == ["Lobby TV"] and rows["Lobby TV"]["sound"] == "off"
        assert self.feed.screens.counts() == {"connected": 1, "disconnected": 0}
        first.close()
        await until(lambda: len(self.feed.waiters) == 1)
        assert (await self.listing())[0]["Lobby TV"]["connected"] is True
        second.close()
        await until(lambda: not self.feed.waiters)
        row = (await self.listing())[0]["Lobby TV"]
        assert row["connected"] is False and row["last_seen"] >= row["since"]
        assert self.feed.screens.counts() == {"connected": 0, "disconnected": 1}

    @gen_test
    async def test_when_one_of_two_sockets_closes_the_other_speaks_for_the_screen(self):
        """A TV without sound and a laptop of the same name: once the laptop goes, the row is the TV's again."""
        tv = await self.named("Lobby TV", sound="blocked", width=1920, height=1080)
        laptop = await self.named("Lobby TV", sound="on", width=1280, height=720)
        assert (await self.listing())[0]["Lobby TV"]["sound"] == "on"
        laptop.close()
        await until(lambda: len(self.feed.waiters) == 1)
        row = (await self.listing())[0]["Lobby TV"]
        assert row["connected"] is True
        assert (row["sound"], row["width"], row["height"]) == ("blocked", 1920, 1080)
        tv.close()

    @gen_test
    async def test_connected_screens_come_first(self):
        """The list has the connected screens first, then those gone, the latest seen first."""
        gone = await self.named("Gone TV")
        await self.named("Here TV")
        gone.close()
        await until(lambda: len(self.feed.waiters) == 1)
        assert (await self.listing())[1] == ["Here TV", "Gone TV"]

    @gen_test
    async def test_other_messages_and_bad_hellos_are_ignored(self):
        """Anything but a valid hello changes nothing, and the socket stays open and fed."""
        bad = ["press", '{"count": 0}', "[]", '{"hello": 1}', hello(""), hello("   "), hello("a" * 41),
               hello("bad\u202eside"), hello(sound="loud"), hello(width=-1), hello(height=True),
               hello(version="x y"), hello(version=""), hello(width="1920")]
        for n, message in enumerate(bad, 1):  # a socket each: every one is read, none dropped by the rate
            ws = await self.ws_connect()
            await self.read_json(ws)
            ws.write_message(message)
            await until(lambda n=n: self.feed.messages_ignored == n)
        assert self.feed.hellos_dropped == 0
        await self.http_client.fetch(self.get_url("/api/press"), method="POST", body=b"", headers=AUTH)
        assert (await self.read_json(ws))["count"] == 2
        assert (await self.listing())[1] == [] and self.feed.screens.updates == 0
        assert self.repository.state().count == 2

    @gen_test
    async def test_a_message_over_1_kb_closes_only_that_socket(self):
        """A hello padded past 1 KB closes its socket (1009); a named screen beside it is unharmed."""
        good = await self.named("Lobby TV")
        bad = await self.ws_connect()
        await self.read_json(bad)
        bad.write_message(hello("Big", pad="x" * 1024))
        assert await bad.read_message() is None
        assert bad.close_code == 1009
        rows, order = (await self.listing())
        assert order == ["Lobby TV"] and rows["Lobby TV"]["connected"] is True
        await self.http_client.fetch(self.get_url("/api/press"), method="POST", body=b"", headers=AUTH)
        assert (await self.read_json(good))["count"] == 2

    @gen_test
    async def test_a_flood_of_hellos_is_mostly_dropped_unread(self):
        """1,000 hellos at once: a few per second reach the registry, the rest are dropped; the server answers."""
        ws = await self.ws_connect()
        await self.read_json(ws)
        start = self.io_loop.time()
        for i in range(1000):
            ws.write_message(hello("Flood", width=i))
        await until(lambda: self.feed.screens.updates + self.feed.hellos_dropped >= 1000)
        seconds = self.io_loop.time() - start
        assert 1 <= self.feed.screens.updates <= HELLOS_PER_SECOND * (int(seconds) + 2)
        assert self.feed.hellos_dropped >= 1000 - HELLOS_PER_SECOND * (int(seconds) + 2)
        code, body = await self.call("GET", "/api/count", headers={})
        assert code == 200
        assert (await self.listing())[0]["Flood"]["connected"] is True
        # The last word counts: the latest hello past the limit is read once its second is over.
        await until(lambda: self.feed.screens.screens["Flood"].width == 999, timeout=5)
        assert self.feed.screens.updates <= HELLOS_PER_SECOND * (int(self.io_loop.time() - start) + 2)

    @gen_test
    async def test_five_clicks_on_mute_in_a_second_end_muted(self):
        """A page's quick changes past the limit: the registry ends with the last of them, not the fourth."""
        ws = await self.named("Lobby TV", sound="on")
        for sound in ("off", "on", "on", "off"):  # with the first: five in a second, the last one muted
            ws.write_message(hello("Lobby TV", sound=sound))
        await until(lambda: self.feed.hellos_dropped >= 1)
        await until(lambda: self.feed.screens.screens["Lobby TV"].sound == "off", timeout=5)
        rows, _ = await self.listing()
        assert rows["Lobby TV"]["sound"] == "off"

    @gen_test
    async def test_a_screen_renamed_by_its_socket_leaves_its_old_name(self):
        """A socket whose next hello has another name counts as that screen only."""
        ws = await self.named("Old name")
        updates = self.feed.screens.updates
        ws.write_message(hello("New name"))
        await until(lambda: self.feed.screens.updates > updates)
        rows, order = (await self.listing())
        assert order == ["New name", "Old name"] and rows["Old name"]["connected"] is False


class CommandTest(ScreensTestCase):
    @gen_test
    async def test_reload_and_identify_reach_only_that_screens_sockets(self):
        """reload and identify go to the named screen's sockets (both tabs), not to the others."""
        lobby = [await self.named("Lobby TV"), await self.named("Lobby TV")]
        kitchen = await self.named("Kitchen")
        code, body = await self.call("POST", "/api/screens/identify", {"screen": "Lobby TV"})
        assert (code, body) == (200, {"sent": 1})
        for ws in lobby:
            assert await self.read_json(ws) == {"command": "identify", "screen": "Lobby TV"}
        code, body = await self.call("POST", "/api/screens/reload", {"screen": "*"})
        assert (code, body) == (200, {"sent": 2})
        for ws in [*lobby, kitchen]:
            assert await self.read_json(ws) == {"command": "reload"}  # Kitchen's first message: no identify

    @gen_test
    async def test_identify_all_tells_each_screen_its_own_name(self):
        a, b = await self.named("A"), await self.named("B")
        code, body = await self.call("POST", "/api/screens/identify", {"screen": "*"})
        assert (code, body) == (200, {"sent": 2})
        assert (await self.read_json(a))["screen"] == "A" and (await self.read_json(b))["screen"] == "B"

    @gen_test
    async def test_unknown_or_disconnected_screens_are_404(self):
        gone = await self.named("Gone TV")
        gone.close()
        await until(lambda: not self.feed.waiters)
        for name in ("Gone TV", "Nobody"):
            for command in ("reload", "identify"):
                code, body = await self.call("POST", "/api/screens/" + command, {"screen": name})
                assert code == 404 and body["error"], (name, command)

    def test_bad_bodies_are_400_and_tokens_are_needed(self):
        for body in ({}, {"screen": ""}, {"screen": 3}, {"screen": "a" * 41}, {"screen": "x", "more": 1}, [], "x"):
            code, answer = self.api("POST", "/api/screens/reload", body)
            assert code == 400 and answer["error"], body
        assert self.api("GET", "/api/screens", headers={})[0] == 401
        assert self.api("POST", "/api/screens/reload", {"screen": "*"}, headers={})[0] == 401
        assert self.api("GET", "/api/screens", headers={"Authorization": "Bearer wrong"})[0] == 403
        assert self.api("POST", "/api/screens/identify", {"screen": "*"}) == (200, {"sent": 0})


class MetricsTest(ScreensTestCase):
    @gen_test
    async def test_connected_and_disconnected_screens_are_counted(self):
        await self.named("A")
        gone = await self.named("B")
        gone.close()
        await until(lambda: len(self.feed.waiters) == 1)
        text = (await self.http_client.fetch(self.get_url("/metrics"))).body.decode()
        assert value(text, "the_button_screens", state="connected") == 1
        assert value(text, "the_button_screens", state="disconnected") == 1


# ---- the registry on its own --------------------------------------------------------------
class Clock:
    def __init__(self):
        self.now = 1_800_000_000.0

    def __call__(self):
        return self.now


def said(name, **fields):
    return Hello(**{"screen": name, "version": "v1", "sound": "on", "width": 10, "height": 10, **fields})


def test_parse_hello_takes_a_valid_one_and_ignores_extra_fields():
    assert parse_hello(hello("  Lobby TV ", later="field")) == Hello("Lobby TV", "v1", "on", 1920, 1080)
    assert parse_hello(b'{"hello": {}}') is None and parse_hello("{") is None


def test_the_file_keeps_gone_screens_across_a_new_registry(tmp_path):
    """Written by the writer thread and at close; a new registry on the file lists them as gone."""
    path = str(tmp_path / "counter.screens.json")
    clock = Clock()
    screens = Screens(path, clock=clock)
    screens.hello(said("Lobby TV"), "10.0.0.5")
    screens.hello(said("Kitchen"), "10.0.0.6")
    screens.gone("Kitchen")
    screens.tick()
    screens._pending.result(timeout=10)
    assert json.load(open(path))["screens"] and not os.path.exists(path + ".tmp")
    clock.now += 60
    screens.close()
    again = Screens(path, clock=clock)
    rows = {row["screen"]: row for row in again.listing("v1")}
    assert set(rows) == {"Lobby TV", "Kitchen"} and not any(row["connected"] for row in rows.values())
    assert rows["Lobby TV"]["address"] == "10.0.0.5"
    assert rows["Lobby TV"]["last_seen"] > rows["Kitchen"]["last_seen"]  # Lobby was there until the stop


def test_gone_screens_are_forgotten_after_7_days():
    clock = Clock()
    screens = Screens(clock=clock)
    screens.hello(said("Old"), "a")
    screens.gone("Old")
    clock.now += 7 * 86400 - 1
    assert [row["screen"] for row in screens.listing("v1")] == ["Old"]
    clock.now += 2
    assert screens.listing("v1") == [] and screens.counts() == {"connected": 0, "disconnected": 0}


def test_the_registry_is_bounded_and_forgets_the_longest_gone_first():
    clock = Clock()
    screens = Screens(clock=clock, most=3)
    for name in ("A", "B", "C"):
        screens.hello(said(name), "a")
        clock.now += 1
    screens.gone("B")
    clock.now += 1
    screens.gone("A")
    assert screens.hello(said("D"), "a")  # B went first: it goes
    assert {row["screen"] for row in screens.listing("v1")} == {"A", "C", "D"}
    screens.hello(said("A"), "a")
    assert not screens.hello(said("E"), "a")  # all three connected: no room, nothing forgotten
    assert {row["screen"] for row in screens.listing("v1")} == {"A", "C", "D"}


def test_a_rename_refused_by_a_full_registry_still_leaves_the_old_name():
    """A socket renamed while every place is taken no longer holds its old name's place."""
    clock = Clock()
    screens = Screens(clock=clock, most=2)
    assert screens.hello(said("A"), "a", socket=1) and screens.hello(said("B"), "a", socket=2)
    clock.now += 1
    assert screens.hello(said("C"), "a", before="A", socket=1)  # A left its place, so C has one
    assert not screens.connected("A") and screens.connected("C")
    assert {row["screen"] for row in screens.listing("v1")} == {"B", "C"}  # A, gone longest, made the room
    screens.gone("C", socket=1)
    screens.gone("B", socket=2)
    assert screens.counts() == {"connected": 0, "disconnected": 2}


def test_an_unreadable_file_starts_an_empty_list(tmp_path):
    path = tmp_path / "counter.screens.json"
    path.write_text("{not json")
    assert Screens(str(path)).listing("v1") == []


# ---- the real server ----------------------------------------------------------------------
async def say_hello(url, name):
    """A raw socket of the real server that says hello as ``name`` and stays open until cancelled."""
    ws = await websocket_connect(url.replace("http", "ws") + "/websocket")
    await ws.read_message()
    ws.write_message(hello(name))
    return ws


def test_gone_screens_stay_listed_across_a_restart(server_factory, db_path):
    """A screen connected at the stop, and one gone before it, are listed as gone by the next server."""
    server = server_factory("--button=none", "--admin-token=" + PROCESS_TOKEN)

    async def visit():
        kept = await say_hello(server.url, "Lobby TV")
        left = await say_hello(server.url, "Kitchen")
        left.close()
        for _ in range(500):
            rows = {r["screen"]: r for r in server.request("GET", "/api/screens")[1]["screens"]}
            if set(rows) == {"Lobby TV", "Kitchen"} and not rows["Kitchen"]["connected"]:
                break
            await asyncio.sleep(0.02)
        assert rows["Lobby TV"]["connected"] is True
        return kept

    kept = asyncio.run(visit())
    assert server.stop() == 0
    del kept
    assert os.path.exists(os.path.splitext(db_path)[0] + ".screens.json")
    assert_ignored_by_git(os.listdir(os.path.dirname(db_path)))
    again = server_factory("--button=none", "--admin-token=" + PROCESS_TOKEN, db=db_path)
    code, body = again.request("GET", "/api/screens")
    assert code == 200
    assert {r["screen"]: r["connected"] for r in body["screens"]} == {"Lobby TV": False, "Kitchen": False}
    text = __import__("urllib.request").request.urlopen(again.url + "/metrics", timeout=10).read().decode()
    assert value(text, "the_button_screens", state="disconnected") == 2


# ---- real pages in Chromium ---------------------------------------------------------------


@pytest.fixture
def server(db_path):
    s = ServerProcess(db_path, "--button=none", "--goal=20", "--admin-token=" + PROCESS_TOKEN).start()
    yield s
    s.stop()


def wait_for_screens(server, condition, timeout=15.0):
    """GET /api/screens until ``condition(rows by name)`` holds: the server's view, polled to a deadline."""
    deadline = time.monotonic() + timeout
    while True:
        code, body = server.request("GET", "/api/screens")
        assert code == 200, body
        rows = {row["screen"]: row for row in body["screens"]}
        if condition(rows):
            return rows
        assert time.monotonic() < deadline, "the screens never became right: %r" % rows
        time.sleep(0.05)  # polling the server to a deadline: no event reaches the test from it


def page_of(browser, server, path="/", width=1280, height=800):
    page = browser.new_context(viewport={"width": width, "height": height}).new_page()
    page.goto(server.url + path)
    expect(page.locator("body")).to_have_attribute("data-state", "live", timeout=15000)
    return page


def test_a_named_page_says_hello_with_its_version_and_size(browser, server):
    page = page_of(browser, server, "/?screen=Lobby%20TV", 1024, 600)
    version = page.locator("body").get_attribute("data-version")
    rows = wait_for_screens(server, lambda rows: "Lobby TV" in rows)
    lobby = rows["Lobby TV"]
    assert lobby["connected"] and lobby["current"] and lobby["version"] == version
    assert (lobby["width"], lobby["height"]) == (1024, 600) and lobby["address"] == "127.0.0.1"
    page.set_viewport_size({"width": 800, "height": 500})  # a new size is told again
    wait_for_screens(server, lambda rows: (rows["Lobby TV"]["width"], rows["Lobby TV"]["height"]) == (800, 500))
    page.close()
    wait_for_screens(server, lambda rows: rows["Lobby TV"]["connected"] is False)


def test_a_generated_name_is_kept_across_a_reload_and_a_bad_one_is_not_used(browser, server):
    page = page_of(browser, server, "/?screen=" + "x" * 41)  # 41 characters: not a name
    name = page.evaluate("window.theButton.screen")
    assert re.fullmatch(r"Screen [0-9a-f]{4}", name), name
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-state", "live", timeout=15000)
    assert page.evaluate("window.theButton.screen") == name
    rows = wait_for_screens(server, lambda rows: name in rows and rows[name]["connected"])
    assert list(rows) == [name]


NAMES_TO_TRY = ["Lobby TV", "\u00ad", "\ue000 Lobby", "\u3164", "\u2800\u2800", "Caf\u00e9",
                "e" + "\u0301" * 4, "e" + "\u0301" * 5, "\u200dA", "a\u202eb", "  Kitchen  ", "x" * 40]


def test_the_page_keeps_only_a_name_the_server_takes(browser, server):
    """For each ?screen= the page uses it exactly when check_name takes it (else it makes one), so that
    every page is listed; the names are the hard cases of the text rules."""
    from urllib.parse import quote

    from thebutton.store import InvalidValue
    from thebutton.validation import check_name

    page = page_of(browser, server, "/")
    for name in NAMES_TO_TRY:
        try:
            expected = check_name(name, "screen")
        except InvalidValue:
            expected = None
        page.goto(server.url + "/?screen=" + quote(name))
        expect(page.locator("body")).to_have_attribute("data-state", "live", timeout=15000)
        used = page.evaluate("window.theButton.screen")
        if expected is None:
            assert re.fullmatch(r"Screen [0-9a-f]{4}", used), (name, used)
        else:
            assert used == expected, name
        wait_for_screens(server, lambda rows, used=used: used in rows and rows[used]["connected"])


def test_identify_shows_the_name_and_reload_reloads_the_page(browser, server):
    page = page_of(browser, server, "/?screen=Lobby%20TV")
    wait_for_screens(server, lambda rows: "Lobby TV" in rows)
    assert server.request("POST", "/api/screens/identify", {"screen": "Lobby TV"}) == (200, {"sent": 1})
    shown = page.locator("#identify")
    expect(shown).to_be_visible()
    expect(shown).to_have_text("Lobby TV")
    expect(shown).to_be_hidden(timeout=13000)  # after 10 s
    page.evaluate("window.notReloaded = true")
    with page.expect_navigation(timeout=15000):
        assert server.request("POST", "/api/screens/reload", {"screen": "Lobby TV"}) == (200, {"sent": 1})
    expect(page.locator("body")).to_have_attribute("data-state", "live", timeout=15000)
    assert page.evaluate("window.notReloaded === undefined")


def test_the_sound_state_is_reported_blocked_on_and_off(playwright, server):
    """Headless Chromium blocks sound until a gesture: "blocked"; enabled: "on"; muted: "off"."""
    b = launch(playwright)
    try:
        page = b.new_page()
        cdp = page.context.new_cdp_session(page)  # read without a gesture, which would let sound start
        page.goto(server.url + "/?screen=Quiet")
        quietly_wait(cdp, "document.body.dataset.state === 'live'")
        wait_for_screens(server, lambda rows: rows.get("Quiet", {}).get("sound") == "blocked")
        assert quiet(cdp, "document.body.dataset.sound") == "blocked"
        page.locator("#enable-sound").click()
        wait_for_screens(server, lambda rows: rows["Quiet"]["sound"] == "on")
        page.locator("#mute").click()
        wait_for_screens(server, lambda rows: rows["Quiet"]["sound"] == "off")
    finally:
        b.close()


def test_the_admin_page_lists_the_screens_and_steers_them(browser, server):
    """The Screens table: a dark TV and one without sound flagged; Identify and Reload reach the TV."""
    lobby = page_of(browser, server, "/?screen=Lobby%20TV", 1920, 1080)
    lobby.locator("#enable-sound").click()  # whoever set the TV up clicked once: sound on
    dark = page_of(browser, server, "/?screen=Dark%20TV")
    quiet_page = browser.new_context().new_page()
    quiet_page.goto(server.url + "/?screen=Quiet%20TV")  # nobody clicked: sound blocked
    wait_for_screens(server, lambda rows: len(rows) == 3 and rows["Lobby TV"]["sound"] == "on")
    dark.close()
    wait_for_screens(server, lambda rows: rows["Dark TV"]["connected"] is False)
    for name, width, height in (("tv", 1920, 1080), ("phone", 390, 844)):
        t = Tab(browser.new_context(viewport={"width": width, "height": height}), server)
        page = signed_in(t)
        rows = page.locator("#screens-rows tr")
        expect(rows).to_have_count(3)
        expect(rows.nth(2)).to_have_class(re.compile(r"\bdark\b"))
        expect(rows.nth(2).locator("td.seen")).to_have_text(re.compile(r"^Last seen \d+ seconds? ago$"))  # Intl's words
        expect(page.locator("#screens-rows tr[data-screen='Quiet TV']")).to_have_class(re.compile(r"\bmuted\b"))
        expect(page.locator("#screens-rows tr[data-screen='Quiet TV'] td.sound")).to_have_text("Sound blocked")
        lobby_row = page.locator("#screens-rows tr[data-screen='Lobby TV']")
        expect(lobby_row).not_to_have_class(re.compile(r"\b(dark|muted|old)\b"))
        expect(lobby_row.locator("td.seen")).to_have_text("Connected")
        expect(lobby_row.locator("td.version")).to_have_text("Current")
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        os.makedirs(ARTIFACTS, exist_ok=True)
        page.locator("#screens").scroll_into_view_if_needed()
        page.screenshot(path=os.path.join(ARTIFACTS, "admin-screens-%s.png" % name), full_page=True)
        if name == "tv":
            lobby_row.get_by_role("button", name="Identify").click()
            expect(lobby.locator("#identify")).to_have_text("Lobby TV")
            expect(page.locator("#screens-done")).to_have_text("Sent to 1 screen.")
            lobby.evaluate("window.notReloaded = true")
            with lobby.expect_navigation(timeout=15000):
                lobby_row.get_by_role("button", name="Reload").click()
            assert lobby.evaluate("window.notReloaded === undefined")
            expect(rows.nth(2).get_by_role("button", name="Reload")).to_be_disabled()
        t.check_clean()
        t.page.context.close()


def assert_ignored_by_git(names):
    """Each file the server wrote beside counter.db would be ignored in a checkout (.gitignore's
    patterns without a slash match a name anywhere), so that running it leaves `git status` clean."""
    import fnmatch

    with open(os.path.join(ROOT, ".gitignore")) as f:
        patterns = [line.strip() for line in f if line.strip() and not line.startswith("#")]
    names_only = [p for p in patterns if "/" not in p.rstrip("/")]
    assert names_only, patterns
    left = [n for n in names if not any(fnmatch.fnmatch(n, p) for p in names_only if not p.endswith("/"))]
    assert left == []
