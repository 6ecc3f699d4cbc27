"""Routes of a service: public ones reachable through gateways, private ones only in-process.

Handlers are ``async def handler(ctx)`` (plain functions work too); a handler
that returns a value other than ``None`` replies with it. Middleware is
``async def mw(ctx, call_next)`` and runs for every message (after route
lookup, so ``ctx.params`` is filled), in the order it was added; not calling
``call_next`` stops the chain. Every registration method also works as a
decorator.

Patterns and precedence are those of ``pointsman.routing.patterns``.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar, overload

from pointsman.routing.patterns import Matcher, compile_pattern
from pointsman.service.errors import NotFound

if TYPE_CHECKING:
    from pointsman.service.context import Context

__all__ = ["Handler", "Hook", "Middleware", "Router"]

Handler = Callable[["Context"], Any]
Hook = Callable[["Context"], Any]
Next = Callable[[], Awaitable[None]]
Middleware = Callable[["Context", Next], Awaitable[None]]

F = TypeVar("F", bound=Callable[..., Any])


async def _call(fn: Callable[..., Any], *args: Any) -> Any:
    result = fn(*args)
    if inspect.isawaitable(result):
        result = await result
    return result


class Router:
    """Binds patterns to handlers and runs middleware and lifecycle hooks."""

    def __init__(self) -> None:
        self._public: dict[str, Handler] = {}
        self._private: dict[str, Handler] = {}
        self._middleware: list[Middleware] = []
        self._open_hooks: list[Hook] = []
        self._close_hooks: list[Hook] = []
        self._public_matcher: Matcher[Handler] | None = None
        self._all_matcher: Matcher[Handler] | None = None

    # -- registration -----------------------------------------------------------

    @overload
    def public_bind(self, pattern: str) -> Callable[[F], F]: ...
    @overload
    def public_bind(self, pattern: str, handler: F) -> F: ...

    def public_bind(self, pattern: str, handler: Any = None) -> Any:
        """Bind a route that gateways may deliver to (it is announced)."""
        return self._bind(self._public, pattern, handler)

    @overload
    def bind(self, pattern: str) -> Callable[[F], F]: ...
    @overload
    def bind(self, pattern: str, handler: F) -> F: ...

    def bind(self, pattern: str, handler: Any = None) -> Any:
        """Bind a private route: in-process and service-to-service calls only."""
        return self._bind(self._private, pattern, handler)

    def _bind(self, table: dict[str, Handler], pattern: str, handler: Any) -> Any:
        compile_pattern(pattern)  # fail at bind time, not at the first message
        if pattern in self._public or pattern in self._private:
            raise ValueError(f"pattern {pattern!r} is already bound")

        def register(fn: F) -> F:
            table[pattern] = fn
            self._public_matcher = self._all_matcher = None
            return fn

        return register if handler is None else register(handler)

    def use(self, middleware: F) -> F:
        """Add middleware ``async def mw(ctx, call_next)``."""
        self._middleware.append(middleware)
        return middleware

    def use_open(self, hook: F) -> F:
        """Run ``hook(ctx)`` when a socket first reaches this instance."""
        self._open_hooks.append(hook)
        return hook

    def use_close(self, hook: F) -> F:
        """Run ``hook(ctx)`` when that socket ends (client gone, gateway gone, or closed)."""
        self._close_hooks.append(hook)
        return hook

    # -- lookup and dispatch --------------------------------------------------------

    def public_patterns(self) -> list[str]:
        """What a service announces."""
        return sorted(self._public)

    def _matcher(self, public_only: bool) -> Matcher[Handler]:
        if public_only:
            if self._public_matcher is None:
                self._public_matcher = Matcher(self._public)
            return self._public_matcher
        if self._all_matcher is None:
            self._all_matcher = Matcher({**self._private, **self._public})
        return self._all_matcher

    async def dispatch(self, ctx: Context, *, public_only: bool) -> None:
        """Find the handler for ``ctx.path`` and run the middleware chain around it."""
        found = self._matcher(public_only).match(ctx.path)
        handler: Handler | None = None
        if found is not None:
            handler = found.value
            ctx.params = found.params
        middleware = self._middleware

        async def step(index: int) -> None:
            if index < len(middleware):
                await middleware[index](ctx, lambda: step(index + 1))
                return
            if handler is None:
                raise NotFound(ctx.path)
            result = await _call(handler, ctx)
            if result is not None and not ctx.replied:
                ctx.reply(result)

        await step(0)

    async def run_open(self, ctx: Context) -> None:
        for hook in self._open_hooks:
            await _call(hook, ctx)

    async def run_close(self, ctx: Context) -> None:
        for hook in self._close_hooks:
            await _call(hook, ctx)
