"""Named time grids against their closed forms."""
import math

import pytest
import torch

from bfnsolvers.processes import ContinuousBFN, DiscreteBFN
from bfnsolvers.schedules import SCHEDULES, get_times


@pytest.mark.parametrize("name", SCHEDULES)
def test_grid_endpoints_and_order(name):
    process = DiscreteBFN(0.75 ** 2, 27)
    ts = get_times(name, 7, process, 1e-3)
    assert ts.shape == (8,) and ts.dtype == torch.float64
    assert ts[0].item() == pytest.approx(1e-3, abs=1e-15) and ts[-1].item() == pytest.approx(1.0, abs=1e-15)
    assert bool((ts[1:] > ts[:-1]).all())


def test_grid_spacings():
    process, n, t0 = ContinuousBFN(1e-3), 8, 1e-2
    steps = lambda ts: (ts[1:] - ts[:-1]).tolist()  # noqa: E731
    assert steps(get_times("uniform", n, process, t0)) == pytest.approx([(1 - t0) / n] * n)
    # quadratic: steps shrink linearly towards t = 1; quadratic-start: they grow linearly from t_start
    q, qs = steps(get_times("quadratic", n, process, t0)), steps(get_times("quadratic-start", n, process, t0))
    assert q == pytest.approx([(1 - t0) * (2 * (n - i) - 1) / n ** 2 for i in range(n)])
    assert qs == pytest.approx([(1 - t0) * (2 * i + 1) / n ** 2 for i in range(n)])
    lam = process.lam(get_times("logsnr", n, process, t0))
    assert steps(lam) == pytest.approx([(lam[-1] - lam[0]).item() / n] * n)


def test_grid_bad_input():
    process = DiscreteBFN(1.0, 3)
    with pytest.raises(ValueError, match="schedule must be one of"):
        get_times("cosine", 4, process, 1e-3)
    with pytest.raises(ValueError, match="t_start"):
        get_times("quadratic-start", 4, process, 1.0)
    with pytest.raises(ValueError, match="number of steps"):
        get_times("uniform", 0, process, 0.0)
    assert math.isclose(get_times([0.1, 0.5, 1.0], 0, process, 0.0)[1].item(), 0.5)
