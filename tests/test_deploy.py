"""deploy/: shellcheck on the scripts, systemd-analyze on the unit, install.sh's dry run on this
machine, and kiosk.sh against a real server with a stub in place of Chromium.

What cannot be tried here (no Raspberry Pi, no systemd as PID 1): a real install, the GPIO
packages, the service starting at boot, and Chromium on a TV.
"""
import http.server
import os
import pwd
import queue
import re
import stat
import subprocess
import sys
import threading

import pytest
from conftest import ROOT, ServerProcess, free_port

DEPLOY = os.path.join(ROOT, "deploy")
INSTALL = os.path.join(DEPLOY, "install.sh")
KIOSK = os.path.join(DEPLOY, "kiosk.sh")
UNIT = os.path.join(DEPLOY, "the-button.service")
SCRIPTS = sorted(f for f in os.listdir(DEPLOY) if f.endswith(".sh"))
STEPS = ["System", "Packages", "Project files in", "Python venv in", "User button",
         "Database directory /var/lib/the-button", "Admin token in /etc/the-button.env",
         "systemd unit /etc/systemd/system/the-button.service", "Service the-button"]
# What a real install would create on this machine; a dry run must leave each as it was.
SYSTEM_PATHS = ["/etc/the-button.env", "/etc/systemd/system/the-button.service", "/var/lib/the-button",
                "/opt/the-button"]
KIOSK_FLAGS = ["--kiosk", "--noerrdialogs", "--disable-session-crashed-bubble", "--hide-crash-restore-bubble",
               "--disable-infobars", "--check-for-update-interval=31536000",
               "--autoplay-policy=no-user-gesture-required", "--no-first-run"]


def as_nobody(cmd):
    """The command run as an unprivileged user (as root here, through setpriv)."""
    if os.geteuid() != 0:
        return cmd
    nobody = pwd.getpwnam("nobody")
    return ["setpriv", "--reuid=%d" % nobody.pw_uid, "--regid=%d" % nobody.pw_gid, "--clear-groups", *cmd]


def run(cmd, env=None, timeout=60):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd="/",
                          env=None if env is None else dict(os.environ, **env))


