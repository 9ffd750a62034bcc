"""How long JAX spent tracing, lowering and compiling (or loading cached) programs."""

from __future__ import annotations

import jax

# What jax.monitoring reports as tracing, lowering and XLA compilation; the last
# includes a persistent-cache lookup, and on a hit it is all that lookup costs.
COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)

_seconds_by_program: dict[str, float] = {}
_listening = False


def _record(event: str, duration: float, fun_name: str = "?", **_) -> None:
    if event in COMPILE_EVENTS:
        name = fun_name if fun_name.startswith("jit(") else f"jit({fun_name})"
        _seconds_by_program[name] = _seconds_by_program.get(name, 0.0) + duration


def _listen() -> None:
    """Registers the listener with ``jax.monitoring`` once, when the first clock is made
    (not at import: importing funcbp leaves JAX's global state alone)."""
    global _listening
    if not _listening:
        jax.monitoring.register_event_duration_secs_listener(_record)
        _listening = True


class CompileClock:
    """Compile seconds spent since this clock was made, in total and per program."""

    def __init__(self) -> None:
        _listen()
        self._start = dict(_seconds_by_program)

    @property
    def by_program(self) -> dict[str, float]:
        now = dict(_seconds_by_program)
        spent = {name: now[name] - self._start.get(name, 0.0) for name in now}
        return {name: seconds for name, seconds in spent.items() if seconds > 0}

    @property
    def seconds(self) -> float:
        return sum(self.by_program.values())
