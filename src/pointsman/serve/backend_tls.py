"""TLS from an HTTP listener to its backends: the client context and what a failure means.

An endpoint registered with ``tls_port`` (or a file route with ``tls = true``)
is reached over TLS. Its certificate must chain to a trusted CA (the system's
plus ``[listeners.backends] ca_file``) and name the endpoint's
``server_cert_domain_san``, or its host when that is empty; that name is also
sent as SNI, as gorouter sets ``tls.Config.ServerName`` to the SAN. A client
certificate (``cert_file`` / ``key_file``) is offered to backends asking for one.

Failures are sorted the way gorouter's error handler sorts them, each with
the metric name gorouter counts it under, which pointsman uses both as the
upstream error kind and as the ``X-Pointsman-Error`` of the reply:

* the handshake failed, including a backend that does not speak TLS at all
  -> 525 ``backend_tls_handshake_failed``;
* the certificate does not name the expected host -> 503 ``backend_invalid_id``;
* the certificate is not trusted (unknown CA, expired, ...) -> 526
  ``backend_invalid_tls_cert``.

All three are retried on another endpoint, like a refused connect. A TLS
endpoint that fails so, or cannot be connected to, also leaves the route
table (``PRUNABLE``), as gorouter prunes TLS endpoints only on failure.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from pointsman.config import HttpBackends

__all__ = [
    "HANDSHAKE_FAILED",
    "INVALID_ID",
    "INVALID_TLS_CERT",
    "PRUNABLE",
    "TLS_FAILURES",
    "BackendTls",
    "classify",
]

HANDSHAKE_FAILED = "backend_tls_handshake_failed"
INVALID_ID = "backend_invalid_id"
INVALID_TLS_CERT = "backend_invalid_tls_cert"

TLS_FAILURES: dict[str, tuple[int, str]] = {
    HANDSHAKE_FAILED: (525, "SSL Handshake Failed: the endpoint's TLS handshake failed."),
    INVALID_ID: (503, "The endpoint's certificate does not match the expected name."),
    INVALID_TLS_CERT: (526, "The endpoint presented a certificate that is not trusted."),
}
"""Upstream error kind -> status and reply text, when the last attempt failed so."""

PRUNABLE = frozenset({"connect_failed", "connect_timeout", *TLS_FAILURES})
"""Failures that take a TLS endpoint out of the route table (gorouter's prunable errors)."""

# OpenSSL verify results that mean "a valid certificate, for another name".
_NAME_MISMATCH = frozenset({62, 63, 64})  # X509_V_ERR_HOSTNAME/EMAIL/IP_ADDRESS_MISMATCH


def classify(exc: BaseException) -> str:
    """The upstream error kind of a failed TLS connect (the TCP connect itself may have failed)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return INVALID_ID if exc.verify_code in _NAME_MISMATCH else INVALID_TLS_CERT
    if isinstance(exc, ssl.SSLError):
        return HANDSHAKE_FAILED
    if isinstance(exc, ConnectionRefusedError):
        return "connect_failed"
    if isinstance(exc, ConnectionError | EOFError):
        # Connected, then reset or closed while shaking hands.
        return HANDSHAKE_FAILED
    return "connect_failed"


class BackendTls:
    """One listener's client-side TLS settings; the context is built on first use.

    Built lazily so a listener that never meets a TLS endpoint does not load
    the system trust store. When the config names a file it is built at once
    (the config check has already loaded those files), so a file that went
    bad since fails the listener's start, not a request.
    """

    __slots__ = ("_context", "ca_file", "cert_file", "key_file")

    def __init__(self, config: HttpBackends, base: Path) -> None:
        self.ca_file = _resolve(config.ca_file, base)
        self.cert_file = _resolve(config.cert_file, base)
        self.key_file = _resolve(config.key_file, base)
        self._context: ssl.SSLContext | None = None
        if self.ca_file or self.cert_file:
            self.context()

    def context(self) -> ssl.SSLContext:
        context = self._context
        if context is None:
            context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
            if self.ca_file:
                context.load_verify_locations(cafile=self.ca_file)
            if self.cert_file and self.key_file:
                context.load_cert_chain(self.cert_file, self.key_file)
            self._context = context
        return context


def _resolve(name: str | None, base: Path) -> str:
    if not name:
        return ""
    path = Path(name)
    return str(path if path.is_absolute() else base / path)
