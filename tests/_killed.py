"""A run killed (as by SIGKILL) at a chosen checkpoint, in process."""

import contextlib

from funcbp.cli import _rundir


class Killed(BaseException):
    """SIGKILL at a chosen moment, in process."""


@contextlib.contextmanager
def killed_at_save(monkeypatch, save: int):
    """While active, the run's ``save``-th checkpoint (1: epoch 0's) raises ``Killed``
    instead of being written."""
    real, calls = _rundir.Saver.save, []

    def saving(self, *args):
        calls.append(1)
        if len(calls) == save:
            raise Killed
        return real(self, *args)

    with monkeypatch.context() as patch:
        patch.setattr(_rundir.Saver, "save", saving)
        yield
