"""XLA's CPU backend compiles a small ``while`` loop (a tiny network's epochs) as one kernel.

XLA:CPU runs a program's operations one by one ("thunks", a fraction of a
microsecond each to dispatch). A 2-4-1 network's epoch is about 20 of them, so
dispatching is nearly all of a fused training loop's time. XLA compiles a
``while`` loop whose body accesses fewer than
``xla_cpu_small_while_loop_byte_threshold`` bytes (1 KiB by default) into a
single function instead; the fused epochs of XOR access about 1.5 KiB. funcbp
raises the threshold to 16 KiB when it is imported: only loops of tiny
operations are affected, which then run about 5x faster (``benchmarks/training.py``).

Set ``FUNCBP_SMALL_LOOP_BYTES`` to another size, or to 0 to keep XLA's default.
``XLA_FLAGS`` is left as it is when it already sets ``xla_backend_extra_options``
(the user's choice stands). The flag is inherited by child processes, and has no
effect in a process whose JAX backend started before funcbp was imported (XLA
reads its flags once, when it starts).
"""

from __future__ import annotations

import os

ENV = "FUNCBP_SMALL_LOOP_BYTES"
DEFAULT_BYTES = 16384
OPTION = "xla_cpu_small_while_loop_byte_threshold"


def raise_threshold() -> None:
    """Adds the threshold to ``XLA_FLAGS`` (read when JAX's backend starts), as set above."""
    size = os.environ.get(ENV, str(DEFAULT_BYTES)).strip()
    if not size.isdigit():
        raise ValueError(f"{ENV} must be a number of bytes (0: XLA's default), got {size!r}")
    flags = os.environ.get("XLA_FLAGS", "")
    if int(size) == 0 or "xla_backend_extra_options" in flags:
        return
    os.environ["XLA_FLAGS"] = f"{flags} --xla_backend_extra_options={OPTION}={size}".strip()
