"""Reading a driver's ``storage.params``: the same types, spellings and messages for every
driver. Values may arrive as strings (``DOCKYARD_STORAGE__PARAMS__…`` environment variables);
a wrong one is a ValueError naming the setting, which stops start-up."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

TRUE = frozenset({"true", "yes", "on", "1"})
FALSE = frozenset({"false", "no", "off", "0"})
_WHOLE = re.compile(r"\s*[+-]?\d+\s*")


def where(key: str) -> str:
    return f"storage.params.{key}"


def flag(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in TRUE | FALSE:
        return value.strip().lower() in TRUE
    raise ValueError(f"{where(key)}: expected true or false, got {value!r}")


def whole(value: Any, key: str, low: int, high: int) -> int:
    if isinstance(value, str) and _WHOLE.fullmatch(value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{where(key)}: expected a whole number, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{where(key)}: must be between {low} and {high}, got {value}")
    return value


def number(value: Any, key: str) -> float:
    if not isinstance(value, bool) and isinstance(value, int | float | str):
        try:
            return float(value)
        except ValueError:
            pass
    raise ValueError(f"{where(key)}: expected a number, got {value!r}")


def text(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{where(key)}: expected a string, got {value!r}")
    return value.strip()


def reject_unknown(params: Any, known: Iterable[str], driver: str) -> None:
    if not isinstance(params, dict):
        raise ValueError(f"storage.params: expected a mapping of settings, got {params!r}")
    names = sorted(known)
    unknown = sorted(str(k) for k in params if k not in names)
    if unknown:
        raise ValueError(
            f"unknown setting {where(unknown[0])} for the {driver} storage driver (known: {', '.join(names)})"
        )
