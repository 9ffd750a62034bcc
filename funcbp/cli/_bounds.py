"""The range of every integer a run file's key or a command-line flag takes.

Counts (epochs, batch sizes, widths, samples, seconds, ...) must fit the int32
counters a run keeps on the devices (its epoch and step): a count of 2**31 or
more would pass every other check, write the run directory and then overflow as
the run starts. Each integer is checked here, as it is read, before anything is
compiled or written; an integer key without its own range is a positive int32
count.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from funcbp.errors import ConfigError

INT32_MAX = 2**31 - 1


class Range(NamedTuple):
    low: int
    high: int
    expected: str  # what a value must be, for the message
    why_high: str = f"at most {INT32_MAX}: funcbp counts epochs and steps in int32"


COUNT = Range(1, INT32_MAX, "a positive integer")
OFF_OR_COUNT = Range(0, INT32_MAX, "an integer >= 0 (0: off)")
WIDTHS = Range(1, INT32_MAX, "positive layer widths")
SEED = Range(0, 2**32 - 1, "an integer in [0, 2**32)", "jax.random.key keeps 32 bits")


# The integer keys that are not positive int32 counts (``COUNT``).
KEY_RANGES = {
    "data.seed": SEED,
    "train.seed": SEED,
    "data.teacher_sizes": WIDTHS,
    "model.hidden": WIDTHS,
    "data.max_bytes": Range(
        0, 2**63 - 1, "a number of bytes >= 0 (0: funcbp.data's default)", "at most 2**63 - 1"
    ),
    "data.sample_weight": Range(-(2**31), INT32_MAX, "a column index"),
    "train.patience": OFF_OR_COUNT,
    "train.diagnostics_every": OFF_OR_COUNT,
    "distributed.num_processes": OFF_OR_COUNT._replace(expected="an integer >= 0 (0: one process)"),
}


def refusal(value: int, allowed: Range = COUNT, shown: str | None = None) -> str | None:
    """Why ``value`` is outside ``allowed`` (``None``: it is inside); ``shown`` is how the
    user wrote it (a flag's text, a whole list), default ``value`` itself."""
    shown = str(value) if shown is None else shown
    if value < allowed.low:
        return f"expected {allowed.expected}, got {shown}"
    if value > allowed.high:
        return f"expected {allowed.expected}, got {shown} ({allowed.why_high})"
    return None


def parse_flag(text: str, allowed: Range = COUNT) -> int:
    """A flag's integer ``text`` in ``allowed``; ``ValueError`` with the reason, naming ``text``."""
    stripped = text.strip()
    digits = stripped.removeprefix("-")
    if not digits.isdigit():
        raise ValueError(f"expected {allowed.expected}, got {text!r}")
    problem = refusal(int(stripped), allowed, repr(text))
    if problem:
        raise ValueError(problem)
    return int(stripped)


def check_key(key: str, values: Sequence[int], shown: str) -> None:
    """Refuses (``ConfigError`` naming ``key``) a value outside the key's range (``shown``:
    how the file wrote them)."""
    allowed = KEY_RANGES.get(key, COUNT)
    for value in values:
        problem = refusal(value, allowed, shown)
        if problem:
            raise ConfigError(f"{key}: {problem}")
