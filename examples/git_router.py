"""Route git:// by user: each user's repositories live on one backend git daemon.

ProxyMachine's git example in Python. Run it with::

    pointsman tcp -c examples/git_router.py -p 9418

and ``git clone git://localhost/alice/project.git`` reaches alice's backend,
while an unknown user gets ``fatal: remote error: no such user: /carol/x.git``.
The table comes from ``POINTSMAN_GIT_BACKENDS`` (``alice=127.0.0.1:9419,bob=...``)
or the default below. The hand-written ``route`` is the whole router; the
built-in one does the same (``-c examples/git_router.py:builtin``).
"""

from __future__ import annotations

import os

from pointsman import routers
from pointsman.routing.content import CLOSE, NOOP, Conn, Decision, Route
from pointsman.wire import git


def _backends(spec: str) -> dict[str, str]:
    pairs = (item.split("=", 1) for item in spec.split(",") if "=" in item)
    return {user.strip(): backend.strip() for user, backend in pairs}


BACKENDS = _backends(os.environ.get("POINTSMAN_GIT_BACKENDS", "")) or {
    "alice": "127.0.0.1:9419",
    "bob": "127.0.0.1:9420",
}


def route(data: bytes, conn: Conn) -> Decision | str:
    try:
        request = git.parse(data)  # "0044git-upload-pack /alice/proj.git\0host=...\0"
    except git.GitError:
        return CLOSE  # not git: hang up
    if request is git.NEED_DATA:
        return NOOP  # the first pkt-line is not all here yet
    backend = BACKENDS.get(request.user or "")
    if backend is None:
        return Route(reply=git.err_pkt(f"no such user: {request.path}"), close=True)
    return backend


builtin = routers.git(BACKENDS)
