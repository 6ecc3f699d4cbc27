"""Everything a config must pass before anything is started or reloaded.

The file itself (``config.load``) and then each route module it names: a
module that fails to import is found here, by ``pointsman check`` and by the
leader before a reload, instead of in a worker that then cannot start.
"""

from __future__ import annotations

from pathlib import Path

from pointsman.config import Config, ConfigError, ConfigIssue, load
from pointsman.routing.loader import RouteLoadError, load_route_module

__all__ = ["check_route_modules", "validate"]


def validate(path: str | Path) -> Config:
    """The config at ``path``, or ``ConfigError`` listing every issue found."""
    config = load(path)
    check_route_modules(config)
    return config


def check_route_modules(config: Config) -> None:
    """A route module that does not import is a config error, found before serving."""
    issues = []
    base = Path(config.source).parent
    for index, listener in enumerate(config.listeners):
        route = getattr(listener, "route", None)
        if isinstance(route, str) and route:
            try:
                load_route_module(route, base)
            except RouteLoadError as exc:
                issues.append(ConfigIssue(config.source, f"listeners[{index}].route", str(exc)))
    if issues:
        raise ConfigError(issues)
