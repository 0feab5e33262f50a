"""The README's options table matches the options the server defines."""
import os
import re

from tornado.options import options

import websocketserver  # noqa: F401 - defines the options
from tests.conftest import ROOT

OURS = {"port", "address", "db", "goal", "button", "pin", "pull", "admin-token", "title",
        "max-connections"}


def test_every_option_is_documented_in_readme():
    """Each option the server defines has a row in the README table, and no row is stale."""
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    documented = set(re.findall(r"^\| `--([a-z-]+)` \|", readme, re.M))
    defined = {name for name in options._options if options._options[name].file_name.endswith("websocketserver.py")}
    assert defined == OURS
    assert documented == defined


def test_every_option_has_help():
    """Each option says what it does in --help."""
    for name in OURS:
        assert options._options[name].help, name
