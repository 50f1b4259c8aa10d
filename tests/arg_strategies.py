"""Hypothesis strategies for the arguments of every registered layer, shared by the layer fuzzer
(tests/layers/test_registered_layers.py) and the YAML-row fuzzer (tests/integration/test_row_errors.py)."""

from __future__ import annotations

from hypothesis import strategies as st

from yolo_attn.layers.block import ATTENTION_TYPES
from yolo_attn.layers.transformer import ACTIVATIONS

SIZE_CAPS = {"dim_feedforward": 256, "num_layers": 3, "c2": 64}  # they allocate: huge values would only test RAM
CHOICES = [*ATTENTION_TYPES, *ACTIVATIONS]
JUNK_STRINGS = ["", "gobal", "STANDARD", "nc", "32", "None", "tanh"]


def plausible(arg: str, default: object) -> st.SearchStrategy:
    """Values of the argument's own type and range (which may still be invalid together, e.g. heads vs channels)."""
    if isinstance(default, bool):
        return st.booleans()
    if isinstance(default, str):
        return st.sampled_from(CHOICES)
    if isinstance(default, float):
        return st.floats(0.0, 0.9) if default < 1 else st.floats(1.5, 1e6)  # dropout rates; temperature
    ints = st.integers(1, SIZE_CAPS.get(arg, 64))
    return ints if default is not None else st.none() | ints


def implausible(arg: str) -> st.SearchStrategy:
    ints = st.integers(-3, 0) | st.sampled_from([-(2**63), -(2**31)])
    if arg not in SIZE_CAPS:
        ints = ints | st.sampled_from([2**31 - 1, 2**31, 2**63, 10**30])
    return st.one_of(
        ints,
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from([0.5, 1.0, 32.0, -0.0]),
        st.none(),
        st.booleans(),
        st.sampled_from(CHOICES + JUNK_STRINGS),
        st.lists(st.integers(0, 64), max_size=2),
        st.just(["standard"]),
    )

def assert_named(e: BaseException, *prefixes: str) -> None:
    assert isinstance(e, (TypeError, ValueError)), f"{type(e).__name__}: {e}"
    assert str(e).startswith(prefixes), f"message does not start with {prefixes}: {type(e).__name__}: {e}"
