"""Load client: N WebSocket viewers, then K presses; prints per-press latency to every viewer as JSON.

One thread, one epoll loop over raw sockets (Linux): per message it costs one recv() and a few
Python operations, several times less than any server it measures spends to send it (run.py
reports the client's CPU per press next to the server's, to show it).

Protocol with run.py: prints "READY" once every viewer has its initial state, waits for a line
on stdin, presses K times (with --note, each press carries {"note": ...}), prints one line of
JSON, then exits when stdin closes. It answers the servers' pings all along, so that none of
its viewers is dropped while idle.
"""
import argparse
import json
import os
import select
import socket
import struct
import sys
import time

HANDSHAKE = (b"GET /websocket HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
KEY = b'"presses":'


def presses_of(payload):
    i = payload.index(KEY) + len(KEY)
    j = i
    while payload[j] == 0x20:
        j += 1
    k = j
    while 0x30 <= payload[k] <= 0x39:
        k += 1
    return int(payload[j:k])


def frames(buf):
    """Complete frames at the start of buf as (opcode, payload), and the bytes left over."""
    out = []
    pos = 0
    end = len(buf)
    while end - pos >= 2:
        b0, b1 = buf[pos], buf[pos + 1]
        n = b1 & 0x7F
        head = 2
        if n == 126:
            if end - pos < 4:
                break
            (n,) = struct.unpack_from("!H", buf, pos + 2)
            head = 4
        elif n == 127:
            if end - pos < 10:
                break
            (n,) = struct.unpack_from("!Q", buf, pos + 2)
            head = 10
        if end - pos < head + n:
            break
        out.append((b0 & 0x0F, buf[pos + head:pos + head + n]))
        pos += head + n
    return out, buf[pos:]


def pong(payload):
    # Client frames are masked; a zero mask leaves the payload as it is (RFC 6455 5.3).
    return struct.pack("!BB", 0x8A, 0x80 | len(payload)) + b"\0\0\0\0" + payload


def masked_text(payload):
    """A client's text frame (masked with a zero mask, RFC 6455 5.3), as small as a page's hello."""
    n = len(payload)
    head = struct.pack("!BB", 0x81, 0x80 | n) if n < 126 else struct.pack("!BBH", 0x81, 0x80 | 126, n)
    return head + b"\0\0\0\0" + payload


def hello_frame(i):
    """The hello a countdown page sends once its socket is open: a name of its own for each viewer."""
    return masked_text(json.dumps({"hello": {"screen": "Bench %d" % i, "version": "bench", "sound": "on",
                                             "width": 1920, "height": 1080}}).encode())


def serve_viewer(viewers, ep, fd, receipts, now):
    """Read what one viewer has: record each state's receipt time, answer each ping."""
    entry = viewers[fd]
    sock = entry[0]
    try:
        data = sock.recv(65536)
    except BlockingIOError:
        return
    except OSError:
        data = b""
    if not data:
        ep.unregister(fd)
        del viewers[fd]
        return
    if entry[1]:
        data = entry[1] + data
    got, entry[1] = frames(data)
    for op, payload in got:
        if op == 0x1 and KEY in payload:  # a state; heartbeats ({"event":"beat"}) carry none
            receipts.setdefault(presses_of(payload), []).append(now)
        elif op == 0x9:
            sock.send(pong(payload))


def open_viewers(port, n, ramp, ep, receipts, hello=False):
    """Connect n viewers, ramp at a time, into ep; return {fd: [socket, leftover bytes]} and the failures.

    With ``hello`` each viewer says hello (as the countdown page does) once it has the initial state.

    Between batches it serves the viewers already open, so that none misses a ping while
    thousands more connect.
    """
    viewers = {}
    failed = 0
    for start in range(0, n, ramp):
        for fd, _ev in ep.poll(0):
            serve_viewer(viewers, ep, fd, receipts, 0.0)
        batch = []
        for _ in range(min(ramp, n - start)):
            s = socket.socket()
            try:
                s.connect(("127.0.0.1", port))
                s.sendall(HANDSHAKE)
                batch.append(s)
            except OSError:
                s.close()
                failed += 1
        for s in batch:
            try:
                s.settimeout(30)
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = s.recv(4096)
                    if not chunk:
                        raise ConnectionError("closed during the handshake")
                    data += chunk
                head, rest = data.split(b"\r\n\r\n", 1)
                if b" 101 " not in head.split(b"\r\n", 1)[0]:
                    raise ConnectionError(head.split(b"\r\n", 1)[0].decode())
                while True:  # the initial state
                    got, rest = frames(rest)
                    for op, payload in got:
                        if op == 0x9:  # pinged already: answer it, or the server drops this viewer
                            s.sendall(pong(payload))
                    if any(op == 0x1 for op, _ in got):
                        break
                    chunk = s.recv(4096)
                    if not chunk:
                        raise ConnectionError("closed before the initial state")
                    rest += chunk
                if hello:
                    s.sendall(hello_frame(len(viewers) + failed))
                s.setblocking(False)
                viewers[s.fileno()] = [s, rest]
                ep.register(s.fileno(), select.EPOLLIN)
            except (OSError, ConnectionError):
                s.close()
                failed += 1
    return viewers, failed


def main(args):
    ep = select.epoll()
    receipts = {}  # presses value -> receipt times
    t = time.perf_counter()
    viewers, failed = open_viewers(args.port, args.n, args.ramp, ep, receipts, args.hello)
    connect_s = time.perf_counter() - t
    stdin = sys.stdin.fileno()
    ep.register(stdin, select.EPOLLIN)
    print("READY", flush=True)

    # The press request, built once: empty, or {"note": ...} with --note.
    fields = {key: value for key, value in (("note", args.note), ("by", args.by)) if value is not None}
    body = json.dumps(fields).encode() if fields else b""
    request = ("%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n%s"
               "Content-Length: %d\r\nConnection: close\r\n\r\n"
               % (args.method, args.path, args.token, "Content-Type: application/json\r\n" if body else "",
                  len(body))).encode() + body
    presses = []
    started = False
    stdin_closed = False
    press = None  # the press being timed: dict with its socket, t0, value
    next_press = 0.0
    cpu0 = 0.0
    perf = time.perf_counter
    while True:
        if started and press is None:
            if len(presses) == args.presses:
                break
            wait = next_press - perf()
            if wait <= 0:
                s = socket.socket()
                t0 = perf()
                s.connect(("127.0.0.1", args.port))
                s.sendall(request)
                s.setblocking(False)
                ep.register(s.fileno(), select.EPOLLIN)
                press = {"socket": s, "t0": t0, "value": None, "answer": b"", "deadline": t0 + args.timeout}
                wait = 0
        else:
            wait = 0.05
        events = ep.poll(max(0.0, wait) if press is None else 0.05)
        now = perf()
        for fd, _ev in events:
            if fd in viewers:
                serve_viewer(viewers, ep, fd, receipts, now)
            elif fd == stdin:
                line = os.read(stdin, 4096)
                if not started:
                    started = True
                    cpu0 = time.process_time()
                    next_press = now + args.spacing
                elif not line:
                    stdin_closed = True
            elif press is not None and fd == press["socket"].fileno():
                chunk = press["socket"].recv(65536)
                press["answer"] += chunk
                if not chunk:
                    ep.unregister(fd)
                    press["socket"].close()
                    head, _, body = press["answer"].partition(b"\r\n\r\n")
                    if b" 200 " not in head.split(b"\r\n", 1)[0]:
                        raise SystemExit("press answered: %r" % head.split(b"\r\n", 1)[0])
                    press["value"] = json.loads(body)["presses"]
        if press is not None and press["value"] is not None:
            got = receipts.get(press["value"], [])
            if len(got) >= len(viewers) or now > press["deadline"]:
                times = sorted(r - press["t0"] for r in got)
                presses.append({"received": len(times), "latencies_ms": [round(x * 1000, 3) for x in times]})
                press = None
                next_press = now + args.spacing
    cpu_s = time.process_time() - cpu0  # over the presses, spacing included
    print(json.dumps({"n": args.n, "failed": failed, "connect_s": round(connect_s, 3),
                      "cpu_s": round(cpu_s, 4), "presses": presses}), flush=True)
    # Exit (closing every socket) only when run.py closes stdin, once it has read the
    # server's CPU time for the presses; answer pings until then.
    while not stdin_closed:
        for fd, _ev in ep.poll(1.0):
            if fd == stdin:
                if not os.read(stdin, 4096):
                    stdin_closed = True
            elif fd in viewers:
                serve_viewer(viewers, ep, fd, receipts, 0.0)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--presses", type=int, default=10)
    p.add_argument("--spacing", type=float, default=0.3)
    p.add_argument("--ramp", type=int, default=200)
    p.add_argument("--timeout", type=float, default=15.0)
    p.add_argument("--method", default="POST")
    p.add_argument("--path", default="/api/press", help="where a press goes (a device's /hook/<secret>: bench/run.py's button-device)")
    p.add_argument("--token", default="bench")
    p.add_argument("--note", default=None, help='press with the JSON body {"note": NOTE} (default: an empty body)')
    p.add_argument("--by", default=None, help='press with "by": BY in the body (with --note too: both)')
    p.add_argument("--hello", action="store_true", help="each viewer says hello after its initial state, "
                   "as the countdown page does")
    main(p.parse_args())
