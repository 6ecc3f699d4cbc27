"""Providers start, probe and stop the backends a provision pool hands out.

This is the one corner of ``upstream/`` that does I/O: a provider is the
adapter between the pure pool policy (``upstream.provision``) and a real
engine, and the asyncio driver in ``serve/provision.py`` is its only caller.
"""

from pointsman.upstream.providers.base import (
    INSTANCE_LABEL,
    MANAGED_LABEL,
    UPSTREAM_LABEL,
    WORKER_LABEL,
    Handle,
    Provider,
    ProviderError,
    make_provider,
)

__all__ = [
    "INSTANCE_LABEL",
    "MANAGED_LABEL",
    "UPSTREAM_LABEL",
    "WORKER_LABEL",
    "Handle",
    "Provider",
    "ProviderError",
    "make_provider",
]
