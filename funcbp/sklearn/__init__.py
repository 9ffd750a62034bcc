"""scikit-learn's ``MLPClassifier`` and ``MLPRegressor``, trained by funcbp (an optional
extra: ``pip install 'funcbp[sklearn]'``; nothing else in funcbp imports it).

``from funcbp.sklearn import MLPClassifier, MLPRegressor`` swaps them in: scikit-learn's
constructor parameters with their defaults and meanings, its fitted attributes
(``coefs_``, ``loss_curve_``, ``validation_scores_``, ``n_iter_``, ...), ``fit``,
``partial_fit``, ``predict``, ``predict_proba``, ``score``; they pass scikit-learn's
estimator checks and work in ``Pipeline``, ``GridSearchCV`` and ``cross_val_score``.
Each epoch runs as one compiled call of ``funcbp.fit_blocks``; equal settings and
shapes reuse the compiled program (settings that differ only in a learning rate,
momentum or Adam's betas too).

The pieces: ``_spec`` (activation names, scikit-learn's losses as ``funcbp.Cost``\\ s,
the ``MLP``), ``_solvers`` (its SGD and Adam as optax transformations with their
numbers in the state; L-BFGS), ``_training`` (its epoch loop: stopping, learning-rate
schedules, early stopping), ``_base`` (parameters, fitting, the forward pass) and
``_estimators`` (targets, predictions and scores of each).
"""

from funcbp.sklearn._estimators import MLPClassifier, MLPRegressor

__all__ = ["MLPClassifier", "MLPRegressor"]
