"""scikit-learn's training loops on funcbp's compiled epochs.

A stochastic solver runs ``funcbp.fit_blocks``; after each epoch, on the host, the
estimator does what scikit-learn's ``_fit_stochastic`` does::

    n_iter_ += 1; t_ += n_samples; loss_curve_.append(loss_)
    no improvement: loss_ > best_loss_ - tol   (early stopping: validation score
                    < best_validation_score_ + tol, the best epoch's weights kept)
    invscaling:     learning rate = learning_rate_init / (t_ + 1) ** power_t
    more than n_iter_no_change epochs without: stop, or (adaptive) divide the
                    learning rate by 5, stopping once it is at most 1e-6
    n_iter_ == max_iter: ConvergenceWarning

One compiled call runs several epochs where the rule needs only their losses (up to
``MAX_EPOCHS_PER_CALL``, about ``ROWS_PER_CALL`` rows' worth: few host round trips for
small data, little work beyond a stop for large). When the rule stops, or changes the
learning rate, inside a call, the call is run again from the state before it for just
those epochs (the same program on the same state gives the same epochs), so the
result is the one epoch-by-epoch training gives. A new learning rate is set in the
optimizer state between two calls. L-BFGS runs its iterations as one compiled block
and stops by itself (``funcbp.optim``'s stop reasons).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

from sklearn.exceptions import ConvergenceWarning

from funcbp._jax.compile_clock import CompileClock
from funcbp.mlp import MLP
from funcbp.sklearn._solvers import learning_rate, with_hyperparameters
from funcbp.train import FitOptions, TrainState, evaluate, fit_blocks

NON_FINITE = ("Solver produced non-finite parameter weights. The input data may contain large "
              "values and need to be preprocessed.")  # fmt: skip
SMALLEST_ADAPTIVE_RATE = 1e-6  # scikit-learn's: an adaptive learning rate this low stops
MAX_EPOCHS_PER_CALL = 10
ROWS_PER_CALL = 10_000
LBFGS_ITERATIONS_PER_CALL = 50  # it stops by itself inside a call; max_iter stays the host's


class Run(NamedTuple):
    """What one ``fit`` or ``partial_fit`` trains, and how."""

    net: MLP
    solver: Any  # an optax transformation (sgd, adam) or a funcbp.optim.Solver (lbfgs)
    data: tuple  # (x [n, n_features], y, sample_weight [n] or None), in the training dtype
    options: FitOptions


def epochs_per_call(est, rows: int) -> int:
    """Epochs of ``rows`` rows that one compiled call runs (L-BFGS: iterations): 1 where
    the rule acts on every epoch's state (early stopping's score, invscaling's rate)."""
    if est.solver == "lbfgs":
        return LBFGS_ITERATIONS_PER_CALL
    if est.early_stopping or est.learning_rate == "invscaling":
        return 1
    return max(1, min(MAX_EPOCHS_PER_CALL, ROWS_PER_CALL // rows))


def train_stochastic(
    est, run: Run, state: TrainState, score: Callable | None, clock: CompileClock,
    incremental: bool,
) -> TrainState:  # fmt: skip
    """Trains ``run.net`` from ``state`` for up to ``run.options.epochs`` epochs by ``est``'s
    rules (module docstring), recording them in ``est``'s fitted attributes; returns the
    last state, with the best parameters when ``score`` (``params -> validation score``)
    is given. ``incremental`` (``partial_fit``): one epoch, never a ConvergenceWarning."""
    net, solver, data, options = run
    est.n_iter_ = 0
    while est.n_iter_ < options.epochs:
        start = state
        calls = fit_blocks(net, solver, data, options, state=start,
                           epochs=options.epochs - est.n_iter_)  # fmt: skip
        for block in calls:
            if block.diverged:
                raise ValueError(NON_FINITE)
            _print_compile_time(est, clock)
            losses, now = block.columns["train_loss"], learning_rate(block.state)
            for ran, loss in enumerate(losses, 1):  # noqa: B007 (ran: the epochs recorded)
                rate = _after_epoch(est, loss, len(data[0]), now, score, block.state.params)
                if rate != now:
                    break
            state = start = block.state if ran == len(losses) else _replayed(run, start, ran)
            if rate is None:
                return _finished(est, state)
            if est.n_iter_ == est.max_iter and not incremental:
                warnings.warn(f"Stochastic Optimizer: Maximum iterations ({est.max_iter}) reached "
                              "and the optimization hasn't converged yet.", ConvergenceWarning,
                              stacklevel=4)  # fmt: skip
            if rate != now:
                state = with_hyperparameters(state, learning_rate=rate)
                break  # train on from this state, at the new rate
    return _finished(est, state)


def _replayed(run: Run, start: TrainState, epochs: int) -> TrainState:
    """The state ``epochs`` epochs after ``start``, by the same compiled call again."""
    block = next(iter(fit_blocks(*run, state=start, epochs=epochs)))
    return block.state


def _after_epoch(est, loss: float, samples: int, now: float, score, params) -> float | None:
    """Records an epoch (its ``loss``, and with ``score`` the validation score of its
    ``params``); the learning rate to train on (``now``: the current one), ``None`` to stop."""
    _record(est, loss, samples)
    if score is None:
        _count_training_loss(est)
    elif _validated(est, score(params)):
        est._best_params = params
    rate = now
    if est.learning_rate == "invscaling":
        rate = est.learning_rate_init / (est.t_ + 1) ** est.power_t
    if est._no_improvement_count > est.n_iter_no_change:
        rate = _stop_or_slow_down(est, rate, score is not None)
    return rate


def _record(est, loss: float, samples: int) -> None:
    est.n_iter_ += 1
    est.t_ += samples
    est.loss_ = loss
    est.loss_curve_.append(loss)
    if est.verbose:
        print(f"Iteration {est.n_iter_}, loss = {loss:.8f}")


def _print_compile_time(est, clock: CompileClock) -> None:
    """Before a fit's first epoch (``verbose``): the seconds compiling took (0 when every
    program was compiled already)."""
    if est.verbose and est.n_iter_ == 0:
        print(f"Compile time: {clock.seconds:.2f} s")


def _count_training_loss(est) -> None:
    loss = est.loss_curve_[-1]
    worse = loss > est.best_loss_ - est.tol
    est._no_improvement_count = est._no_improvement_count + 1 if worse else 0
    est.best_loss_ = min(est.best_loss_, loss)


def _validated(est, score: float) -> bool:
    """Records a validation ``score``; whether it is the best yet."""
    est.validation_scores_.append(score)
    if est.verbose:
        print(f"Validation score: {score:f}")
    worse = score < est.best_validation_score_ + est.tol
    est._no_improvement_count = est._no_improvement_count + 1 if worse else 0
    if score > est.best_validation_score_:
        est.best_validation_score_ = score
        return True
    return False


def _stop_or_slow_down(est, rate: float, early_stopping: bool) -> float | None:
    """The learning rate to train on after ``n_iter_no_change`` epochs without
    improvement, or ``None``: stop."""
    what = "Validation score" if early_stopping else "Training loss"
    message = (f"{what} did not improve more than tol={est.tol:f} for "
               f"{est.n_iter_no_change} consecutive epochs.")  # fmt: skip
    if est.solver != "sgd" or est.learning_rate != "adaptive":
        if est.verbose:
            print(f"{message} Stopping.")
        return None
    if rate <= SMALLEST_ADAPTIVE_RATE:
        if est.verbose:
            print(f"{message} Learning rate too small. Stopping.")
        return None
    est._no_improvement_count = 0
    if est.verbose:
        print(f"{message} Setting learning rate to {rate / 5:f}")
    return rate / 5


def _finished(est, state: TrainState) -> TrainState:
    """With early stopping, ``state`` with the best epoch's parameters."""
    if est.early_stopping and est._best_params is not None:
        return state._replace(params=est._best_params)
    return state


def train_lbfgs(est, run: Run, state: TrainState, clock: CompileClock) -> TrainState:
    """Runs ``run.solver`` (L-BFGS) from ``state`` until it stops or for ``run.options.epochs``
    iterations; sets
    ``n_iter_``, ``loss_`` (at the parameters it returns) and ``loss_curve_`` (the loss
    each iteration started from), with a ``ConvergenceWarning`` where scipy's L-BFGS-B
    would not report success."""
    net, solver, data, options = run
    losses, stop = [], None
    for block in fit_blocks(net, solver, data, options, state=state):
        if block.diverged:
            raise ValueError(NON_FINITE)
        state, stop = block.state, block.solver_stop
        losses += block.columns["train_loss"]
    est.n_iter_, est.loss_curve_ = len(losses), losses
    est.loss_ = float(evaluate(net, state.params, *data)["loss"])
    if est.verbose:
        print(f"Compile time: {clock.seconds:.2f} s")
        for i, loss in enumerate(losses, 1):
            print(f"Iteration {i}, loss = {loss:.8f}")
    if stop is None or stop[1] == "evaluations" or stop[3]:
        what = "max_iter iterations run" if stop is None else stop[2]
        warnings.warn(f"lbfgs failed to converge after {est.n_iter_} iteration(s): {what}. "
                      f"Increase the number of iterations (max_iter={est.max_iter}) or of "
                      f"function evaluations (max_fun={est.max_fun}), or scale the data.",
                      ConvergenceWarning, stacklevel=4)  # fmt: skip
    return state
