"""What the keys of a preset table are, what they default to and which values are valid.

Each stage declares the keys of its table next to the code that uses them (a ``dict`` of
name -> :class:`Key`); :func:`check_table` refuses unknown keys, fills defaults and checks
every value, fixed or a distribution (:mod:`.distributions`), against its type and range.
Errors name the file, the table, the key and the valid range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from . import distributions
from .distributions import is_number
from .errors import UserError

KINDS = ("number", "integer", "name", "bool", "list", "table", "any")


@dataclass(frozen=True)
class Key:
    """One preset key: its default, its kind and (for numbers) its valid range.

    ``random``: the value may be a distribution. Bounds are inclusive unless ``open_low``
    or ``open_high``; ``None`` is unbounded.
    """

    default: Any
    kind: str = "number"
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    random: bool = True
    unit: str = ""

    def range_text(self) -> str:
        lo = "-inf" if self.low is None else f"{self.low:g}"
        hi = "inf" if self.high is None else f"{self.high:g}"
        left = "(" if self.open_low or self.low is None else "["
        right = ")" if self.open_high or self.high is None else "]"
        return f"{left}{lo}, {hi}{right}" + (f" {self.unit}" if self.unit else "")

    def in_range(self, x: float) -> bool:
        if not math.isfinite(x):
            return False
        if self.low is not None and (x < self.low or (self.open_low and x == self.low)):
            return False
        if self.high is not None and (x > self.high or (self.open_high and x == self.high)):
            return False
        return True

    def check(self, value: Any, where: str) -> None:
        """Raise a UserError naming ``where`` when ``value`` is not valid for this key."""
        if self.kind == "any":
            return
        if self.random:
            distributions.check(value, where)
            candidates = distributions.support(value)
        else:
            if (isinstance(value, dict) and self.kind != "table") or (isinstance(value, list) and self.kind != "list"):
                raise UserError(f"{where}: expected a fixed {self._noun()}, not a distribution, got {value!r}")
            candidates = [value]
        for x in candidates:
            self._check_one(x, where)

    def _noun(self) -> str:
        return {"number": "number", "integer": "integer", "name": "name", "bool": "true or false",
                "list": "list", "table": "table"}[self.kind]

    def _check_one(self, x: Any, where: str) -> None:
        kind = self.kind
        if kind in ("number", "integer"):
            if not is_number(x) or (kind == "integer" and not float(x).is_integer()):
                what = "an integer" if kind == "integer" else "a number"
                raise UserError(f"{where}: expected {what}{' or a distribution' if self.random else ''}, got {x!r}")
            if not self.in_range(float(x)):
                raise UserError(f"{where}: {x!r} is outside the valid range {self.range_text()}")
        elif kind == "name" and not isinstance(x, str | dict):
            raise UserError(f"{where}: expected a name, got {x!r}")
        elif kind == "bool" and not isinstance(x, bool):
            raise UserError(f"{where}: expected true or false, got {x!r}")
        elif kind == "list" and not isinstance(x, list):
            raise UserError(f"{where}: expected a list, got {x!r}")
        elif kind == "table" and not isinstance(x, dict):
            raise UserError(f"{where}: expected a table, got {x!r}")


def defaults(keys: dict[str, Key]) -> dict[str, Any]:
    return {name: key.default for name, key in keys.items()}


def check_table(table: Any, keys: dict[str, Key], where: str, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """``table`` with defaults filled in, every key checked; unknown keys are refused.

    ``where`` names the file and the table, e.g. ``"presets/corpora/x.toml: [performance]"``.
    ``extra``: keys accepted without a check (``name``, ``description``, ``_source``).
    """
    if not isinstance(table, dict):
        raise UserError(f"{where}: expected a table, got {table!r}")
    unknown = sorted(set(table) - set(keys) - set(extra) - {"_source"})
    if unknown:
        known = ", ".join([*extra, *keys])
        raise UserError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {known})")
    out = dict(table)
    for name, key in keys.items():
        if name not in out:
            out[name] = key.default
        else:
            key.check(out[name], f"{where} key '{name}'")
    return out
