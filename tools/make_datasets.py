"""Writes the built-in datasets ``funcbp/datasets/{xor,iris,digits}.npz`` (run once).

iris and digits are taken from the copies that scikit-learn bundles inside its
wheel, so nothing is downloaded; scikit-learn is needed by this script only,
never by funcbp::

    .venv/bin/pip install scikit-learn
    .venv/bin/python tools/make_datasets.py

Each file holds ``x`` ``[n, n_features]`` float32 and ``y`` ``[n]`` int32 labels.
Sources and licences are in ``funcbp/datasets/README.md``.
"""

from __future__ import annotations

import pathlib

import numpy as np
from sklearn import datasets

OUT = pathlib.Path(__file__).resolve().parent.parent / "funcbp" / "datasets"


def main() -> None:
    iris = datasets.load_iris()
    digits = datasets.load_digits()
    arrays = {
        "xor": (np.array([[0, 0], [0, 1], [1, 0], [1, 1]]), np.array([0, 1, 1, 0])),
        "iris": (iris.data, iris.target),
        "digits": (digits.data, digits.target),
    }
    expected = {"xor": ((4, 2), 2), "iris": ((150, 4), 3), "digits": ((1797, 64), 10)}
    for name, (x, y) in arrays.items():
        shape, n_classes = expected[name]
        # A changed upstream copy must not slip silently into the package.
        if x.shape != shape or sorted(set(y.tolist())) != list(range(n_classes)):
            raise SystemExit(f"{name}: got x {x.shape} with labels {sorted(set(y.tolist()))}")
        path = OUT / f"{name}.npz"
        np.savez_compressed(path, x=x.astype(np.float32), y=y.astype(np.int32))
        print(
            f"{path.relative_to(OUT.parent.parent)}: x {x.shape}, {n_classes} classes, "
            f"{path.stat().st_size} bytes"
        )


if __name__ == "__main__":
    main()
