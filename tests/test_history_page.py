"""The history page in a real browser: Debian's Chromium driven by Playwright, against the real server."""
import datetime
import os
import random
import sqlite3
import urllib.request

import pytest
from playwright.sync_api import expect

from Repository import Repository
from tests.conftest import TOKEN, ServerProcess
from tests.test_admin_page import ARTIFACTS, Tab, browser  # noqa: F401 (the browser fixture)


@pytest.fixture
def server(db_path):
    s = ServerProcess(db_path, "--button=none", "--goal=20", "--admin-token=" + TOKEN).start()
    yield s
    s.stop()


@pytest.fixture
def tab(browser, server):  # noqa: F811
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    t = Tab(context, server)
    yield t
    t.check_clean()
    context.close()


def loaded(tab, loads=1):
    """Wait until the page has drawn what it fetched at least ``loads`` times."""
    tab.page.wait_for_function("n => window.theHistory && window.theHistory.loads >= n", arg=loads, timeout=10000)


def test_charts_draw_the_presses(tab):
    """After presses, the pace line has a step per press and today's bar counts them."""
    for _ in range(3):
        assert tab.server.request("POST", "/api/press")[0] == 200
    page = tab.open("/history").page
    loaded(tab)
    steps = page.locator("#pace-steps")
    expect(steps).to_have_attribute("data-steps", "3")
    expect(page.locator("#pace-summary")).to_contain_text("3 of 20 done")
    today = page.locator("#days-chart rect.today")
    expect(today).to_have_attribute("data-count", "3")
    assert page.locator("#days-chart rect.bar").count() == 30
    expect(page.locator("#pace-chart svg path.pace-line")).to_have_count(1)  # on pace at this round's rate


def test_page_follows_the_feed(tab):
    """A press made while the page is open reaches the chart, the day bar and the list without a reload."""
    page = tab.open("/history").page
    loaded(tab)
    expect(page.locator("#latest-empty")).to_be_visible()
    tab.server.request("POST", "/api/press", {"note": "Live one"})
    expect(page.locator("#latest-rows tr")).to_have_count(1)
    expect(page.locator("#latest-rows td.note")).to_have_text("Live one")
    expect(page.locator("#pace-steps")).to_have_attribute("data-steps", "1")
    expect(page.locator("#days-chart rect.today")).to_have_attribute("data-count", "1")
    tab.server.request("POST", "/api/undo")
    expect(page.locator("#latest-rows tr.undone")).to_have_count(1)
    expect(page.locator("#days-chart rect.today")).to_have_attribute("data-count", "0")
    assert page.evaluate("window.theHistory.fullLoads") == 1  # later changes merge, not reload all


def test_rounds_show_how_long_each_took(tab):
    """A round reached and a round ended by hand appear as two bars, reached and not."""
    tab.server.request("PUT", "/api/count", {"count": 2})  # ends the first round by hand
    tab.server.request("POST", "/api/press")
    tab.server.request("POST", "/api/press")  # 0: goal reached, the round ends
    tab.server.request("PUT", "/api/count", {"count": 20})  # a fresh round starts
    page = tab.open("/history").page
    loaded(tab)
    bars = page.locator("#rounds-chart rect.bar")
    expect(bars).to_have_count(2)
    assert [bars.nth(i).get_attribute("data-reached") for i in range(2)] == ["yes", "no"]
    expect(page.locator("#rounds-summary")).to_contain_text("2 finished rounds · 1 reached the goal")


def test_notes_are_shown_as_text_with_their_source(tab):
    """A note that looks like markup is shown literally, beside its source."""
    tab.server.request("POST", "/api/press", {"note": "<b>x</b>"})
    page = tab.open("/history").page
    loaded(tab)
    row = page.locator("#latest-rows tr").first
    expect(row.locator("td.note")).to_have_text("<b>x</b>")
    assert row.locator("b").count() == 0
    expect(row.locator("td.source")).to_have_text("API")
    expect(row.locator("td.change")).to_have_text("20 → 19")


