"""nginx's ``user`` directive: workers run as ``[process] user``/``group``.

The leader keeps the privileges it started with: it binds every listening
socket (ports below 1024 included) and must bind new ones on a reload. Each
worker, once forked and once it has opened its log files, gives them up for
good before it starts a listener or loads a route module: supplementary
groups first, then the group, then the user (the only order that works,
since only root may change groups). A worker that fails to drop exits
instead of serving traffic as root.

Files a worker writes by name must be the user's: the leader creates the
log files and hands them to the user (``hand_over``) at start, on reload and
on USR1, as nginx does, so a worker reopens them after logrotate. The state
file is written by the leader only.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
from collections.abc import Iterable
from dataclasses import dataclass

from pointsman.config import ProcessConfig

__all__ = ["Identity", "PrivilegeError", "drop", "hand_over", "identity_of", "require"]


class PrivilegeError(PermissionError):
    """The configured identity cannot be taken; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class Identity:
    user: str
    uid: int
    gid: int
    groups: tuple[int, ...]

    @property
    def current(self) -> bool:
        """This process already runs as this user and group."""
        return os.geteuid() == self.uid and os.getegid() == self.gid


def identity_of(process: ProcessConfig) -> Identity | None:
    """Who workers should run as, or ``None`` to keep the leader's identity."""
    if process.user is None:
        return None
    try:
        entry = pwd.getpwnam(process.user)
        gid = grp.getgrnam(process.group).gr_gid if process.group else entry.pw_gid
    except KeyError as exc:
        raise PrivilegeError(f"[process] user/group: {exc.args[0]}") from None
    groups = tuple(os.getgrouplist(entry.pw_name, gid))
    return Identity(entry.pw_name, entry.pw_uid, gid, groups)


def require(identity: Identity | None) -> None:
    """Refuse to start when workers could not become ``identity``."""
    if identity is None or identity.current or os.geteuid() == 0:
        return
    raise PrivilegeError(
        f"[process] user = {identity.user!r} needs the leader to start as root "
        f"(it runs as uid {os.geteuid()}); start it as root or remove 'user'")


def drop(identity: Identity | None) -> None:
    """Become ``identity`` for good: setgroups, setgid, setuid, in that order."""
    if identity is None or (identity.current and os.getuid() == identity.uid):
        return
    os.setgroups(list(identity.groups))
    os.setgid(identity.gid)
    os.setuid(identity.uid)
    if os.geteuid() != identity.uid or os.getegid() != identity.gid:
        raise PrivilegeError(f"still uid {os.geteuid()} after switching to {identity.user!r}")


def hand_over(paths: Iterable[str], identity: Identity | None) -> None:
    """Create the log files a worker writes and make them ``identity``'s (as root only)."""
    if identity is None or os.geteuid() != 0:
        return
    for path in paths:
        if path in ("stdout", "stderr", "off"):
            continue
        with contextlib.suppress(OSError):
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
            try:
                os.fchown(fd, identity.uid, identity.gid)
            finally:
                os.close(fd)
