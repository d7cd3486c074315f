"""Shared by the fuzz tests of model files and of images: random byte damage, a child's own peak memory."""

from __future__ import annotations

import random
from pathlib import Path


def damage(data: bytes, rng: random.Random, hot: tuple[int, int] | None) -> tuple[str, bytes]:
    """One random kind of damage; half of the positions fall in `hot` (the header), if given."""

    def position(limit: int = len(data)) -> int:
        if hot is not None and rng.random() < 0.5:
            return rng.randrange(hot[0], min(hot[1], limit) or 1)
        return rng.randrange(max(limit, 1))

    kind = rng.choice(("truncate", "flip", "overwrite", "insert", "delete", "duplicate", "zero"))
    buffer = bytearray(data)
    if kind == "truncate":
        return kind, data[:position()]
    if kind == "flip":
        for _ in range(rng.randint(1, 8)):
            buffer[position()] ^= 1 << rng.randrange(8)
    elif kind == "overwrite":
        start = position()
        buffer[start:start + rng.randint(1, 16)] = rng.randbytes(rng.randint(1, 16))
    elif kind == "insert":
        start = position()
        buffer[start:start] = rng.randbytes(rng.randint(1, 64))
    elif kind == "delete":
        start = position()
        del buffer[start:start + rng.randint(1, 64)]
    elif kind == "duplicate":
        start = position()
        buffer[start:start] = buffer[start:start + rng.randint(1, 256)]
    else:
        start, length = position(), rng.randint(1, 64)
        buffer[start:start + length] = bytes(len(buffer[start:start + length]))
    return kind, bytes(buffer)


def peak_rss_mb() -> int:
    """This process's own peak resident memory (VmHWM), in MB.

    Not getrusage's ru_maxrss: Linux carries the parent's peak across fork and exec into it, so a
    child of a large test process would report the parent's memory, not its own.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024)
    raise RuntimeError("no VmHWM in /proc/self/status")
