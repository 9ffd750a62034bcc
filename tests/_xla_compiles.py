"""Counting XLA compilations in tests (tracing and lowering are not counted)."""

import jax
import pytest


class XlaCompiles:
    """Counts XLA compilations while active: ``with compiles: ...``, then ``compiles.count``."""

    def __init__(self):
        self.count, self.active = 0, False
        jax.monitoring.register_event_duration_secs_listener(self._record)

    def _record(self, event, duration, **_):
        self.count += self.active and event == "/jax/core/compile/backend_compile_duration"

    def __enter__(self):
        self.count, self.active = 0, True
        return self

    def __exit__(self, *_):
        self.active = False


def assert_refused_before_compiling(call, error: type[Exception], message: str) -> None:
    """``call()`` raises ``error`` matching ``message`` having compiled nothing."""
    compiles = XlaCompiles()
    with compiles, pytest.raises(error, match=message):
        call()
    assert compiles.count == 0
