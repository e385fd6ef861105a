"""Free loopback ports for servers the tests start.

Ports come from below the kernel's ephemeral range: a port found free there cannot be
taken in the meantime by an outgoing connection (which is what `bind(0)` ports suffer on a
busy machine: "Address already in use" when the server finally binds). Ports handed out
once are not handed out again in this session.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

_given: set[int] = set()


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    high = min(_ephemeral_low(), 32768)
    candidates = [p for p in range(high - 12000, high) if p not in _given]
    random.shuffle(candidates)
    for port in candidates:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _given.add(port)
        return port
    raise RuntimeError("no free loopback port below the ephemeral range")
