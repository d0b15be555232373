"""Distributions in presets, and how a value is drawn from them.

In a preset a value is either fixed or a distribution:

- ``1.0`` or ``"fluidr3_gm"``: fixed;
- ``[0.9, 1.1]`` (two numbers): uniform between them;
- ``["a", "b", "c"]`` (any other list): one of them, equally likely;
- ``{uniform = [lo, hi]}``, ``{loguniform = [lo, hi]}``, ``{normal = [mean, std]}``,
  ``{choice = [...], weights = [...]}``, ``{integers = [lo, hi]}`` (both ends included).

Draws always go through a ``numpy.random.Generator`` handed in by the caller.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import UserError

DISTRIBUTIONS = ("uniform", "loguniform", "normal", "choice", "integers")


def is_number(x) -> bool:
    """An int or float, not a bool (TOML's true is not 1)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def check(value: Any, where: str) -> None:
    """Raise a UserError naming ``where`` when ``value`` is not a valid fixed value or distribution."""
    if isinstance(value, dict):
        kinds = [k for k in value if k in DISTRIBUTIONS]
        if len(kinds) != 1:
            raise UserError(f"{where}: expected one of {', '.join(DISTRIBUTIONS)} as a distribution, got {value!r}")
        kind = kinds[0]
        args = value[kind]
        if not isinstance(args, list) or not args:
            raise UserError(f"{where}: '{kind}' expects a list, got {args!r}")
        if kind != "choice" and (len(args) != 2 or not all(is_number(a) for a in args)):
            raise UserError(f"{where}: '{kind}' expects two numbers, got {args!r}")
        if kind in ("uniform", "loguniform", "integers") and args[0] > args[1]:
            raise UserError(f"{where}: '{kind}' range is reversed: {args!r}")
        if kind == "loguniform" and args[0] <= 0:
            raise UserError(f"{where}: 'loguniform' needs positive bounds, got {args!r}")
        if kind == "normal" and args[1] < 0:
            raise UserError(f"{where}: 'normal' needs a non-negative standard deviation, got {args!r}")
        unknown = sorted(set(value) - {kind, "weights"})
        if unknown or ("weights" in value and kind != "choice"):
            raise UserError(f"{where}: unexpected key(s) {', '.join(unknown) or 'weights'} in a '{kind}' distribution")
        weights = value.get("weights")
        if weights is not None and (len(weights) != len(args) or any(w < 0 for w in weights) or sum(weights) <= 0):
            raise UserError(f"{where}: 'weights' must be {len(args)} non-negative numbers")
    elif isinstance(value, list):
        if not value:
            raise UserError(f"{where}: empty list")
        if len(value) == 2 and all(is_number(v) for v in value) and value[0] > value[1]:
            raise UserError(f"{where}: range is reversed: {value!r}")


def draw(value: Any, rng: np.random.Generator, where: str = "value") -> Any:
    """One draw from a fixed value or distribution (see the module docstring)."""
    check(value, where)
    if isinstance(value, dict):
        kind = next(k for k in value if k in DISTRIBUTIONS)
        args = value[kind]
        if kind == "uniform":
            return float(rng.uniform(args[0], args[1]))
        if kind == "loguniform":
            return float(np.exp(rng.uniform(np.log(args[0]), np.log(args[1]))))
        if kind == "normal":
            return float(rng.normal(args[0], args[1]))
        if kind == "integers":
            return int(rng.integers(int(args[0]), int(args[1]) + 1))
        weights = value.get("weights")
        p = None if weights is None else np.asarray(weights, float) / float(np.sum(weights))
        return args[int(rng.choice(len(args), p=p))]
    if isinstance(value, list):
        if len(value) == 2 and all(is_number(v) for v in value):
            return float(rng.uniform(value[0], value[1]))
        return value[int(rng.integers(len(value)))]
    return value


def child_rng(root_seed: int, *keys: int | str) -> np.random.Generator:
    """An independent generator for (root seed, key, ...); strings are hashed stably."""
    words = [int(root_seed)]
    for key in keys:
        if isinstance(key, str):
            words.extend(key.encode("utf-8"))
            words.append(0x10000)
        else:
            words.append(int(key))
    return np.random.default_rng(np.random.SeedSequence(words))


def support(value: Any) -> list:
    """The values that bound what a fixed value or distribution can give: the two ends of a
    range, every option of a choice, the mean of a normal (its tails are unbounded)."""
    if isinstance(value, dict):
        kind = next((k for k in value if k in DISTRIBUTIONS), None)
        if kind is None:
            return [value]
        args = value[kind]
        return [args[0]] if kind == "normal" else list(args)
    return list(value) if isinstance(value, list) else [value]
