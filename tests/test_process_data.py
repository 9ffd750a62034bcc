"""One file per process: the processes' agreement, simulated with another process's values.

The real two-process run is in tests/test_distributed.py.
"""

import numpy as np
import pytest

from funcbp import DataError, data, process_data


def _beside(monkeypatch, *others):
    """``from_every_process`` as if another process passed ``others``, call by call."""
    answers = list(others)
    monkeypatch.setattr(
        process_data.sharding,
        "from_every_process",
        lambda value: np.stack([np.asarray(value), np.asarray(answers.pop(0))]),
    )


def test_own_source_names_this_process():
    assert process_data.is_per_process("parts/p-{process}.npz")
    assert process_data.own_source("parts/p-{process}.npz") == "parts/p-0.npz"
    assert not process_data.is_per_process("digits")


def test_files_of_different_widths_are_refused_naming_each(monkeypatch):
    _beside(monkeypatch, [63, -1, 10])
    with pytest.raises(DataError, match=r"different numbers of features: 64 in process 0's, "
                                  r"63 in process 1's"):  # fmt: skip
        process_data.agree_on_shape(data.load("digits"))


def test_the_classes_are_those_of_all_files(monkeypatch):
    _beside(monkeypatch, [64, -1, 12])
    assert process_data.agree_on_shape(data.load("digits")).n_classes == 12


def test_every_part_is_cut_to_the_fewest_rows_of_any_process(monkeypatch):
    splits = data.split(data.load("digits"), validation=0.1, test=0.2, seed=0)
    assert [len(p) for p in splits] == [1258, 180, 359]
    _beside(monkeypatch, [1300, 170, 400])
    assert [len(p) for p in process_data.equal_parts(splits)] == [1258, 170, 359]


def test_one_process_standardizes_as_its_own_data_would():
    splits = data.split(data.load("digits"), validation=0.0, test=0.2, seed=0)
    ours, ours_stats = process_data.standardize(splits)
    theirs, theirs_stats = data.standardize(splits)
    np.testing.assert_allclose(ours_stats.mean, theirs_stats.mean, rtol=1e-6)
    for a, b in zip(ours, theirs, strict=True):
        if a is not None:  # float64 sums in another order: float32 rounding apart
            np.testing.assert_allclose(a.x, b.x, rtol=1e-5, atol=1e-6)
