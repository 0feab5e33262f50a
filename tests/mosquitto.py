"""Test helpers for MQTT: Debian's mosquitto on a free 127.0.0.1 port, and a subscriber that records.

``Broker`` writes a config file in its own temporary directory (anonymous, or with a
password file for user:pass tests), starts ``mosquitto -c``, waits until the port takes
connections, and can be killed (SIGKILL: retained messages are lost, nothing is
persisted) and started again on the same port.
"""
from __future__ import annotations

import getpass
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from typing import Callable, Dict, List, Optional

from tests.conftest import free_port

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


class Broker:
    """A real mosquitto for one test; always call ``stop()`` (or use it as a context manager)."""

    def __init__(self, users: Optional[Dict[str, str]] = None, persist: bool = False) -> None:
        self.dir = tempfile.mkdtemp(prefix="button-mosquitto-")
        self.port = free_port()
        self.users = users or {}
        self.proc: Optional[subprocess.Popen] = None
        # Run as ourselves: as root, mosquitto would switch to its own user, who cannot read our files.
        # persist: retained messages outlive a clean stop (as an installed broker keeps them).
        persistence = ["persistence true", f"persistence_location {self.dir}/"] if persist else ["persistence false"]
        lines = [f"listener {self.port} 127.0.0.1", *persistence, f"user {getpass.getuser()}"]
        if self.users:
            passwords = os.path.join(self.dir, "passwords")
            open(passwords, "w").close()
            for user, password in self.users.items():
                subprocess.run(["mosquitto_passwd", "-b", passwords, user, password], check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            os.chmod(passwords, 0o600)
            lines += ["allow_anonymous false", f"password_file {passwords}"]
        else:
            lines.append("allow_anonymous true")
        self.config = os.path.join(self.dir, "mosquitto.conf")
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.log_path = os.path.join(self.dir, "mosquitto.log")

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> Broker:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", self.config], stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 10
        while True:  # polling to a deadline: mosquitto signals nothing when it listens
            if self.proc.poll() is not None:
                raise AssertionError(f"mosquitto exited with {self.proc.returncode}:\n{self.output()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"mosquitto did not listen on {self.port}:\n{self.output()}") from None
                time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL, as a crash or a power cut: retained messages go with it."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def output(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def __enter__(self) -> Broker:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.cleanup()


class Message:
    def __init__(self, topic: str, payload: bytes, retain: bool) -> None:
        self.topic = topic
        self.payload = payload
        self.retain = retain

    def json(self):
        return json.loads(self.payload)


class Subscriber:
    """A paho client in its own thread that records every message on ``topics``; blocking waits.

    In an async test call the waits through ``run_in_executor`` so the IOLoop keeps running.
    """

    def __init__(self, broker: Broker, topics: List[str], user: Optional[str] = None,
                 password: Optional[str] = None) -> None:
        import paho.mqtt.client as mqtt
        self.messages: List[Message] = []
        self.cond = threading.Condition()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-" + uuid.uuid4().hex[:8])
        if user:
            self.client.username_pw_set(user, password)
        self.topics = topics
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe([(t, 1) for t in topics])
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        assert self.subscribed.wait(5), "the test subscriber did not subscribe"

    def _on_message(self, client, userdata, message) -> None:
        # paho's thread.
        with self.cond:
            self.messages.append(Message(message.topic, bytes(message.payload), bool(message.retain)))
            self.cond.notify_all()

    def wait_for(self, predicate: Callable[[Message], bool], timeout: float = 10.0, after: int = 0) -> Message:
        """The first message (from index ``after`` on) that satisfies predicate; AssertionError after timeout."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for message in self.messages[after:]:
                    if predicate(message):
                        return message
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [(m.topic, m.payload[:80]) for m in self.messages]
                    raise AssertionError(f"no such message within {timeout}s; got {seen}")
                self.cond.wait(left)

    def on(self, topic: str) -> List[Message]:
        with self.cond:
            return [m for m in self.messages if m.topic == topic]

    def publish(self, topic: str, payload, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
