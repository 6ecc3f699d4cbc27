"""Finding the user's route function from what the config or command line names.

``examples/git_router.py`` loads the file and takes its ``route`` function;
``file.py:name`` or ``package.module:name`` name another one. A function of
one argument (just the bytes, as ProxyMachine's block) is accepted and wrapped
once here, so the hot path always makes the same two-argument call.

A module may also define ``on_connect(conn)``: called once as a connection
arrives, before any byte, so protocols where the server speaks first (MySQL,
SMTP, SSH) can be routed by the client's address instead of waiting forever.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pointsman.routing.content import Conn, RouteFunction

__all__ = ["RouteLoadError", "RouteModule", "load_route_module"]

DEFAULT_NAMES = ("route", "proxy")
ON_CONNECT = "on_connect"

ConnectFunction = Callable[[Conn], Any]


@dataclass(frozen=True, slots=True)
class RouteModule:
    """The functions a route module offers: ``route`` always, ``on_connect`` optionally."""

    route: RouteFunction
    on_connect: ConnectFunction | None = None


class RouteLoadError(Exception):
    """The named route function cannot be loaded; the message says why."""


def load_route_module(spec: str, base_dir: Path | None = None) -> RouteModule:
    """Load ``spec`` (``file.py``, ``file.py:name`` or ``module:name``)."""
    target, _, name = spec.partition(":") if not _is_windows_drive(spec) else (spec, "", "")
    if target.endswith(".py"):
        module = _load_file(Path(target) if base_dir is None or Path(target).is_absolute()
                            else base_dir / target)
    else:
        try:
            module = importlib.import_module(target)
        except Exception as exc:
            raise RouteLoadError(f"cannot import {target!r}: {exc}") from exc
    names = (name,) if name else DEFAULT_NAMES
    on_connect = getattr(module, ON_CONNECT, None)
    if on_connect is not None and not callable(on_connect):
        raise RouteLoadError(f"{target}: {ON_CONNECT} must be a function of (conn)")
    for candidate in names:
        function = getattr(module, candidate, None)
        if callable(function):
            return RouteModule(_two_arguments(function, f"{target}:{candidate}"), on_connect)
    wanted = " or ".join(repr(n) for n in names)
    raise RouteLoadError(f"{target} defines no function named {wanted}")


def _load_file(path: Path) -> Any:
    if not path.is_file():
        raise RouteLoadError(f"no such file: {path}")
    module_name = f"pointsman_user_{path.stem}_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise RouteLoadError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(module_name, None)
        raise RouteLoadError(f"{path}: {type(exc).__name__}: {exc}") from exc
    finally:
        sys.path.remove(str(path.parent))
    return module


def _two_arguments(function: Any, label: str) -> RouteFunction:
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return function  # type: ignore[no-any-return]
    positional = [p for p in parameters
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    variadic = any(p.kind == p.VAR_POSITIONAL for p in parameters)
    if variadic or len(positional) >= 2:
        return function  # type: ignore[no-any-return]
    if len(positional) == 1:
        def bytes_only(data: bytes, conn: Conn) -> Any:
            return function(data)
        bytes_only.__qualname__ = label
        return bytes_only
    raise RouteLoadError(f"{label} must take (data, conn) or (data)")


def _is_windows_drive(spec: str) -> bool:
    return len(spec) > 2 and spec[1] == ":" and spec[2] in "\\/"
