"""Draw The Button's icons (a green ring around a red button on navy) as PNG and ICO.

Run once after changing the design: python tools/make_icons.py. Standard library only.
"""
import math
import os
import struct
import zlib

STATIC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "static")
NAVY, GREEN, TRACK, RED, SHINE = (11, 16, 32), (61, 220, 151), (38, 48, 90), (232, 64, 64), (255, 140, 140)


def pixel(x: float, y: float, size: int):
    """Colour at (x, y) of a size x size icon."""
    c = size / 2
    r = math.hypot(x - c, y - c) / (size / 2)
    angle = (math.degrees(math.atan2(x - c, c - y)) + 360) % 360
    if 0.70 <= r <= 0.92:
        return GREEN if angle <= 270 else TRACK
    if r < 0.52:
        return SHINE if math.hypot(x - c * 0.85, y - c * 0.85) < size * 0.1 else RED
    return NAVY


def png(size: int) -> bytes:
    rows = bytearray()
    for y in range(size):
        rows.append(0)
        for x in range(size):
            # 2x2 supersampling for smooth edges
            samples = [pixel(x + dx, y + dy, size) for dx in (0.25, 0.75) for dy in (0.25, 0.75)]
            rows.extend(sum(s[i] for s in samples) // 4 for i in range(3))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(rows), 9)) + chunk(b"IEND", b"")


def ico(images) -> bytes:
    """An ICO file holding PNG images (allowed since Windows Vista; every browser reads it)."""
    out = struct.pack("<HHH", 0, 1, len(images))
    offset = 6 + 16 * len(images)
    for size, data in images:
        out += struct.pack("<BBBBHHII", size % 256, size % 256, 0, 0, 1, 32, len(data), offset)
        offset += len(data)
    return out + b"".join(data for _, data in images)


if __name__ == "__main__":
    touch = png(180)
    for name in ("apple-touch-icon.png", "apple-touch-icon-precomposed.png"):
        with open(os.path.join(STATIC, name), "wb") as f:
            f.write(touch)
    with open(os.path.join(STATIC, "favicon.ico"), "wb") as f:
        f.write(ico([(16, png(16)), (32, png(32)), (48, png(48))]))
