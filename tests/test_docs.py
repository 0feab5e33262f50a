"""The README's options table matches the options the server defines."""
import io
import os
import re

from tornado.options import options

import websocketserver  # noqa: F401 - defines the options
from tests.conftest import ROOT

OURS = {"port", "address", "db", "goal", "button", "pin", "pull", "admin-token", "title",
        "max-connections", "ping-interval", "night", "round", "webhook", "mqtt", "mqtt-topic",
        "mqtt-discovery", "mqtt-commands", "store", "store-key"}


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
