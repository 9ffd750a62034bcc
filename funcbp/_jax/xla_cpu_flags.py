"""XLA:CPU options funcbp sets when imported: tiny loops as one kernel, shorter compiles.

Both are backend options, which XLA reads from ``XLA_FLAGS`` once, when JAX's
backend starts: funcbp adds them to the process environment at import, so they
apply to every program of the process (and are inherited by child processes),
and have no effect where the backend started before funcbp was imported.
``XLA_FLAGS`` is left as it is when it already sets ``xla_backend_extra_options``
(the user's choice stands).

* ``xla_cpu_small_while_loop_byte_threshold``: XLA:CPU runs a program's
  operations one by one ("thunks", a fraction of a microsecond each to
  dispatch). A 2-4-1 network's epoch is about 20 of them, so dispatching is
  nearly all of a fused training loop's time. XLA compiles a ``while`` loop
  whose body accesses fewer than this many bytes (1 KiB by default) into a
  single function instead; XOR's fused epochs access about 1.5 KiB. funcbp
  raises it to 16 KiB: only loops of tiny operations are affected, which then
  run about 5x faster. ``FUNCBP_SMALL_LOOP_BYTES`` sets another size, 0 keeps
  XLA's default.
* ``xla_cpu_disable_loop_unrolling``: LLVM's loop unrolling of each generated
  kernel is a third of XLA:CPU's compile time for a training block (digits:
  about 2.0 s to 1.4 s) and bought no speed in funcbp's benchmarks: matrix
  products run in library kernels, and the elementwise ones stay vectorised.
  ``FUNCBP_LOOP_UNROLLING=1`` keeps XLA's default.
"""

from __future__ import annotations

import os

SMALL_LOOP_ENV = "FUNCBP_SMALL_LOOP_BYTES"
UNROLLING_ENV = "FUNCBP_LOOP_UNROLLING"
DEFAULT_SMALL_LOOP_BYTES = 16384


def backend_options() -> dict[str, str]:
    """The options funcbp asks for, as the environment says (see above)."""
    size = os.environ.get(SMALL_LOOP_ENV, str(DEFAULT_SMALL_LOOP_BYTES)).strip()
    if not size.isdigit():
        raise ValueError(
            f"{SMALL_LOOP_ENV} must be a number of bytes (0: XLA's default), got {size!r}"
        )
    unrolling = os.environ.get(UNROLLING_ENV, "0").strip()
    if unrolling not in ("0", "1"):
        raise ValueError(f"{UNROLLING_ENV} must be 0 or 1 (1: XLA's default), got {unrolling!r}")
    options = {}
    if int(size):
        options["xla_cpu_small_while_loop_byte_threshold"] = size
    if unrolling == "0":
        options["xla_cpu_disable_loop_unrolling"] = "true"
    return options


def set_flags() -> None:
    """Adds ``backend_options()`` to ``XLA_FLAGS`` unless it already has backend options."""
    flags = os.environ.get("XLA_FLAGS", "")
    options = backend_options()
    if not options or "xla_backend_extra_options" in flags:
        return
    extra = ",".join(f"{name}={value}" for name, value in options.items())
    os.environ["XLA_FLAGS"] = f"{flags} --xla_backend_extra_options={extra}".strip()
