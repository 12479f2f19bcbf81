"""Why ``bfn-solver++3`` uses 2 phi_3 D2: the widely copied DPM-Solver++(3M) form (phi_3 D2) is not
third order. Run with -s to see both measured slopes (docs/conventions.md cites this test)."""
import math

import pytest

import bfnsolvers.solvers.ode as ode
from problems import measured_order


def published_data_term(history, lam_next):
    """``multistep_data_term`` with the published phi_3 D2 (no factor 2) in the third-order step."""
    if len(history) < 3:
        return ours(history, lam_next)
    (l0, m0), (l1, m1), (l2, m2) = history
    h = lam_next - l0
    r0, r1 = (l0 - l1) / h, (l1 - l2) / h
    d1_0, d1_1 = (m0 - m1) / r0, (m1 - m2) / r1
    d1 = d1_0 + r0 / (r0 + r1) * (d1_0 - d1_1)
    d2 = (d1_0 - d1_1) / (r0 + r1)
    phi_1 = math.expm1(-h)
    phi_2 = phi_1 / h + 1
    phi_3 = phi_2 / h - 0.5
    return -phi_1 * m0 + phi_2 * d1 - phi_3 * d2


ours = ode.multistep_data_term


@pytest.mark.parametrize("problem", ["gmm", "markov"])
def test_published_3m_form_is_not_third_order(problem, monkeypatch):
    steps = [64, 128, 256]
    slope_ours, _ = measured_order(problem, "bfn-solver++3", steps)
    monkeypatch.setattr(ode, "multistep_data_term", published_data_term)
    slope_published, _ = measured_order(problem, "bfn-solver++3", steps)
    print(f"\n{problem:7s} bfn-solver++3 slope {slope_ours:.2f} (2 phi_3 D2), {slope_published:.2f} (published phi_3 D2)")
    assert slope_ours > slope_published + 0.2
