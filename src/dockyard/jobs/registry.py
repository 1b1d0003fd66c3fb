"""Actions: the name of a kind of job → its async handler.

A handler gets a ``JobContext`` (see ``runner``) and returns the job's summary (anything
JSON can hold, or None); raising fails the attempt (retried while attempts are left).
Built in: ``sleep`` and ``false``, the job runner's self tests (as in DTR).
"""

from __future__ import annotations

import asyncio
import math
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


class BadParameters(JobFailed, ValueError):
    """A job's parameters do not suit its action: refused when queued, fatal when run."""


Check = Callable[[dict[str, Any]], object]


@dataclass(frozen=True)
class Action:
    name: str
    handler: Handler
    max_attempts: int = 3
    description: str = ""
    check: Check | None = None  # raises BadParameters; run when a job or schedule is made

    def check_parameters(self, parameters: dict[str, Any]) -> None:
        if self.check is not None:
            self.check(parameters)


class ActionRegistry:
    def __init__(self) -> None:
        self._actions: dict[str, Action] = {}

    def register(
        self,
        name: str,
        handler: Handler,
        *,
        max_attempts: int = 3,
        description: str = "",
        check: Check | None = None,
    ) -> None:
        if not name or len(name) > 64:
            raise ValueError(f"action name {name!r}: 1 to 64 characters")
        if name in self._actions:
            raise ValueError(f"action {name} is already registered")
        if max_attempts < 1:
            raise ValueError("max_attempts: at least 1")
        self._actions[name] = Action(name, handler, max_attempts, description, check)

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


def number_param(parameters: dict[str, Any], key: str, default: float) -> float:
    """A job parameter that must be a finite number (or a string of one); BadParameters otherwise."""
    value = parameters.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise BadParameters(f"parameter {key}: expected a number, got {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise BadParameters(f"parameter {key}: expected a number, got {value!r}") from None
    if not math.isfinite(number):
        raise BadParameters(f"parameter {key}: expected a finite number, got {value!r}")
    return number


def flag_param(parameters: dict[str, Any], key: str, default: bool) -> bool:
    """A job parameter that must be true or false (JSON, or the CLI's "true"/"false")."""
    value = parameters.get(key, default)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise BadParameters(f"parameter {key}: expected true or false, got {value!r}")


def only_params(parameters: dict[str, Any], action: str, known: tuple[str, ...]) -> None:
    """BadParameters naming the first parameter ``action`` does not take."""
    unknown = sorted(set(parameters) - set(known))
    if unknown:
        raise BadParameters(f"unknown parameter {unknown[0]} for {action} (known: {', '.join(known) or 'none'})")


def _sleep_options(parameters: dict[str, Any]) -> tuple[float, int]:
    only_params(parameters, "sleep", ("seconds", "fail_times"))
    seconds = number_param(parameters, "seconds", 60)
    if not 0 <= seconds <= 86400:
        raise BadParameters(f"parameter seconds: 0 to 86400, got {seconds:g}")
    return seconds, int(number_param(parameters, "fail_times", 0))


async def sleep(ctx: JobContext) -> dict[str, Any]:
    """Parameters: ``seconds`` (default 60), ``fail_times`` (fail the first N attempts).
    Logs "run <attempt>" first, so tests can count runs."""
    seconds, fail_times = _sleep_options(ctx.parameters)
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
    actions.register(
        "sleep", sleep, max_attempts=3, description="self test: sleep (seconds, fail_times)", check=_sleep_options
    )
    actions.register(
        "false",
        false,
        max_attempts=1,
        description="self test: fail at once",
        check=lambda p: only_params(p, "false", ()),
    )
    return actions
