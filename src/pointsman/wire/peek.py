"""What the peek parsers share: the ``NEED_DATA`` answer.

The peek parsers (``tls_hello``, ``postgres``, ``git``, ``proxy_protocol``,
``http_peek``) look at the first bytes a client sends, before anything is
decided, and never consume them. Each is a pure function of the buffer: it
returns an event, returns ``NEED_DATA`` while the bytes are a valid prefix
that is still too short, or raises its own ``ValueError`` subclass as soon as
no continuation could be valid. That last promise is what lets a router give
up early and lets ``routers.first`` try the next protocol without waiting.
"""

from __future__ import annotations

import enum
from typing import Final

__all__ = ["NEED_DATA", "NeedData"]


class NeedData(enum.Enum):
    """The bytes so far are a valid prefix; call again with more."""

    NEED_DATA = "NEED_DATA"

    def __repr__(self) -> str:
        return self.value


NEED_DATA: Final = NeedData.NEED_DATA
