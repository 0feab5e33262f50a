"""Make the README's screenshots: docs/screenshot.png (the countdown), docs/admin.png, docs/history.png.

Fills a throwaway database with three weeks of presses (through Repository, with its clock
set back), starts The Button on 127.0.0.1 with it, makes today's presses with notes through
the write API, photographs the three pages with Playwright and Debian's Chromium, then
stops the server. Run it again after changing a page:

    .venv/bin/python tools/screenshots.py
"""
import datetime
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from playwright.sync_api import sync_playwright

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from Repository import Repository  # noqa: E402 - the project's own store, for the past

DOCS = os.path.join(ROOT, "docs")
TOKEN = "screenshots-token-0123456789"
SIZE = {"width": 1280, "height": 720}
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--autoplay-policy=no-user-gesture-required"]  # as deploy/kiosk.sh starts it on a TV
PAST_NOTES = ["Globex", None, None, "Initech renewal", None, "Hooli", None, "Soylent", None]
PAST_BY = ["Ana", "Ben", None, "Ana", "Chidi", "Ben", "Ana", None, "Dana"]
NOTES = ["Umbrella (2 years)", None, "Stark Industries", "Acme Corp"]  # today's, through the API
BY = ["Chidi", "Ana", "Ben", "Ana"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(base: str, method: str, path: str, body=None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method,
                                     headers={"Authorization": "Bearer " + TOKEN})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


def wait_until_up(base: str, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit("the server exited with status %s" % server.returncode)
        try:
            urllib.request.urlopen(base + "/healthz", timeout=1).close()
            return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)  # nothing to wait on but the port
    sys.exit("the server did not answer within 15 s")


def seed_past(path: str) -> None:
    """Two rounds that reached their goal and most of the current one, on office days in the past."""
    rng = random.Random(7)
    clock = [datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=25)]

    def advance(hours: float) -> None:
        clock[0] += datetime.timedelta(hours=hours)
        if not 8 <= clock[0].hour < 18:  # office hours (UTC will do for a picture)
            clock[0] = (clock[0] + datetime.timedelta(hours=14)).replace(hour=8) \
                + datetime.timedelta(minutes=rng.uniform(0, 480))
        while clock[0].weekday() >= 5:  # nobody presses at the weekend
            clock[0] += datetime.timedelta(days=1)

    advance(0)
    store = Repository(path, goal=10, clock=lambda: clock[0].isoformat(timespec="milliseconds"))
    try:
        for goal, hours in ((10, 5), (12, 4)):
            store.set(count=goal, goal=goal)
            for _ in range(goal):
                advance(rng.uniform(0.3, 1.6) * hours)
                store.press(source="gpio")
            advance(30)
        store.set(count=20, goal=20, title="Deals this quarter")
        for note, by in zip(PAST_NOTES, PAST_BY):
            advance(rng.uniform(2, 6))
            store.press(source="api" if note else "gpio", note=note, by=by)
        assert clock[0] < datetime.datetime.now(datetime.timezone.utc), "the past ran into the present"
    finally:
        store.close()


def seed_today(base: str) -> None:
    for note, by in zip(NOTES, BY):
        call(base, "POST", "/api/press", {"note": note, "by": by} if note else {"by": by})


def shoot(base: str) -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport=SIZE)
            page.goto(base + "/")
            page.wait_for_selector("body[data-state='live']")
            page.screenshot(path=os.path.join(DOCS, "screenshot.png"))

            page.goto(base + "/admin")
            page.fill("#token", TOKEN)
            page.click("#sign-in")
            page.wait_for_selector("body[data-signed-in='yes'][data-state='live']")
            page.wait_for_selector("#latest-rows tr")
            page.fill("#note", "Wayne Enterprises")
            page.fill("#who", "Dana")
            page.screenshot(path=os.path.join(DOCS, "admin.png"))

            page.goto(base + "/history")
            page.wait_for_selector("body[data-loaded='yes'][data-state='live']")
            page.screenshot(path=os.path.join(DOCS, "history.png"))
        finally:
            browser.close()


def main() -> None:
    work = tempfile.mkdtemp(prefix="button-shots-")
    db = os.path.join(work, "shots.db")
    seed_past(db)
    port = free_port()
    base = "http://127.0.0.1:%d" % port
    env = dict(os.environ, BUTTON_ADMIN_TOKEN=TOKEN)
    server = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "websocketserver.py"), "--port=%d" % port, "--address=127.0.0.1",
         "--db=" + db, "--button=none",
         "--logging=warning"],
        env=env, stdin=subprocess.DEVNULL)
    try:
        wait_until_up(base, server)
        seed_today(base)
        shoot(base)
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    for name in ("screenshot.png", "admin.png", "history.png"):
        path = os.path.join(DOCS, name)
        shrink(path)
        print("docs/%s: %d KB" % (name, os.path.getsize(path) // 1024))


def shrink(path: str) -> None:
    """256 colours instead of millions: a third of the size, no visible change on these pages."""
    try:
        from PIL import Image  # Pillow, where it is installed (it is no dependency of The Button)
    except ImportError:
        print("no Pillow here: %s stays full colour" % os.path.basename(path))
        return
    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)


if __name__ == "__main__":
    main()
