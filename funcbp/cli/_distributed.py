"""Starting ``jax.distributed`` for a run: which processes it waits for, where, how long.

``jax.distributed.initialize`` blocks until every process has connected, and
when its own deadline passes XLA aborts the process with a C++ stack trace
rather than raising. So the wait is announced on standard error, and a watchdog
thread ends it first, after ``distributed.timeout`` seconds (``--timeout``),
with one line and exit status 2, as any other bad input.
"""

from __future__ import annotations

import os
import sys
import threading

from funcbp.errors import ConfigError

# Seconds JAX's own deadline comes after ours: the watchdog's line, never XLA's abort.
_MARGIN = 60


def start(coordinator: str | None, num_processes: int | None, process_id: int | None,
          timeout: int) -> None:  # fmt: skip
    """Joins the run's ``jax.distributed`` processes, waiting at most ``timeout`` seconds.

    ``coordinator`` and ``num_processes`` ``None``: what JAX detects (SLURM, Open
    MPI, ``JAX_COORDINATOR_ADDRESS``, ...). Does not return if the others do not
    all connect in time: exits the process with status 2 after one line.

    Raises:
      ConfigError: ``jax.distributed`` refuses the arguments.
    """
    import jax

    waiting = _waiting(coordinator, num_processes, process_id)
    print(f"funcbp: {waiting} (up to {timeout} s)", file=sys.stderr, flush=True)
    watchdog = threading.Timer(timeout, _give_up, (f"{waiting}: gave up after {timeout} s",))
    watchdog.daemon = True
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # for CPU processes
    watchdog.start()
    try:
        jax.distributed.initialize(coordinator, num_processes, process_id,
                                   initialization_timeout=timeout + _MARGIN)  # fmt: skip
    except (RuntimeError, TypeError, ValueError) as err:
        raise ConfigError(f"distributed: jax.distributed could not start: {err}") from None
    finally:
        watchdog.cancel()


def _waiting(coordinator: str | None, num_processes: int | None, process_id: int | None) -> str:
    """What this process waits for, e.g. "process 0 of 2 at 127.0.0.1:1234: waiting for
    process 1 to connect"."""
    if coordinator is None or num_processes is None:
        return "waiting for the processes JAX detects (SLURM, Open MPI, ...) to connect"
    me = "process ?" if process_id is None else f"process {process_id}"
    if process_id == 0:
        others = "process 1" if num_processes == 2 else f"processes 1 to {num_processes - 1}"
        return f"{me} of {num_processes} at {coordinator}: waiting for {others} to connect"
    return f"{me} of {num_processes}: waiting to connect to process 0 at {coordinator}"


def _give_up(what: str) -> None:
    sys.stdout.flush()
    print(
        f"funcbp: error: distributed: {what}; start every process with the same --coordinator "
        "and --num-processes and its own --process-id (or raise distributed.timeout)",
        file=sys.stderr,
        flush=True,
    )
    os._exit(2)  # the main thread is blocked inside XLA: nothing else can stop it
