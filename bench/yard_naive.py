"""Yardstick: the tutorials' Tornado broadcast (class-level waiters, write_message in a loop), in memory."""
import asyncio
import json
import sys

import tornado.web
import tornado.websocket

GOAL = 20


class Socket(tornado.websocket.WebSocketHandler):
    waiters = set()
    count = GOAL
    presses = 0

    def open(self):
        Socket.waiters.add(self)
        self.write_message(json.dumps({"count": Socket.count, "goal": GOAL, "presses": Socket.presses, "event": "state"}))

    def on_close(self):
        Socket.waiters.discard(self)


class Press(tornado.web.RequestHandler):
    def post(self):
        Socket.count = GOAL if Socket.count <= 0 else Socket.count - 1
        Socket.presses += 1
        msg = json.dumps({"count": Socket.count, "goal": GOAL, "presses": Socket.presses, "event": "press"})
        for waiter in Socket.waiters:
            try:
                waiter.write_message(msg)
            except tornado.websocket.WebSocketClosedError:
                pass
        self.write(msg)


class Health(tornado.web.RequestHandler):
    def get(self):
        self.write("ok")


async def main():
    app = tornado.web.Application([(r"/websocket", Socket), (r"/api/press", Press), (r"/healthz", Health)],
                                  websocket_ping_interval=20)
    app.listen(int(sys.argv[1]), "127.0.0.1")
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
