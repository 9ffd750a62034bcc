"""pytest helpers: gradient checks that fail with the whole report as the message.

Each passes ``**options`` on to its check: ``options=CheckOptions(...)`` and/or
``CheckOptions`` fields as keywords (``mode="directional"``).
"""

from __future__ import annotations

from funcbp import gradcheck


def _raise_unless_ok(report: gradcheck.GradientReport) -> gradcheck.GradientReport:
    if not report.ok:
        raise AssertionError(f"\n{report}")
    return report


def assert_gradients_match(net, params, x, y, **options) -> gradcheck.GradientReport:
    """``check_gradients`` that raises ``AssertionError`` (the report) unless it passes."""
    return _raise_unless_ok(gradcheck.check_gradients(net, params, x, y, **options))


def assert_grad_matches(f, grad_fn, *args, **options) -> gradcheck.GradientReport:
    """``check_grad`` that raises ``AssertionError`` (the report) unless it passes."""
    return _raise_unless_ok(gradcheck.check_grad(f, grad_fn, *args, **options))


def assert_vjp_matches(f, vjp_fn, *primals, **options) -> gradcheck.GradientReport:
    """``check_vjp`` that raises ``AssertionError`` (the report) unless it passes."""
    return _raise_unless_ok(gradcheck.check_vjp(f, vjp_fn, *primals, **options))
