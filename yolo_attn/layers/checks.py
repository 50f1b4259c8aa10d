"""Argument checks shared by the layers: one clear error naming the layer, the bad value and the fix.

`assert` is never used for these: it vanishes under `python -O`, and a user's typo deserves a real message.
"""

from __future__ import annotations

from typing import Any, Iterable


def check_int(layer: str, name: str, value: Any, minimum: int = 1) -> int:
    """Return `value` if it is an int >= `minimum` (bools refused), else raise a ValueError naming the layer."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{layer}: {name} must be an integer, got {value!r} ({type(value).__name__}).")
    if value < minimum:
        raise ValueError(f"{layer}: {name} must be >= {minimum}, got {value}.")
    return value


def check_float(layer: str, name: str, value: Any, low: float = 0.0, high: float = 1.0) -> float:
    """Return `value` as a float in [low, high), else raise naming the layer (used for dropout rates)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{layer}: {name} must be a number, got {value!r} ({type(value).__name__}).")
    if not low <= value < high:
        raise ValueError(f"{layer}: {name} must be in [{low}, {high}), got {value}.")
    return float(value)


def check_bool(layer: str, name: str, value: Any) -> bool:
    """Accept True/False (and 0/1, which YAML users write) and refuse anything else."""
    if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
        return bool(value)
    raise TypeError(f"{layer}: {name} must be True or False, got {value!r} ({type(value).__name__}).")


def check_choice(layer: str, name: str, value: Any, choices: Iterable[str]) -> str:
    """Return `value` if it is one of `choices`, else raise listing them."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{layer}: unknown {name} {value!r}; choose one of {', '.join(map(repr, choices))}.")
    return value


def check_heads(layer: str, channels: int, head_dim: int, what: str = "channels") -> int:
    """Return the number of heads `channels // head_dim`, raising with nearby valid head sizes if it does not divide."""
    if channels % head_dim:
        divisors = [d for d in (8, 16, 32, 64, 128) if channels % d == 0]
        hint = f"use head_dim in {divisors}" if divisors else f"use {what} divisible by 8"
        raise ValueError(f"{layer}: {what} {channels} is not divisible by head_dim {head_dim}; {hint}.")
    return channels // head_dim


def check_channels(layer: str, channels: int, expected: int, name: str = "c1", what: str = "input has") -> None:
    """Raise a ValueError naming `layer` when a tensor has `channels` channels, not the `expected` it was built for.

    Checked before the first operation that would fail on it, whose own error (BatchNorm's, a matmul's) names no layer.
    """
    if channels != expected:
        raise ValueError(f"{layer}: {what} {channels} channels, layer was built for {name}={expected}.")
