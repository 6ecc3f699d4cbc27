"""The floor for a user-space TCP relay: a bare splice loop with no features at all.

Not pointsman: a reference peer for ``tcp_bulk``. Every direction of every
connection is a thread doing blocking ``splice`` socket -> pipe -> socket from
the first byte: no event loop, no routing, no timeouts, no logs, no flow
control beyond the kernel's. It shows how close pointsman's relay (which has
all of those and never blocks) comes to what splice from Python can do at all
on this machine.

    python -m bench.bare_splice LISTEN_HOST:PORT TARGET_HOST:PORT
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import sys
import threading

PIPE_SIZE = 1 << 20
F_SETPIPE_SZ = 1031


def pump(src: socket.socket, dst: socket.socket) -> None:
    """Splice ``src`` to ``dst`` until ``src`` ends, then pass the end on."""
    read_fd, write_fd = os.pipe()
    fcntl.fcntl(write_fd, F_SETPIPE_SZ, PIPE_SIZE)
    try:
        while True:
            count = os.splice(src.fileno(), write_fd, PIPE_SIZE, flags=os.SPLICE_F_MOVE)
            if count == 0:
                break
            while count:
                count -= os.splice(read_fd, dst.fileno(), count, flags=os.SPLICE_F_MOVE)
    except OSError:
        pass
    finally:
        os.close(read_fd)
        os.close(write_fd)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


def serve(listen: str, target: str) -> None:
    host, port = listen.rsplit(":", 1)
    target_host, target_port = target.rsplit(":", 1)
    server = socket.create_server((host, int(port)), reuse_port=True)
    while True:
        client, _ = server.accept()
        backend = socket.create_connection((target_host, int(target_port)))
        for src, dst in ((client, backend), (backend, client)):
            threading.Thread(target=pump, args=(src, dst), daemon=True).start()


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2])
