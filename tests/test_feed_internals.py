"""The Tornado internals thebutton/feed.py relies on, one test each (STYLE.md 24, 27).

feed.py names these tests in the comments of the methods that reach past Tornado's public
API (FeedSocket._stream, _forget_http, _closing); each test fails when a Tornado release
changes what that method relies on, so that a change cannot break the feed silently.
"""
import asyncio
import json
import socket

from tornado.iostream import IOStream, StreamBufferFullError
from tornado.testing import gen_test

from tests.test_server import ServerTestCase
from thebutton.feed import FeedSocket, text_frame


class FeedInternalsTest(ServerTestCase):
    ping_interval = 0.0  # no pings of the feed's own: the tests send theirs

    async def open_viewer(self):
        """A client socket that has read its first state, and the server's FeedSocket of it."""
        before = set(self.feed.waiters)
        ws = await self.ws_connect()
        assert (await self.read_json(ws))["event"] == "state"
        [viewer] = self.feed.waiters - before
        assert isinstance(viewer, FeedSocket)
        return ws, viewer

    @gen_test
    async def test_the_stream_is_an_iostream(self):
        """ws_connection.stream is the IOStream: max_write_buffer_size, writing(), socket, and socket.send reaching the client."""
        ws, viewer = await self.open_viewer()
        stream = viewer.ws_connection.stream
        assert isinstance(stream, IOStream) and stream is viewer.stream
        assert stream.max_write_buffer_size == self.feed.max_buffered  # FeedSocket._stream set it
        assert isinstance(stream.socket, socket.socket)
        assert stream.writing() is False  # nothing queued: the fast path may send
        # The fast path: a frame handed straight to the kernel arrives whole.
        frame = text_frame(b'{"event":"direct"}')
        assert stream.socket.send(frame) == len(frame)
        assert json.loads(await ws.read_message()) == {"event": "direct"}
        # writing() is true while IOStream holds bytes the kernel has not taken (the loop does
        # not run here, so the client reads nothing), and a write past max_write_buffer_size
        # is refused: the stuck-reader limit.
        chunk = text_frame(b'"' + b"x" * 16000 + b'"')
        sent = 0
        while not stream.writing():
            assert sent < 4000, "64 MB went to the kernel and IOStream still held nothing"
            flushed = stream.write(chunk)
            sent += 1
        try:
            for _ in range(self.feed.max_buffered // len(chunk) + 2):
                flushed = stream.write(chunk)
                sent += 1
        except StreamBufferFullError:
            pass
        else:
            raise AssertionError("IOStream took more than max_write_buffer_size")
        for _ in range(sent):  # everything accepted arrives, in order, as frames
            assert await ws.read_message() == '"' + "x" * 16000 + '"'
        await asyncio.wait_for(flushed, 5)  # the last write's future: IOStream holds nothing more
        assert stream.writing() is False

    @gen_test
    async def test_a_socket_works_without_its_http_connection(self):
        """After FeedSocket._forget_http the socket still gets frames, answers pings, closes cleanly and leaves the feed."""
        ws, viewer = await self.open_viewer()
        assert viewer.request.connection is None and viewer.request.server_connection is None
        # Frames, through the feed's send path.
        self.feed.send_updates(self.feed.state, "set")
        assert (await self.read_json(ws))["event"] == "set"
        # The server's ping, answered by the client: Tornado hands the pong to on_pong.
        viewer.pong_due = 1.0
        server_pong = self.hook(viewer, "on_pong")
        viewer.ping(b"are you there")
        assert await asyncio.wait_for(server_pong, 5) == (b"are you there",)
        assert viewer.pong_due == 0.0
        # The client's ping, answered by the server.
        pong = asyncio.get_running_loop().create_future()
        ws.on_pong = pong.set_result
        ws.ping(b"and you?")
        assert await asyncio.wait_for(pong, 5) == b"and you?"
        # A close from the client: the server answers the close handshake and forgets the viewer.
        closed = self.hook(viewer, "on_close")
        ws.close(1000, "bye")
        await asyncio.wait_for(closed, 5)
        assert viewer not in self.feed.waiters
        assert (viewer.close_code, viewer.close_reason) == (1000, "bye")
        assert await ws.read_message() is None  # the client's side closed too
        assert ws.close_code == 1000  # with the server's closing frame
        # A close from the server, on another viewer: the client gets the code and reason.
        ws2, viewer2 = await self.open_viewer()
        closed = self.hook(viewer2, "on_close")
        viewer2.close(1001, "going away")
        assert await ws2.read_message() is None
        assert (ws2.close_code, ws2.close_reason) == (1001, "going away")
        await asyncio.wait_for(closed, 5)
        assert viewer2 not in self.feed.waiters

    @gen_test
    async def test_a_closing_socket_leaves_the_feed(self):
        """is_closing() is true once a close began; send_frame then drops the socket from feed.waiters."""
        ws, viewer = await self.open_viewer()
        protocol = viewer.ws_connection
        assert protocol.is_closing() is False and viewer._closing() is False
        viewer.close(1000, "done")  # the closing frame is out; the client has not answered yet
        assert protocol.is_closing() is True
        assert viewer._closing() is True
        assert viewer in self.feed.waiters  # on_close has not run yet: only send_frame can tell
        self.feed.send_updates(self.feed.state, "set")
        assert viewer not in self.feed.waiters
        assert await ws.read_message() is None  # no frame after the closing one
        assert ws.close_code == 1000
        # A stream closed under it (no close handshake): the connection is still there, and closing.
        ws2, viewer2 = await self.open_viewer()
        protocol2 = viewer2.ws_connection
        viewer2.stream.close()
        assert viewer2.ws_connection is protocol2 and protocol2.is_closing() is True
        assert viewer2._closing() is True
        viewer2.send_frame(text_frame(b"{}"))
        assert viewer2 not in self.feed.waiters
        assert await ws2.read_message() is None

    @staticmethod
    def hook(viewer, name):
        """A future of the arguments of the next call of ``viewer.<name>`` (which still runs)."""
        called = asyncio.get_running_loop().create_future()
        original = getattr(viewer, name)

        def hooked(*args):
            original(*args)
            if not called.done():
                called.set_result(args)
        setattr(viewer, name, hooked)
        return called
