"""websocketserver.py without its application-level heartbeat, for bench/note_beat.py.

    python bench/nobeat_server.py --port=... (the options of websocketserver.py)

The product unchanged but for one module constant, set before main(): each ping goes out as a
bare WebSocket ping (PING_FRAME), without the {"event":"beat"} text frame that PING_AND_BEAT
adds to it. SIGUSR1 swaps the two (beat off -> on -> off ...), so that one server with the
same 10,000 viewers can be measured both ways in alternate windows. Only a bench arm: pages
of this server, beat off, would think it dead.
"""
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import thebutton.feed as feed  # noqa: E402
import websocketserver  # noqa: E402

WITH_BEAT = feed.PING_AND_BEAT
feed.PING_AND_BEAT = feed.PING_FRAME  # Feed.ping_tick reads it at each tick


def toggle(_signum, _frame):
    on = feed.PING_AND_BEAT is WITH_BEAT
    feed.PING_AND_BEAT = feed.PING_FRAME if on else WITH_BEAT


if __name__ == "__main__":
    signal.signal(signal.SIGUSR1, toggle)
    sys.exit(websocketserver.main())
