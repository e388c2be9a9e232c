"""A free loopback port, for servers a test starts (its own Redis, PostgreSQL, emulator, admin)."""

import socket


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (the OS picks it; each xdist worker
    gets its own)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
