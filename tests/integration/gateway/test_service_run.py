"""``Service.run()`` ends on SIGTERM even while NATS cannot be reached.

A provisioned service instance (or one under systemd) is stopped with
SIGTERM; when its NATS is down, the transport keeps retrying, and the signal
must still end the process at once rather than after the stopper's SIGKILL.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from harness import SRC, _environment, free_port_number

SCRIPT = """
from pointsman.service import NatsTransport, Router, Service
Service("waiting", NatsTransport("nats://127.0.0.1:{port}"), Router()).run()
"""


def test_sigterm_ends_a_service_still_connecting() -> None:
    dead = free_port_number()  # nothing listens there
    process = subprocess.Popen([sys.executable, "-c", SCRIPT.format(port=dead)],
                               env=_environment(SRC), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    try:
        time.sleep(1.0)  # connecting, failing, retrying
        assert process.poll() is None
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(5) == 0, process.stderr.read() if process.stderr else b""
        assert time.monotonic() - started < 3
    finally:
        process.kill()
        process.wait()
