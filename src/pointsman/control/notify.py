"""systemd's readiness protocol (``Type=notify``), without libsystemd.

The protocol is one datagram of ``KEY=VALUE`` lines to the Unix socket named
by ``$NOTIFY_SOCKET`` (a leading ``@`` means the abstract namespace). The
leader says ``READY=1`` once every worker accepts (and, with ``[nats]``, its
registration subscriptions are in place), ``RELOADING=1`` while a
reload runs (with the monotonic timestamp ``Type=notify-reload`` asks for),
and ``STOPPING=1`` when it begins to quit. Outside systemd it does nothing.
"""

from __future__ import annotations

import os
import socket
import time

__all__ = ["notify", "ready", "reloading", "stopping"]


def notify(*states: str) -> bool:
    """Send ``states`` to the service manager; ``False`` when there is none."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall("\n".join(states).encode())
    except OSError:
        return False
    return True


def ready(status: str = "") -> bool:
    return notify("READY=1", f"MAINPID={os.getpid()}", f"STATUS={status or 'serving'}")


def reloading() -> bool:
    usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return notify("RELOADING=1", f"MONOTONIC_USEC={usec}", "STATUS=reloading")


def stopping() -> bool:
    return notify("STOPPING=1", "STATUS=stopping")
