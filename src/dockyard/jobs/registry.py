"""Actions: the name of a kind of job → its async handler.

A handler gets a ``JobContext`` (see ``runner``) and returns the job's summary (anything
JSON can hold, or None); raising fails the attempt (retried while attempts are left).
Built in: ``sleep`` and ``false``, the job runner's self tests (as in DTR).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .runner import JobContext

Handler = Callable[["JobContext"], Coroutine[Any, Any, Any]]


class UnknownAction(ValueError):
    """No handler is registered under this name; the message lists the known ones."""


class JobFailed(Exception):
    """A handler's failure with a message meant for the job's error and log."""


@dataclass(frozen=True)
class Action:
    name: str
    handler: Handler
    max_attempts: int = 3
    description: str = ""


class ActionRegistry:
    def __init__(self) -> None:
        self._actions: dict[str, Action] = {}

    def register(self, name: str, handler: Handler, *, max_attempts: int = 3, description: str = "") -> None:
        if not name or len(name) > 64:
            raise ValueError(f"action name {name!r}: 1 to 64 characters")
        if name in self._actions:
            raise ValueError(f"action {name} is already registered")
        if max_attempts < 1:
            raise ValueError("max_attempts: at least 1")
        self._actions[name] = Action(name, handler, max_attempts, description)

    def action(self, name: str, *, max_attempts: int = 3, description: str = "") -> Callable[[Handler], Handler]:
        """The decorator form of ``register``."""

        def decorate(handler: Handler) -> Handler:
            self.register(name, handler, max_attempts=max_attempts, description=description)
            return handler

        return decorate

    def get(self, name: str) -> Action:
        try:
            return self._actions[name]
        except KeyError:
            known = ", ".join(sorted(self._actions)) or "none"
            raise UnknownAction(f"unknown action {name!r} (known: {known})") from None

    def __contains__(self, name: object) -> bool:
        return name in self._actions

    def names(self) -> list[str]:
        return sorted(self._actions)


def _number(parameters: dict[str, Any], key: str, default: float) -> float:
    value = parameters.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise JobFailed(f"parameter {key}: expected a number, got {value!r}")
    try:
        return float(value)
    except ValueError:
        raise JobFailed(f"parameter {key}: expected a number, got {value!r}") from None


async def sleep(ctx: JobContext) -> dict[str, Any]:
    """Parameters: ``seconds`` (default 60), ``fail_times`` (fail the first N attempts).
    Logs "run <attempt>" first, so tests can count runs."""
    seconds = _number(ctx.parameters, "seconds", 60)
    fail_times = int(_number(ctx.parameters, "fail_times", 0))
    await ctx.log(f"run {ctx.attempt} by {ctx.worker}")
    if ctx.attempt <= fail_times:
        raise JobFailed(f"failing attempt {ctx.attempt} on purpose (fail_times={fail_times})")
    loop = asyncio.get_running_loop()
    start = loop.time()
    total = max(1, round(seconds * 10))
    step = 0
    while step < total:
        await ctx.checkpoint()
        await asyncio.sleep(min(0.1, max(0.0, start + seconds - loop.time())))
        step = min(total, int((loop.time() - start) * 10) + 1) if seconds > 0 else total
        await ctx.progress(step, total)
    await ctx.checkpoint()
    return {"slept": seconds, "attempt": ctx.attempt}


async def false(ctx: JobContext) -> None:
    raise JobFailed("false always fails")


def builtin_actions() -> ActionRegistry:
    """A registry holding the self-test actions; add the registry's own (gc, …) to it."""
    actions = ActionRegistry()
    actions.register("sleep", sleep, max_attempts=3, description="self test: sleep (seconds, fail_times)")
    actions.register("false", false, max_attempts=1, description="self test: fail at once")
    return actions