def test_csv_link_downloads_the_history(tab):
    """The CSV link answers text/csv with the header and the presses."""
    tab.server.request("POST", "/api/press", {"note": "Acme"})
    page = tab.open("/history").page
    loaded(tab)
    link = page.get_by_role("link", name="Download CSV")
    href = link.get_attribute("href")
    assert href == "/api/history.csv"
    with page.expect_download() as download:
        link.click()
    with open(download.value.path(), encoding="utf-8") as f:
        lines = f.read().splitlines()
    assert lines[0] == "\ufeffid,at,source,count_before,count_after,undone,note,by,device"  # the BOM is for Excel
    assert lines[1].startswith("1,") and lines[1].endswith(",api,20,19,false,Acme,,")
    with urllib.request.urlopen(tab.server.url + href) as r:
        assert r.headers["Content-Type"].startswith("text/csv")


def test_the_page_has_the_strict_csp(server):
    """GET /history: 200 HTML under the same CSP as the countdown page, scripts and styles from files."""
    with urllib.request.urlopen(server.url + "/history") as r:
        html = r.read().decode()
        assert r.status == 200 and r.headers["Cache-Control"] == "no-cache"
        assert "unsafe-inline" not in r.headers["Content-Security-Policy"]
    assert "<style" not in html and " style=" not in html
    assert "/static/history.js" in html


def seed(db_path, now=None):
    """A month of made-up presses and rounds with past times, written straight into SQLite.

    The API only ever stores "now", so the screenshots need this to show more than one
    day. It relies on the schema of Repository.py (presses, rounds, counter).
    """
    now = now or datetime.datetime.now(datetime.timezone.utc)
    rng = random.Random(7)
    with Repository(db_path):
        pass  # creates the schema
    iso = lambda t: t.isoformat(timespec="milliseconds")  # noqa: E731
    db = sqlite3.connect(db_path)
    notes = ["Acme Corp", "Globex renewal", None, None, "Initech <pilot>", None, "Umbrella", None, "Hooli", None]
    with db:
        db.execute("DELETE FROM rounds")
        t = now - datetime.timedelta(days=29, hours=3)
        goal = 20
        for n in range(6):  # past rounds: five reached, one ended by hand
            start, count = t, goal
            cur = db.execute("INSERT INTO rounds (started, goal) VALUES (?, ?)", (iso(start), goal))
            rid = cur.lastrowid
            last = 20 if n != 3 else 11
            for _ in range(last):
                t += datetime.timedelta(minutes=rng.randint(20, 600))
                db.execute("INSERT INTO presses (pressed_at, source, count_before, count_after, note, round_id) "
                           "VALUES (?, ?, ?, ?, ?, ?)",
                           (iso(t), rng.choice(["gpio", "gpio", "api", "mqtt"]), count, count - 1, rng.choice(notes), rid))
                count -= 1
            end = t if n != 3 else t + datetime.timedelta(hours=3)
            db.execute("UPDATE rounds SET ended = ?, presses = ?, reached = ? WHERE id = ?",
                       (iso(end), last, int(count == 0), rid))
            t = end + datetime.timedelta(hours=rng.randint(1, 20))
        start = now - datetime.timedelta(days=1, hours=20)
        cur = db.execute("INSERT INTO rounds (started, goal) VALUES (?, ?)", (iso(start), goal))
        t, count = start, goal
        for _ in range(9):
            t += datetime.timedelta(minutes=rng.randint(30, 280))
            db.execute("INSERT INTO presses (pressed_at, source, count_before, count_after, note, round_id) "
                       "VALUES (?, ?, ?, ?, ?, ?)", (iso(t), "gpio", count, count - 1, rng.choice(notes), cur.lastrowid))
            count -= 1
        db.execute("UPDATE rounds SET presses = 9 WHERE id = ?", (cur.lastrowid,))
        db.execute("UPDATE counter SET count = ?, goal = ?, presses = (SELECT COUNT(*) FROM presses)", (count, goal))
    db.close()


