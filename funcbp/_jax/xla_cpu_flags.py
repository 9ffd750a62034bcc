"""XLA:CPU options for funcbp's programs: tiny loops as one kernel, shorter compiles.

Both are backend options, which XLA reads from ``XLA_FLAGS`` once, when JAX's
backend starts. Importing funcbp changes nothing; ``use_fast_cpu_compile()``
(what ``funcbp`` the command does first) adds them to the process environment,
so they apply to every program of the process (and are inherited by child
processes). It must run before JAX's first computation. ``XLA_FLAGS`` is left as
it is when it already sets ``xla_backend_extra_options`` (the user's choice stands).

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


def use_fast_cpu_compile() -> bool:
    """Sets the XLA:CPU options above for this process; call it before JAX's first computation.

    A script gains what ``funcbp train`` has: XOR's fused epochs run as one kernel
    (about 5x the steps per second) and a training block compiles about a third
    faster. Other backends (GPU, TPU) ignore them.

    Returns:
      ``True`` when the options were added to ``XLA_FLAGS``; ``False`` when there is
      nothing to add (both turned off, or ``XLA_FLAGS`` names backend options already).

    Raises:
      ValueError: ``FUNCBP_SMALL_LOOP_BYTES`` or ``FUNCBP_LOOP_UNROLLING`` is malformed.
      RuntimeError: JAX's backend has started already, so XLA would not read them.
    """
    options = backend_options()
    flags = os.environ.get("XLA_FLAGS", "")
    if not options or "xla_backend_extra_options" in flags:
        return False
    if _backend_started():
        raise RuntimeError(
            "use_fast_cpu_compile() must run before JAX's first computation: XLA has read "
            "XLA_FLAGS already (call it right after the imports)"
        )
    extra = ",".join(f"{name}={value}" for name, value in options.items())
    os.environ["XLA_FLAGS"] = f"{flags} --xla_backend_extra_options={extra}".strip()
    return True


def _backend_started() -> bool:
    from jax._src import xla_bridge  # no public way to ask; absent: assume not started

    return getattr(xla_bridge, "backends_are_initialized", lambda: False)()
