"""The SQLite file in the real world: one server per file, and a full disk that /healthz does not forget."""
import contextlib
import os
import subprocess
import sys
import urllib.request

from tests.conftest import ROOT, TOKEN, ServerProcess


def healthz(server):
    import json
    with urllib.request.urlopen(server.url + "/healthz", timeout=10) as r:
        return json.loads(r.read())


def test_a_second_server_on_the_same_file_exits_naming_it(server_factory, db_path):
    """While one server runs on a --db, a second one on it exits non-zero with one line naming the file;
    the first keeps counting; once the first is gone (even by kill -9) the file can be opened again."""
    first = server_factory("--button=none", "--admin-token=" + TOKEN, "--goal=50")
    assert first.request("POST", "/api/press")[0] == 200
    second = subprocess.run([sys.executable, os.path.join(ROOT, "websocketserver.py"), "--db=" + db_path,
                             "--button=none", "--address=127.0.0.1", "--port=0"],
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30, cwd="/")
    assert second.returncode != 0
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and db_path in lines[0] and "another server is using this database" in lines[0], second.stderr
    code, body = first.request("POST", "/api/press")
    assert code == 200 and body["count"] == 48
    first.proc.kill()  # kill -9: the kernel lets go of the lock
    first.proc.wait()
    again = ServerProcess(db_path, "--button=none").start()
    try:
        assert again.request("GET", "/api/count", token=None)[1]["count"] == 48
    finally:
        again.stop()


@contextlib.contextmanager
def small_tmpfs(path, size="2m"):
    """A real filesystem that can be filled up: a tmpfs (mounting needs root, as test.sh's apt does)."""
    os.makedirs(path)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=" + size, "tmpfs", path], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", path], check=True)


def fill(directory):
    """Write a file until the filesystem is full; return its path."""
    filler = os.path.join(directory, "filler")
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    with contextlib.suppress(OSError):
        os.truncate(filler, os.path.getsize(filler))  # what fitted stays
    return filler


def test_a_full_disk_keeps_healthz_false_until_a_write_works(tmp_path):
    """On a full tmpfs: a press is 503 and /healthz false; reading the history works but /healthz stays
    false; with space back, the next press works and /healthz is ok again."""
    with small_tmpfs(str(tmp_path / "disk")) as disk:
        server = ServerProcess(os.path.join(disk, "counter.db"), "--button=none", "--admin-token=" + TOKEN,
                               "--goal=1000000").start()
        try:
            assert server.request("POST", "/api/press")[0] == 200
            filler = fill(disk)
            for _ in range(3000):  # until the log needs a block the disk no longer has
                code, body = server.request("POST", "/api/press")
                if code != 200:
                    break
            assert code == 503 and "full" in body["error"], body
            presses = server.request("GET", "/api/count", token=None)[1]["presses"]
            health = healthz(server)
            assert health["ok"] is False and "full" in health["store"]["error"]
            code, body = server.request("GET", "/api/history?limit=5", token=None)
            assert code == 200 and len(body["presses"]) == min(5, presses) and presses >= 1
            assert server.request("GET", "/api/rounds", token=None)[0] == 200
            assert healthz(server)["ok"] is False  # a read that works does not hide the failed write
            os.remove(filler)
            code, body = server.request("POST", "/api/press")
            assert code == 200 and body["presses"] == presses + 1
            assert healthz(server)["ok"] is True
        finally:
            server.stop()
