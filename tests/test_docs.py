"""The README matches the code: its options table, links, curl lines and layout."""
import io
import json
import os
import re

from tornado.options import options

import websocketserver  # noqa: F401 - defines the options
from tests.conftest import ROOT

OURS = {"port", "address", "db", "goal", "button", "pin", "pull", "admin-token", "title",
        "max-connections", "ping-interval", "night", "round", "webhook", "mqtt", "mqtt-topic",
        "mqtt-discovery", "mqtt-commands", "store", "store-key", "hosts", "viewers-per-address", "leaderboard",
        "buttons", "hold", "led", "lang"}


def ours():
    """The options websocketserver.py defines (Tornado groups options by the file that defines them)."""
    [group] = [g for g in options.groups() if g.endswith("websocketserver.py")]
    return {name.replace("_", "-") for name in options.group_dict(group)}


def test_every_option_is_documented_in_readme():
    """Each option the server defines has a row in the README table, and no row is stale."""
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    documented = set(re.findall(r"^\| `--([a-z-]+)` \|", readme, re.M))
    defined = ours()
    assert defined == OURS
    assert documented == defined


def test_every_option_has_help():
    """Each option says what it does in --help."""
    out = io.StringIO()
    options.print_help(out)
    for name in OURS:
        line = re.search(r"^\s*--%s(=\S*)?\s+(.*)$" % re.escape(name), out.getvalue(), re.M)
        assert line and len(line.group(2)) > 10, name


def readme():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        return f.read()


def test_readme_links_and_deploy_files_exist():
    """Every picture and file the README links is in the repository, and it names the deploy scripts."""
    text = readme()
    for script in ("deploy/install.sh", "deploy/kiosk.sh", "deploy/kiosk.desktop", "deploy/the-button.service"):
        assert script in text, script
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    assert "docs/screenshot.png" in targets
    local = [t for t in targets if not re.match(r"^[a-z]+:|^#", t)]
    missing = [t for t in local if not os.path.exists(os.path.join(ROOT, t))]
    assert not missing, missing


def test_readme_curl_lines_name_only_routes_the_app_has():
    """Each `$ curl` line asks for a route make_app serves, and its JSON answer is JSON."""
    import tempfile

    from Repository import Repository
    from tests.conftest import build_app

    with tempfile.TemporaryDirectory() as tmp:
        store = Repository(os.path.join(tmp, "docs.db"))
        try:
            app = build_app(store)
        finally:
            store.close()
    routes = [rule.matcher.regex for rule in app.wildcard_router.rules]
    lines = readme().splitlines()
    curls = [(i, line) for i, line in enumerate(lines) if line.strip().startswith("$ curl")]
    assert len(curls) >= 10
    paths = set()
    for i, line in curls:
        url = re.search(r"http://localhost:8888(/[^\s']*)", line)
        assert url, line
        path = url.group(1).split("?")[0]
        paths.add(path)
        assert any(r.fullmatch(path) for r in routes), "no route for %s" % path
        answer = lines[i + 1].strip()
        if answer.startswith("{"):
            json.loads(answer)
    for path in ("/api/press", "/api/undo", "/api/count", "/api/history", "/api/history.csv", "/api/rounds"):
        assert path in paths, path


def test_layout_names_every_module_and_page():
    """The README's Layout section names each top-level module and template, so a new one gets its line."""
    text = readme()
    layout = text[text.index("## Layout"):]
    layout = layout[:layout.index("```", layout.index("```") + 3)]  # the tree
    names = [n for n in os.listdir(ROOT) if n.endswith((".py", ".html"))]
    assert "websocketserver.py" in names
    missing = [n for n in names if n not in layout]
    package = [n for n in os.listdir(os.path.join(ROOT, "thebutton")) if n.endswith(".py") and n != "__init__.py"]
    assert "store.py" in package
    missing += ["thebutton/" + n for n in package if "  %s " % n not in layout]
    assert not missing, missing


def test_the_top_level_holds_only_the_design_cards_modules():
    """Beside websocketserver.py, Button.py and Repository.py, every module lives in thebutton/."""
    modules = sorted(n for n in os.listdir(ROOT) if n.endswith(".py"))
    assert modules == ["Button.py", "Repository.py", "websocketserver.py"]


def test_the_package_never_imports_the_top_level():
    """thebutton/ imports neither websocketserver, Button nor Repository (they import it)."""
    top = re.compile(r"^\s*(from|import)\s+(websocketserver|Button|Repository)\b", re.M)
    folder = os.path.join(ROOT, "thebutton")
    offenders = []
    for name in sorted(os.listdir(folder)):
        if name.endswith(".py"):
            with open(os.path.join(folder, name), encoding="utf-8") as f:
                offenders += [name for _ in top.finditer(f.read())]
    assert not offenders, offenders


def test_no_requirements_file_installs_a_gpio_library():
    """The GPIO library comes from apt only (README and install.sh): pip would shadow the OS's rpi-lgpio."""
    gpio = re.compile(r"^\s*(RPi[.-]GPIO|rpi-lgpio|lgpio)\b", re.I | re.M)
    named = []
    for name in sorted(os.listdir(ROOT)):
        if name.startswith("requirements") and name.endswith(".txt"):
            with open(os.path.join(ROOT, name), encoding="utf-8") as f:
                named += [(name, m.group(1)) for m in gpio.finditer(f.read())]
    assert not named, named
    with open(os.path.join(ROOT, "deploy", "install.sh"), encoding="utf-8") as f:
        install = f.read()
    text = readme()
    for package in ("python3-rpi-lgpio", "python3-rpi.gpio"):  # the apt packages both name
        assert package in install and package in text, package
    assert "--system-site-packages" in install and "--system-site-packages" in text
