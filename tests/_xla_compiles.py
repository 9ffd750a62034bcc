"""Counting XLA compilations in tests (tracing and lowering are not counted)."""

import jax


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
