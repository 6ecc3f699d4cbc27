"""Make the harness fixtures available to every test (see ``harness.py``)."""

from harness import echo_server, free_port, nats_server, pointsman, write_config

__all__ = ["echo_server", "free_port", "nats_server", "pointsman", "write_config"]