@pytest.mark.parametrize("name, width, height", [("laptop", 1366, 768), ("tv", 1920, 1080), ("phone", 390, 844)])
def test_history_fits_laptop_tv_and_phone(browser, db_path, name, width, height):  # noqa: F811
    """With a month of history, at laptop, TV and phone sizes the charts are drawn inside the screen's width."""
    seed(db_path)
    server = ServerProcess(db_path, "--button=none", "--title=Deals this month").start()
    try:
        context = browser.new_context(viewport={"width": width, "height": height})
        t = Tab(context, server)
        page = t.open("/history").page
        loaded(t)
        expect(page.locator("#rounds-chart rect.bar")).to_have_count(6)
        expect(page.locator("#pace-steps")).to_have_attribute("data-steps", "9")
        expect(page.locator("#pace-legend-text")).to_contain_text("usual pace")
        assert sum(int(page.locator("#days-chart rect.bar").nth(i).get_attribute("data-count")) for i in range(30)) > 60
        for selector in ("#pace-chart svg", "#days-chart svg", "#rounds-chart svg", "#latest", "#csv"):
            box = page.locator(selector).bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width + 1, selector
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        os.makedirs(ARTIFACTS, exist_ok=True)
        page.screenshot(path=os.path.join(ARTIFACTS, "history-%s-%dx%d.png" % (name, width, height)))
        page.screenshot(path=os.path.join(ARTIFACTS, "history-%s-%dx%d-full.png" % (name, width, height)), full_page=True)
        t.check_clean()
        context.close()
    finally:
        server.stop()


def test_history_is_read_in_pages_of_the_servers_limit(tab):
    """history.js asks for as many presses per read as the page's data-limits says the server gives: no copy of the number."""
    for _ in range(5):
        tab.server.request("POST", "/api/press")

    # The same page, as if the server gave at most 2 presses a read: its data-limits changed
    # as the body is parsed, before the deferred scripts run.
    tab.page.add_init_script("""new MutationObserver(function (changes, seen) {
        if (document.body) {
            const limits = JSON.parse(document.body.dataset.limits);
            limits.history = 2;
            document.body.dataset.limits = JSON.stringify(limits);
            seen.disconnect();
        }
    }).observe(document, {childList: true, subtree: true});""")
    page = tab.open("/history").page
    loaded(tab)
    expect(page.locator("#days-chart rect.today")).to_have_attribute("data-count", "5")
    reads = [u.split("/api/history", 1)[1] for u in tab.requests if "/api/history?" in u]
    assert reads[:3] == ["?limit=2", "?limit=2&before=4", "?limit=2&before=2"]  # the load; then refreshes


def test_leaders_of_the_round_and_of_all_time_follow_the_feed(tab):
    """The history page lists the round's and the all-time leaders, as text, and updates them live."""
    tab.server.request("POST", "/api/press", {"by": "Ana"})
    tab.server.request("PUT", "/api/count", {"count": 20})  # a new round: Ana stays in all time only
    page = tab.open("/history").page
    loaded(tab)
    expect(page.locator("#leaders-round-empty")).to_be_visible()
    expect(page.locator("#leaders-all li")).to_have_text(["Ana1"])
    tab.server.request("POST", "/api/press", {"by": "<i>Ben</i>"})
    tab.server.request("POST", "/api/press", {"by": "<i>Ben</i>"})
    expect(page.locator("#leaders-round li .name")).to_have_text(["<i>Ben</i>"])
    expect(page.locator("#leaders-all li .name")).to_have_text(["<i>Ben</i>", "Ana"])
    expect(page.locator("#leaders-round-empty")).to_be_hidden()
    assert page.locator("#leaders-all i").count() == 0