def system_snapshot():
    """The button user and each path a real install writes, as they are now."""
    try:
        user = pwd.getpwnam("button")
    except KeyError:
        user = None
    paths = {}
    for path in SYSTEM_PATHS:
        try:
            st = os.stat(path)
            paths[path] = (st.st_mode, st.st_uid, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            paths[path] = None
    return user, paths


def test_deploy_has_install_and_kiosk_scripts():
    """deploy/ holds both scripts, executable, so that the shellcheck test below sees them."""
    assert {"install.sh", "kiosk.sh"} <= set(SCRIPTS)
    for name in SCRIPTS:
        assert os.stat(os.path.join(DEPLOY, name)).st_mode & stat.S_IXUSR, name


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_passes_shellcheck(script):
    """Every deploy/*.sh passes shellcheck with no finding at any severity."""
    result = run(["shellcheck", "--severity=style", os.path.join(DEPLOY, script)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_unit_passes_systemd_analyze_verify(tmp_path):
    """The unit passes systemd-analyze verify without a warning, its /opt paths pointed at real files."""
    prefix = tmp_path / "opt"
    (prefix / ".venv" / "bin").mkdir(parents=True)
    os.symlink(sys.executable, prefix / ".venv" / "bin" / "python")
    os.symlink(os.path.join(ROOT, "websocketserver.py"), prefix / "websocketserver.py")
    with open(UNIT) as f:
        text = f.read()
    assert "/opt/the-button/websocketserver.py" in text  # the script the unit starts is ours
    unit = tmp_path / "the-button.service"
    unit.write_text(text.replace("/opt/the-button", str(prefix)))
    result = run(["systemd-analyze", "verify", str(unit)])
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr  # unknown keys are only warnings: none allowed


def test_unit_starts_after_the_clock_is_set():
    """A Pi boots with the time it last saved: the unit orders itself after time-sync.target.

    It does not pull the target in: time-sync.target is passive, reached when the service
    that waits for NTP says so, and systemd.special(7) asks its users for After= alone.
    """
    with open(UNIT) as f:
        unit = f.read()
    assert re.search(r"^After=.*\btime-sync\.target\b", unit, re.M)
    assert not re.search(r"^(Wants|Requires|Requisite|BindsTo|Upholds)=.*\btime-sync\.target\b", unit, re.M)


def test_unit_runs_where_lgpio_can_write():
    """The unit's working directory is the writable state directory (lgpio makes pipes there)."""
    with open(UNIT) as f:
        lines = f.read().splitlines()
    assert "WorkingDirectory=/var/lib/the-button" in lines
    assert "ReadWritePaths=/var/lib/the-button" in lines
    assert "ProtectSystem=strict" in lines


def test_dry_run_names_every_step_and_changes_nothing(tmp_path):
    """A dry run (with root's rights here) exits 0, names all nine steps and writes nothing."""
    before = system_snapshot()
    prefix = tmp_path / "prefix"
    result = run(["bash", INSTALL, "--dry-run", "--prefix=%s" % prefix])
    assert result.returncode == 0, result.stdout + result.stderr
    for number, step in enumerate(STEPS, 1):
        assert "[%d/9] %s" % (number, step) in result.stdout, step
    assert "would: make the system user button" in result.stdout or "user button exists" in result.stdout
    assert "nothing was changed" in result.stdout
    assert "(would run: " in result.stdout
    assert not prefix.exists()
    assert system_snapshot() == before


def test_dry_run_shows_the_unit_with_the_chosen_port_and_prefix(tmp_path):
    """--port and --prefix reach the ExecStart line that a real run would install."""
    prefix = tmp_path / "srv"
    result = run(["bash", INSTALL, "--dry-run", "--port=8080", "--prefix=%s" % prefix])
    assert result.returncode == 0, result.stderr
    assert "%s/.venv/bin/python %s/websocketserver.py --port=8080 " % (prefix, prefix) in result.stdout


def test_dry_run_needs_no_root_and_a_real_run_refuses_without_it():
    """As an ordinary user the dry run works, and a real run stops at once, saying it needs root."""
    dry = run(as_nobody(["bash", INSTALL, "--dry-run"]))
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "nothing was changed" in dry.stdout
    before = system_snapshot()
    real = run(as_nobody(["bash", INSTALL]))
    assert real.returncode != 0
    assert "must run as root" in real.stderr
    assert real.stdout == ""  # refused before any step
    assert system_snapshot() == before


@pytest.mark.parametrize("version, model, package", [
    ("12", "Raspberry Pi 4 Model B Rev 1.4", "python3-rpi-lgpio"),
    ("13", "Raspberry Pi 3 Model B Rev 1.2", "python3-rpi-lgpio"),
    ("11", "Raspberry Pi 4 Model B Rev 1.4", "python3-rpi.gpio"),
    ("11", "Raspberry Pi 5 Model B Rev 1.0", "python3-rpi-lgpio"),
])
def test_dry_run_picks_the_gpio_library_for_the_os_and_board(tmp_path, version, model, package):
    """rpi-lgpio on Bookworm and later and on every Pi 5; RPi.GPIO on a Bullseye Pi 1-4."""
    os_release = tmp_path / "os-release"
    os_release.write_text('PRETTY_NAME="Raspberry Pi OS test"\nVERSION_ID="%s"\n' % version)
    model_file = tmp_path / "model"
    model_file.write_bytes(model.encode() + b"\0")  # as the device tree gives it
    result = run(["bash", INSTALL, "--dry-run"],
                 env={"THE_BUTTON_OS_RELEASE": str(os_release), "THE_BUTTON_MODEL_FILE": str(model_file)})
    assert result.returncode == 0, result.stderr
    assert "on " + model in result.stdout
    installing = [line for line in result.stdout.splitlines() if "would: install python3" in line]
    assert installing and installing[0].split()[-1] == package, result.stdout


@pytest.mark.parametrize("option, message", [
    ("--port=0", "--port must be"),
    ("--port=eighty", "--port must be"),
    ("--port=65536", "--port must be"),
    ("--prefix=opt/the-button", "--prefix must be an absolute path"),
    ("--prefix=/home/pi/the-button", "ProtectHome"),
    ("--prefix=/opt/the button", "--prefix must be"),
    ("--colour=red", "unknown option"),
])
def test_bad_option_is_refused_with_a_reason(option, message):
    """A bad option stops the script before any step, with a one-line reason."""
    result = run(["bash", INSTALL, "--dry-run", option])
    assert result.returncode != 0
    assert message in result.stderr
    assert "[1/9]" not in result.stdout


def test_help_lists_the_options():
    """--help names each option and exits 0."""
    result = run(["bash", INSTALL, "--help"])
    assert result.returncode == 0
    for option in ("--port=N", "--prefix=PATH", "--new-token", "--dry-run"):
        assert option in result.stdout


# kiosk.sh


class LineReader:
    """The launcher's output, line by line, awaited with a deadline (a thread reads the pipe)."""

    def __init__(self, stream):
        self.lines = queue.Queue()
        self.seen = []
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream):
        for line in stream:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def next(self, timeout=15):
        line = self.lines.get(timeout=timeout)
        assert line is not None, "the launcher closed its output; it said:\n" + "\n".join(self.seen)
        self.seen.append(line)
        return line

    def rest(self, timeout=15):
        """Every line up to the end of the output."""
        while True:
            line = self.lines.get(timeout=timeout)
            if line is None:
                return self.seen
            self.seen.append(line)


@pytest.fixture
def kiosk(tmp_path):
    """Start kiosk.sh with a stub browser that records its pid and arguments; always stopped."""
    stub = tmp_path / "browser"
    stub.write_text('#!/bin/sh\necho "$$" >"$KIOSK_TEST_RECORD.pid"\n'
                    'for a in "$@"; do printf "%s\\n" "$a"; done >"$KIOSK_TEST_RECORD"\n')
    stub.chmod(0o755)
    record = tmp_path / "browser-args"
    procs = []

    def start(url, before=(), after=(), **env):
        env = dict(os.environ, KIOSK_BROWSER=str(stub), KIOSK_TEST_RECORD=str(record),
                   KIOSK_PROFILE=str(tmp_path / "profile"), HOME=str(tmp_path), **env)
        proc = subprocess.Popen(["bash", KIOSK, *before, url, *after], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, env=env, cwd="/")
        procs.append(proc)
        return proc, LineReader(proc.stdout)

    start.record = record
    start.stub = stub
    start.profile = tmp_path / "profile"
    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()


def test_kiosk_starts_the_browser_only_once_healthz_answers(kiosk, db_path):
    """Started before the server, the launcher waits with growing pauses, then becomes the browser."""
    server = ServerProcess(db_path, "--button=none", port=free_port())
    health = server.url + "/healthz"
    proc, output = kiosk(server.url + "/")
    try:
        first, second = output.next(), output.next()
        assert first == "kiosk: waiting for %s (no answer yet); next try in 1s" % health
        assert second == "kiosk: waiting for %s (no answer yet); next try in 2s" % health
        assert proc.poll() is None
        assert not kiosk.record.exists()  # no browser while nothing answers
        server.start()  # returns once /healthz answers 200
        assert proc.wait(timeout=30) == 0
    finally:
        server.stop()
    assert output.rest()[-1] == "kiosk: %s answered 200: starting %s on %s/" % (health, kiosk.stub, server.url)
    args = kiosk.record.read_text().splitlines()
    # exec, not a child: the browser has the launcher's pid, so nothing is left behind to wait.
    assert int((kiosk.record.parent / (kiosk.record.name + ".pid")).read_text()) == proc.pid
    assert args[-1] == server.url + "/"
    for flag in KIOSK_FLAGS:
        assert flag in args
    assert "--user-data-dir=%s" % kiosk.profile in args


class StatusServer(http.server.ThreadingHTTPServer):
    """A real HTTP server whose every answer is the status the test sets."""

    status = 503

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.server.paths.append(self.path)
            self.send_response(self.server.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    def __init__(self):
        super().__init__(("127.0.0.1", 0), self.Handler)
        self.paths = []


def test_kiosk_keeps_waiting_while_healthz_answers_other_than_200(kiosk):
    """A server that answers 503 is not enough: the launcher says so and waits for a 200."""
    server = StatusServer()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = "http://127.0.0.1:%d" % server.server_address[1]
    try:
        proc, output = kiosk(url + "/some/page?x=1", KIOSK_MAX_DELAY="1")
        assert output.next() == "kiosk: waiting for %s/healthz (it answered 503); next try in 1s" % url
        assert output.next() == "kiosk: waiting for %s/healthz (it answered 503); next try in 1s" % url
        assert proc.poll() is None and not kiosk.record.exists()
        server.status = 200
        assert proc.wait(timeout=15) == 0
    finally:
        server.shutdown()
        server.server_close()
    assert set(server.paths) == {"/healthz"}  # the origin's health, whatever page is shown
    assert kiosk.record.read_text().splitlines()[-1] == url + "/some/page?x=1"


def test_kiosk_clears_the_crash_mark_a_power_cut_leaves(kiosk, server_factory):
    """A profile left 'crashed' by a power cut is marked clean before the browser starts."""
    server = server_factory("--button=none")
    prefs = kiosk.profile / "Default" / "Preferences"
    prefs.parent.mkdir(parents=True)
    prefs.write_text('{"profile":{"exit_type":"Crashed","exited_cleanly":false,"name":"TV"}}')
    proc, output = kiosk(server.url + "/")
    assert proc.wait(timeout=30) == 0
    assert prefs.read_text() == '{"profile":{"exit_type":"Normal","exited_cleanly":true,"name":"TV"}}'


def test_kiosk_puts_the_screen_name_into_the_url(kiosk, server_factory):
    """--screen=NAME (before or after the URL) becomes ?screen=NAME, URL-encoded, beside any query already there."""
    import urllib.parse

    server = server_factory("--button=none")
    name = "Lobby TV & Café/2"
    cases = [(server.url, ["--screen=" + name], [], server.url + "/?screen=Lobby%20TV%20%26%20Caf%C3%A9%2F2"),
             (server.url + "/?x=1#top", [], ["--screen=" + name, "--start-maximized"],
              server.url + "/?x=1&screen=Lobby%20TV%20%26%20Caf%C3%A9%2F2#top")]
    for url, before, after, expected in cases:
        proc, output = kiosk(url, before=before, after=after)
        assert proc.wait(timeout=30) == 0, output.rest()
        args = kiosk.record.read_text().splitlines()
        assert args[-1] == expected
        assert "--screen=" + name not in args  # the launcher's own option, not the browser's
        assert urllib.parse.parse_qs(urllib.parse.urlsplit(args[-1]).query)["screen"] == [name]
    assert "--start-maximized" in args


def test_kiosk_without_a_url_prints_usage():
    """No URL (or not an http one): a usage line and exit status 2, no browser."""
    for args in ([], ["raspberrypi.local"]):
        result = run(["bash", KIOSK, *args], env={"KIOSK_BROWSER": "/bin/false"})
        assert result.returncode == 2
        assert "usage:" in result.stderr


def test_kiosk_desktop_entry_is_valid_and_starts_the_launcher():
    """kiosk.desktop passes desktop-file-validate and its Exec runs deploy/kiosk.sh from the install."""
    desktop = os.path.join(DEPLOY, "kiosk.desktop")
    result = run(["desktop-file-validate", desktop])
    assert result.returncode == 0 and result.stdout.strip() == "", result.stdout + result.stderr
    with open(desktop) as f:
        exec_line = next(line for line in f if line.startswith("Exec="))
    command = exec_line[len("Exec="):].split()
    assert command[0] == "/opt/the-button/deploy/kiosk.sh"
    assert command[1].startswith("http://")
