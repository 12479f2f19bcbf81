"""Tests for the `kernels` package: Triton kernels (run by the Triton CPU interpreter) vs
their torch references, random-number distribution tests, dispatch and validation.

Interpreter mode: TRITON_INTERPRET=1 must be set before triton is first imported in the
process (triton's own @jit library functions such as tl.randn/tl.max are built at import
time). This module sets it at its very top. If triton was already imported without it
(e.g. by another test module collected earlier), the in-process Triton tests skip and
`test_interpreter_suite_in_subprocess` re-runs them in a fresh interpreter with the
variable set, so the Triton kernels are always exercised. No conftest.py is needed.
"""

from __future__ import annotations

import os
import sys

_TRITON_STALE = "triton" in sys.modules and os.environ.get("TRITON_INTERPRET") != "1"
os.environ["TRITON_INTERPRET"] = "1"

import importlib.util  # noqa: E402
import math  # noqa: E402
import subprocess  # noqa: E402
from pathlib import Path  # noqa: E402

_ROOT = Path(__file__).resolve().parents[1]


import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from scipy import stats  # noqa: E402

from bfnsolvers import kernels  # noqa: E402
from bfnsolvers.kernels import reference as ref  # noqa: E402
from helpers import chisquare_pvalue  # noqa: E402

_HAS_TRITON = importlib.util.find_spec("triton") is not None
needs_interp = pytest.mark.skipif(
    not _HAS_TRITON or _TRITON_STALE,
    reason="triton missing, or imported before TRITON_INTERPRET=1 (covered by the subprocess test)",
)
KS = [2, 27, 256]
TOL = dict(rtol=2e-6, atol=2e-6)  # float32 rounding: a few ulp of exp/erf/sum-order differences


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _nc(t: torch.Tensor) -> torch.Tensor:
    """Same values, non-contiguous layout (every other element of a wider buffer)."""
    out = torch.stack([t, torch.full_like(t, float("nan"))], dim=-1)[..., 0]
    assert not out.is_contiguous()
    return out


def _close(a: torch.Tensor | None, b: torch.Tensor | None) -> None:
    assert a is not None and b is not None
    torch.testing.assert_close(a, b, **TOL)


# ----------------------------------------------------------------------------------------
# Triton kernels vs torch references (same pre-drawn noise)
# ----------------------------------------------------------------------------------------
@needs_interp
@pytest.mark.parametrize("K", KS)
def test_triton_discrete_bfn_step(K: int) -> None:
    g = _gen(K)
    shape = (3, 7, K)  # 21 rows: odd, not a multiple of the row block
    logits, y = 2 * torch.randn(shape, generator=g), torch.randn(shape, generator=g)
    z = torch.randn(shape, generator=g)
    gumbel = ref.gumbel_from_uniform(torch.rand(shape, generator=g))
    want = ref.discrete_bfn_step_ref(logits, y, 0.37, z, gumbel)
    got = kernels.discrete_bfn_step(_nc(logits), _nc(y), 0.37, z=_nc(z), gumbel=gumbel, backend="triton")
    for a, b in zip(got, want):
        _close(a, b)


@needs_interp
@pytest.mark.parametrize("K", KS)
@pytest.mark.parametrize("variant", ["plain", "prev", "prev_noise_theta"])
def test_triton_discrete_solver_step(K: int, variant: str) -> None:
    g = _gen(100 + K)
    shape = (5, 3, K)
    logits, y = 3 * torch.randn(shape, generator=g), 4 * torch.randn(shape, generator=g)
    prev = torch.randn(shape, generator=g) if variant != "plain" else None
    z = torch.randn(shape, generator=g) if variant == "prev_noise_theta" else None
    kw = dict(c_p=-0.4 if prev is not None else 0.0, x0_prev=prev, c_n=0.8 if z is not None else 0.0, z=z)
    theta = variant == "prev_noise_theta"
    want = ref.discrete_solver_step_ref(logits, y, 1.3, 0.6, kw["c_p"], prev, kw["c_n"], z, theta)
    got = kernels.discrete_solver_step(
        logits.transpose(0, 1).contiguous().transpose(0, 1), _nc(y), 1.3, 0.6, return_theta=theta,
        backend="triton", **kw,
    )
    _close(got.y, want[0])
    _close(got.x0, want[1])
    if theta:
        _close(got.theta, want[2])
    else:
        assert got.theta is None


@needs_interp
@pytest.mark.parametrize("gamma,t", [(0.63, None), (0.002, 0.3), (0.5, 1e-7), (0.0, None)])
def test_triton_continuous_update(gamma: float, t: float | None) -> None:
    g = _gen(7)
    shape = (3, 5, 67)  # 1005 elements: not a multiple of the block
    mu, eps, z = (torch.randn(shape, generator=g) for _ in range(3))
    zero = gamma == 0.0 or (t is not None and t < 1e-6)
    want = ref.continuous_update_ref(mu, eps, gamma, 2.5, 0.8, z, zero)
    got = kernels.continuous_update(_nc(mu), _nc(eps), gamma, 2.5, 0.8, t=t, z=_nc(z), backend="triton")
    _close(got, want)


@needs_interp
@pytest.mark.parametrize("variant", ["first_order", "multistep", "sde", "noclip"])
def test_triton_continuous_solver_step(variant: str) -> None:
    g = _gen(11)
    shape = (2, 3, 13, 11)
    mu, eps, prev, z = (torch.randn(shape, generator=g) for _ in range(4))
    c_p = 0.3 if variant in ("multistep", "sde") else 0.0
    c_n = 0.45 if variant == "sde" else 0.0
    lo, hi = (-math.inf, math.inf) if variant == "noclip" else (-1.0, 1.0)
    p, zz = (prev if c_p else None), (z if c_n else None)
    want = ref.continuous_solver_step_ref(mu, eps, 0.4, 0.9, 0.25, c_p, p, c_n, zz, lo, hi)
    got = kernels.continuous_solver_step(
        _nc(mu), _nc(eps), 0.4, 0.9, 0.25, c_p=c_p, x0_prev=p, c_n=c_n, z=zz, lo=lo, hi=hi, backend="triton"
    )
    _close(got[0], want[0])
    _close(got[1], want[1])


@needs_interp
def test_triton_half_precision_io() -> None:
    g = _gen(5)
    mu, eps, z = (torch.randn(257, generator=g).half() for _ in range(3))
    want = ref.continuous_solver_step_ref(mu, eps, 0.6, 0.7, 0.2, 0.0, None, 0.1, z)
    got = kernels.continuous_solver_step(mu, eps, 0.6, 0.7, 0.2, c_n=0.1, z=z, backend="triton")
    assert got[0].dtype == torch.float16
    torch.testing.assert_close(got[0], want[0], rtol=1e-3, atol=1e-3)


def _discretised_inputs(n: int, seed: int) -> tuple[torch.Tensor, ...]:
    """Spread of regimes: sigma_x at both clamps and between, mu_x inside and outside [-1, 1]."""
    g = _gen(seed)
    mu = 0.6 * torch.randn(n, generator=g)
    mu_eps = torch.randn(n, generator=g)
    ln_sigma = 3.0 * torch.randn(n, generator=g) - 2.0
    u = torch.rand(n, generator=g)
    return mu_eps, ln_sigma, mu, u


def _f64_probs(mu_eps, ln_sigma, mu, gamma, K):
    """Direct float64 p_k, shape (n, K), at the float32-rounded (mu_x, sigma_x): the kernels
    compute those in float32 too, and with sigma_x = 1e-3 the mean's slope d mean / d mu_x
    is ~400, so parameter rounding alone would hide the summation accuracy tested here."""
    mu_x, sig = ref.gaussian_params(mu_eps.float(), ln_sigma.float(), mu.float(), gamma, False)
    return ref.discretised_probs_ref(mu_x.double(), sig.double(), K)


def _bin_index(centre: torch.Tensor, K: int) -> torch.Tensor:
    return torch.round((centre.double() + 1.0) * K / 2 - 0.5).long()


def _check_sample_mode(out: ref.DiscretisedOut, want: ref.DiscretisedOut, p64: torch.Tensor, u: torch.Tensor) -> None:
    """Exact agreement except where float32 rounding decides: a sampled bin must have u in
    its float64 CDF interval up to 1e-5; a mode bin must be maximal up to 1e-5."""
    K = p64.shape[-1]
    assert out.sample is not None and want.sample is not None and out.mode is not None and want.mode is not None
    assert (out.sample != want.sample).float().mean() < 0.01
    assert (out.mode != want.mode).float().mean() < 0.01
    cdf = torch.cat([torch.zeros_like(p64[:, :1]), p64.cumsum(-1)], dim=-1).clamp(max=1.0)
    i = _bin_index(out.sample, K)
    lo, hi = cdf.gather(1, i[:, None])[:, 0], cdf.gather(1, i[:, None] + 1)[:, 0]
    assert bool(((u.double() >= lo - 1e-5) & (u.double() <= hi + 1e-5)).all())
    m = _bin_index(out.mode, K)
    assert bool((p64.gather(1, m[:, None])[:, 0] >= p64.max(-1).values - 1e-5).all())


@needs_interp
@pytest.mark.parametrize("K", KS)
def test_triton_discretised_output(K: int) -> None:
    n, gamma = 999, 0.7
    mu_eps, ln_sigma, mu, u = _discretised_inputs(n, K)
    want = ref.discretised_output_ref(mu_eps, ln_sigma, mu, gamma, K, u=u, want_mode=True)
    got = kernels.discretised_output(
        _nc(mu_eps), _nc(ln_sigma), _nc(mu), gamma, K, u=_nc(u), mode=True, backend="triton"
    )
    _close(got.mean, want.mean)
    p64 = _f64_probs(mu_eps, ln_sigma, mu, gamma, K)
    mean64 = (p64 * ref.bin_centres(K, torch.float64, p64.device)).sum(-1)
    torch.testing.assert_close(got.mean.double(), mean64, rtol=0, atol=2e-6)
    _check_sample_mode(got, want, p64, u)


@needs_interp
def test_triton_discretised_zero_time_and_shape() -> None:
    mu_eps, ln_sigma, mu, u = (t.reshape(3, 37) for t in _discretised_inputs(111, 3))
    want = ref.discretised_output_ref(mu_eps, ln_sigma, mu, 0.3, 16, u=u, want_mode=True, zero=True)
    got = kernels.discretised_output(mu_eps, ln_sigma, mu, 0.3, 16, u=u, mode=True, t=0.0, backend="triton")
    assert got.mean.shape == (3, 37)
    _close(got.mean, want.mean)
    _close(got.mode, want.mode)


def _gaussian_params(n: int, seed: int, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, ...]:
    """(mu_x, sigma_x, u): mu_x inside and far outside [-1, 1] (clipped end bins), sigma_x at both clamps
    (1e-3, 10) and between, so the erf windows range from 1 edge to all K - 1."""
    g = _gen(seed)
    mu_x = 0.8 * torch.randn(n, generator=g, dtype=dtype)
    mu_x[: n // 10] *= 6.0
    sigma_x = torch.exp(3.0 * torch.randn(n, generator=g, dtype=dtype) - 2.0).clamp(1e-3, 10.0)
    sigma_x[n // 10: n // 5] = 1e-3
    sigma_x[n // 5: n // 4] = 10.0
    return mu_x, sigma_x, torch.rand(n, generator=g, dtype=dtype)


def _dense64(mu_x: torch.Tensor, sigma_x: torch.Tensor, K: int) -> torch.Tensor:
    """p_k in float64 by scipy.stats.norm (independent of the torch code): Phi at the edges, differenced."""
    e = -1.0 + 2.0 * np.arange(1, K) / K
    cdf = stats.norm.cdf((e[None, :] - mu_x.double().numpy()[:, None]) / sigma_x.double().numpy()[:, None])
    n = cdf.shape[0]
    return torch.from_numpy(np.diff(np.concatenate([np.zeros((n, 1)), cdf, np.ones((n, 1))], 1), axis=1))


def _check_gaussian_out(out: ref.DiscretisedOut, mu_x, sigma_x, u, K: int, mean_tol: float, cdf_tol: float) -> None:
    """mean vs the float64 scipy formula; sample: u lies in its bin's float64 CDF interval up to cdf_tol;
    mode: a bin of maximal float64 mass up to relative cdf_tol."""
    p64 = _dense64(mu_x, sigma_x, K)
    c64 = ref.bin_centres(K, torch.float64, torch.device("cpu"))
    assert out.mean is not None and out.sample is not None and out.mode is not None
    torch.testing.assert_close(out.mean.double(), (p64 * c64).sum(-1), rtol=0, atol=mean_tol)
    cdf = torch.cat([torch.zeros_like(p64[:, :1]), p64.cumsum(-1)], dim=-1)
    i = _bin_index(out.sample, K)
    lo, hi = cdf.gather(1, i[:, None])[:, 0], cdf.gather(1, i[:, None] + 1)[:, 0]
    assert bool(((u.double() >= lo - cdf_tol) & (u.double() <= hi + cdf_tol)).all())
    m = _bin_index(out.mode, K)
    best = p64.max(-1).values
    assert bool((p64.gather(1, m[:, None])[:, 0] >= best * (1 - cdf_tol)).all())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_erf_saturation(dtype: torch.dtype) -> None:
    """The windowed mean skips edges beyond ref.ERF_SATURATION: erf must be exactly +-1 there."""
    x = torch.linspace(ref.ERF_SATURATION[dtype], 60.0, 200001, dtype=dtype)
    assert bool((torch.erf(x) == 1).all()) and bool((torch.erf(-x) == -1).all())
    assert bool((torch.erf(torch.tensor([3.5, 5.5], dtype=dtype)) < 1).any())  # not saturated everywhere


@pytest.mark.parametrize("K", [2, 3, 27, 256, 1000])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_chunked_discretised_gaussian(K: int, dtype: torch.dtype) -> None:
    """Torch path vs the float64 scipy formula (1e-12 float64 / 2e-6 float32) and vs the materialising
    reference with the same u: identical sampled bins."""
    mu_x, sigma_x, u = _gaussian_params(1500, K, dtype)
    got = ref.discretised_gaussian_chunked(mu_x, sigma_x, K, u, want_mode=True, max_chunk_elems=3000)
    want = ref.discretised_gaussian_ref(mu_x, sigma_x, K, u, want_mode=True)
    f64 = dtype == torch.float64
    _check_gaussian_out(got, mu_x, sigma_x, u, K, 1e-12 if f64 else 2e-6, 1e-12 if f64 else 1e-6)
    assert got.mean is not None and got.sample is not None and want.sample is not None
    # float32: each is within 2e-6 of float64 (above); with each other within the sum of both roundings
    torch.testing.assert_close(got.mean, want.mean, rtol=0, atol=1e-13 if f64 else 3e-6)
    assert int((got.sample != want.sample).sum()) == 0
    assert got.mean.dtype == got.sample.dtype == dtype


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_discretised_sample_quantile_path_is_bisection(dtype: torch.dtype) -> None:
    """The verified quantile guess gives exactly the binary-lifting bin (u = 0, tails, both clamps, K not a
    power of two); and the binary lifting is the dense count #{j: F(e_j) <= u}."""
    for K in (2, 3, 27, 256, 1000):
        mu_x, sigma_x, u = _gaussian_params(40000, K, dtype)
        u[:50] = 0.0
        u[50:100] = torch.nextafter(torch.ones((), dtype=dtype), torch.zeros((), dtype=dtype))
        w = 1.0 / (ref.SQRT2 * sigma_x)
        lifted = ref._bisect_bins(mu_x, w, u, K)
        got = ref.discretised_gaussian_sample(mu_x, sigma_x, u, K)
        torch.testing.assert_close(got, (2.0 * lifted + 1.0) / K - 1.0, rtol=0, atol=0)
        j = torch.arange(1, K, dtype=dtype)
        dense = (ref.edge_cdf(j, mu_x[:2000, None], w[:2000, None], K) <= u[:2000, None]).sum(-1)
        assert torch.equal(lifted[:2000].long(), dense)


@pytest.mark.parametrize("K", [64, 256, 1000])
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 5e-7), (torch.float64, 1e-14)])
def test_mean_wide_closed_form(K: int, dtype: torch.dtype, tol: float) -> None:
    """The Euler-Maclaurin mean (``ref.mean_wide``) vs the float64 scipy bin sum, from its threshold
    (``ref.EM_WIDE`` bins) to the process's sigma_x clamp of 10, for mu_x inside, on and far outside [-1, 1]
    (float32: within its rounding, ~1e-7; float64: to 1e-14); odd in mu_x exactly."""
    bins, terms = ref.EM_WIDE[dtype]
    h = 2.0 / K
    sig = torch.exp(torch.linspace(math.log(bins * h), math.log(10.0), 25, dtype=torch.float64))
    edges = torch.tensor([0.0, 1.0, 1.0 - h / 2, 1.0 + h / 2, 1.0 - 3 * h, 2.0, 30.0], dtype=torch.float64)
    mus = torch.cat([torch.linspace(-3.0, 3.0, 301, dtype=torch.float64), edges, -edges])
    mu_x, sigma_x = (v.reshape(-1).to(dtype) for v in torch.meshgrid(mus, sig, indexing="ij"))
    got = ref.mean_wide(mu_x, sigma_x, K, terms)
    c64 = ref.bin_centres(K, torch.float64, torch.device("cpu"))
    want = (_dense64(mu_x, sigma_x, K) * c64).sum(-1)
    torch.testing.assert_close(got.double(), want, rtol=0, atol=tol)
    assert torch.equal(ref.mean_wide(-mu_x, sigma_x, K, terms), -got)
    # the threshold matters: well below it the expansion is far off (the windowed sum takes over there)
    narrow = torch.full_like(mu_x, 0.35 * h)
    off = (ref.mean_wide(mu_x, narrow, K, terms).double() - (_dense64(mu_x, narrow, K) * c64).sum(-1)).abs().max()
    assert float(off) > 1e-6
    # the far end left out where the caller may (sigma_x <= 1 / (sqrt2 ERF_SATURATION) for all): same accuracy;
    # and it is a real approximation: far off where sigma_x is wider
    sat = 1.0 / (math.sqrt(2) * ref.ERF_SATURATION[dtype])
    keep = sigma_x <= sat
    got = ref.mean_wide(mu_x[keep], sigma_x[keep], K, terms, far_saturated=True)
    torch.testing.assert_close(got.double(), want[keep], rtol=0, atol=tol)
    one = sigma_x >= ref.EM_ONE_TERM[dtype] * h                  # one term enough from there on
    torch.testing.assert_close(ref.mean_wide(mu_x[one], sigma_x[one], K, 1).double(), want[one], rtol=0, atol=tol)
    wide = ~keep & (mu_x.abs() < 1)
    off = (ref.mean_wide(mu_x[wide], sigma_x[wide], K, terms, far_saturated=True).double() - want[wide]).abs().max()
    assert float(off) > 1e-3


def test_mean_wide_chunked_is_whole() -> None:
    """Above two ``WIDE_CHUNK`` chunks the closed form runs chunk by chunk: the same numbers as at once."""
    n = 2 * ref.WIDE_CHUNK + 1234
    mu_x = 0.6 * torch.randn(n, generator=torch.Generator().manual_seed(0))
    for sig, far in ((0.1, True), (0.3, False)):
        sigma_x = torch.full((n,), sig)
        assert torch.equal(ref.discretised_gaussian_mean(mu_x, sigma_x, 256), ref.mean_wide(mu_x, sigma_x, 256, 1, far))


@pytest.mark.parametrize("K", [27, 256, 1000])
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 2e-7), (torch.float64, 1e-14)])
def test_mean_ripple_closed_form(K: int, dtype: torch.dtype, tol: float) -> None:
    """The lattice (Fourier) form of the mean (``ref.mean_ripple``) vs the float64 scipy bin sum where it applies:
    sigma_x from ``RIPPLE_MIN_BINS`` to 1.5 bins, mu_x at least ERF_SATURATION sqrt2 sigma_x inside both ends."""
    h = 2.0 / K
    sig = torch.linspace(ref.RIPPLE_MIN_BINS[dtype] * h, 1.5 * h, 9, dtype=torch.float64)
    mus = torch.linspace(-1.0, 1.0, 2001, dtype=torch.float64)
    mu_x, sigma_x = (v.reshape(-1) for v in torch.meshgrid(mus, sig, indexing="ij"))
    inside = mu_x.abs() + ref.ERF_SATURATION[dtype] * math.sqrt(2) * sigma_x <= 1
    mu_x, sigma_x = mu_x[inside].to(dtype), sigma_x[inside].to(dtype)
    c64 = ref.bin_centres(K, torch.float64, torch.device("cpu"))
    got = ref.mean_ripple(mu_x, sigma_x, K)
    torch.testing.assert_close(got.double(), (_dense64(mu_x, sigma_x, K) * c64).sum(-1), rtol=0, atol=tol)
    # the condition matters: at the ends (the end bins absorb the tails) the lattice form is far off
    edge = torch.full((50,), 1.0 - h / 2, dtype=dtype)
    narrow = torch.full_like(edge, 0.5 * h)
    off = (ref.mean_ripple(edge, narrow, K).double() - (_dense64(edge, narrow, K) * c64).sum(-1)).abs().max()
    assert float(off) > 1e-5


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_mean_paths_split_per_element(dtype: torch.dtype) -> None:
    """``discretised_gaussian_mean`` takes, per element, the closed form where sigma_x >= EM_WIDE bins, the
    lattice form where sigma_x >= RIPPLE_MIN_BINS and mu_x is far from both ends, the windowed sum elsewhere
    and for K < EM_MIN_K (no closed form there): inputs of one path each and mixed ones give each element the
    value it gets alone and match the float64 bin sum."""
    K = 256
    h = 2.0 / K
    bins, terms = ref.EM_WIDE[dtype]
    mu_x = torch.linspace(-1.2, 1.2, 600, dtype=dtype)
    wide = torch.full_like(mu_x, bins * h)
    mid = torch.full_like(mu_x, bins * h * (1 - 1e-3))          # lattice form inside, windowed near the ends
    narrow = torch.full_like(mu_x, ref.RIPPLE_MIN_BINS[dtype] * h * 0.9)   # windowed everywhere
    c64 = ref.bin_centres(K, torch.float64, torch.device("cpu"))
    tol = 5e-7 if dtype == torch.float32 else 1e-13
    pick = torch.arange(600) % 3
    mixed = torch.where(pick == 0, wide, torch.where(pick == 1, mid, narrow))
    for sigma_x in (wide, mid, narrow, mixed):
        got = ref.discretised_gaussian_mean(mu_x, sigma_x, K)
        torch.testing.assert_close(got.double(), (_dense64(mu_x, sigma_x, K) * c64).sum(-1), rtol=0, atol=tol)
    alone = torch.where(pick == 0, ref.discretised_gaussian_mean(mu_x, wide, K),
                        torch.where(pick == 1, ref.discretised_gaussian_mean(mu_x, mid, K),
                                    ref.discretised_gaussian_mean(mu_x, narrow, K)))
    assert torch.equal(ref.discretised_gaussian_mean(mu_x, mixed, K), alone)
    inside = mu_x.abs() + ref.ERF_SATURATION[dtype] * math.sqrt(2) * mid <= 1
    assert torch.equal(ref.discretised_gaussian_mean(mu_x, mid, K)[inside], ref.mean_ripple(mu_x, mid, K)[inside])
    assert 0 < int(inside.sum()) < 600
    small_k = torch.full_like(mu_x, 0.5)
    torch.testing.assert_close(ref.discretised_gaussian_mean(mu_x, small_k, 27).double(),
                               (_dense64(mu_x, small_k, 27) * ref.bin_centres(27, torch.float64)).sum(-1),
                               rtol=0, atol=tol)


def test_chunked_discretised_gaussian_half_and_fields() -> None:
    mu_x, sigma_x, u = _gaussian_params(300, 1)
    full = ref.discretised_gaussian_chunked(mu_x, sigma_x, 16, u, want_mode=True)
    out = kernels.discretised_gaussian(mu_x.half(), sigma_x.half(), 16, mean=False, mode=True, backend="torch")
    assert out.mean is None and out.sample is None and out.mode is not None and out.mode.dtype == torch.float16
    only = kernels.discretised_gaussian(mu_x, sigma_x, 16, mean=False, u=u)
    assert only.mean is None and only.mode is None
    torch.testing.assert_close(only.sample, full.sample, rtol=0, atol=0)


@needs_interp
@pytest.mark.parametrize("K", KS)
def test_triton_discretised_gaussian(K: int) -> None:
    """Fused kernel from (mu_x, sigma_x) vs the torch path and the float64 scipy formula."""
    mu_x, sigma_x, u = _gaussian_params(999, 10 + K)
    got = kernels.discretised_gaussian(_nc(mu_x), _nc(sigma_x), K, u=_nc(u), mode=True, backend="triton")
    want = ref.discretised_gaussian_chunked(mu_x, sigma_x, K, u, want_mode=True)
    _close(got.mean, want.mean)
    _check_gaussian_out(got, mu_x, sigma_x, u, K, 2e-6, 1e-6)
    assert got.sample is not None and want.sample is not None
    assert float((got.sample != want.sample).float().mean()) < 0.005
    none = kernels.discretised_gaussian(mu_x, sigma_x, K, mean=False, mode=True, backend="triton")
    assert none.mean is None and none.sample is None
    _close(none.mode, want.mode)


@pytest.mark.parametrize("backend", [pytest.param("triton", marks=needs_interp), "torch"])
def test_triton_discretised_gaussian_sample_distribution(backend: str) -> None:
    """Draws (Philox or torch.rand) have the dense probabilities: chi-square, and a one-bin shift fails it."""
    n, K = 1 << 14, 12
    mu_x, sigma_x = torch.full((n,), 0.23), torch.full((n,), 0.31)
    out = kernels.discretised_gaussian(mu_x, sigma_x, K, mean=False, sample=True, seed=11, generator=_gen(11),
                                       backend=backend)
    assert out.sample is not None
    probs = _dense64(mu_x[:1], sigma_x[:1], K)[0]
    idx = _bin_index(out.sample, K)
    assert _chi2_pvalue(idx, probs) > 1e-4
    assert _chi2_pvalue((idx + 1).clamp(max=K - 1), probs) < 1e-4


@needs_interp
def test_triton_discretised_distribution_dispatch(monkeypatch: pytest.MonkeyPatch) -> None:
    """DiscretisedGaussian's mean / mode / sample run the fused kernel when the backend is triton."""
    from bfnsolvers.distributions import DiscretisedGaussian

    mu_x, sigma_x, _ = _gaussian_params(500, 4)
    calls = []
    original = kernels.dispatch._triton_module().discretised_gaussian
    monkeypatch.setattr(kernels.dispatch._triton_module(), "discretised_gaussian", lambda *a: calls.append(1) or original(*a))
    monkeypatch.setenv(kernels.ENV_VAR, "triton")
    fused = DiscretisedGaussian(mu_x, sigma_x, 64)
    mean, mode, smp = fused.mean, fused.mode, fused.sample(_gen(0))
    assert len(calls) == 3
    monkeypatch.setenv(kernels.ENV_VAR, "torch")
    plain = DiscretisedGaussian(mu_x, sigma_x, 64)
    _close(mean, plain.mean)
    _close(mode, plain.mode)
    assert smp.shape == mu_x.shape and len(calls) == 3


# ----------------------------------------------------------------------------------------
# the kernels' own random draws
# ----------------------------------------------------------------------------------------
def _assert_standard_normal(z: torch.Tensor) -> None:
    """Moments of n iid N(0,1) draws, each within 5 standard errors:
    se(mean) = 1/sqrt(n), se(E z^2) = sqrt(2/n), se(E z^3) = sqrt(15/n), se(E z^4) = sqrt(96/n)."""
    z = z.double().reshape(-1)
    n = z.numel()
    for k, target, var in [(1, 0.0, 1.0), (2, 1.0, 2.0), (3, 0.0, 15.0), (4, 3.0, 96.0)]:
        m = (z**k).mean().item()
        assert abs(m - target) < 5 * math.sqrt(var / n), (k, m)
    lag = (z[1:] * z[:-1]).mean().item()  # neighbouring Philox counters uncorrelated
    assert abs(lag) < 5 / math.sqrt(n - 1)


def _chi2_pvalue(idx: torch.Tensor, probs: torch.Tensor) -> float:
    counts = torch.bincount(idx.reshape(-1), minlength=probs.numel()).double()
    return chisquare_pvalue(counts, probs.double() * idx.numel())


def _discrete_draws(backend: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """alpha so large that argmax(y') is the drawn class; returns (class ids, z, probs)."""
    K, R, alpha = 6, 6000, 1e4
    logits = torch.tensor([1.0, -0.5, 0.3, 2.0, -1.5, 0.0]).expand(R, K)
    y = torch.zeros(R, K)
    y_new, _ = kernels.discrete_bfn_step(logits, y, alpha, seed=1234, offset=0, generator=_gen(1234), backend=backend)
    k = torch.argmax(y_new, dim=-1)
    onehot = torch.nn.functional.one_hot(k, K).float()
    z = (y_new.double() - alpha * (K * onehot.double() - 1.0)) / math.sqrt(alpha * K)
    return k, z, torch.softmax(logits[0].double(), -1)


@pytest.mark.parametrize("backend", [pytest.param("triton", marks=needs_interp), "torch"])
def test_triton_discrete_draws_distribution(backend: str) -> None:
    k, z, probs = _discrete_draws(backend)
    assert _chi2_pvalue(k, probs) > 1e-4
    _assert_standard_normal(z)
    # noise of the drawn class (Philox word 0/1) vs its Gumbel uniform (word 2): independent
    zk = z.gather(1, k[:, None])[:, 0]
    assert abs(zk.mean().item()) < 5 / math.sqrt(zk.numel())


@needs_interp
def test_triton_normal_noise_and_counters() -> None:
    n = 1 << 14
    zeros = torch.zeros(n)
    z, _ = kernels.continuous_solver_step(zeros, zeros, 0.5, 0.0, 0.0, c_n=1.0, seed=99, offset=0, backend="triton")
    _assert_standard_normal(z)
    # counter = offset + index: a shifted launch reproduces the tail, a new offset is fresh
    tail, _ = kernels.continuous_solver_step(zeros[: n // 2], zeros[: n // 2], 0.5, 0.0, 0.0, c_n=1.0,
                                             seed=99, offset=n // 2, backend="triton")
    torch.testing.assert_close(tail, z[n // 2:], rtol=0, atol=0)
    again, _ = kernels.continuous_solver_step(zeros, zeros, 0.5, 0.0, 0.0, c_n=1.0, seed=99, offset=n,
                                              backend="triton")
    assert abs(torch.corrcoef(torch.stack([z, again]))[0, 1].item()) < 5 / math.sqrt(n)
    # continuous_update draws the same stream: mu' = sqrt(alpha) z / (rho + alpha) at mu = eps = 0
    upd = kernels.continuous_update(zeros, zeros, 0.5, 1.0, 1.0, seed=99, offset=0, backend="triton")
    torch.testing.assert_close(upd, 0.5 * z, **TOL)


@pytest.mark.parametrize("backend", [pytest.param("triton", marks=needs_interp), "torch"])
def test_triton_discretised_sample_distribution(backend: str) -> None:
    n, K, gamma = 1 << 13, 8, 0.5  # s = 1: mu_x = mu - mu_eps, sigma_x = exp(ln_sigma)
    mu = torch.full((n,), 0.1)
    mu_eps = torch.full((n,), -0.1)
    ln_sigma = torch.full((n,), math.log(0.4))
    out = kernels.discretised_output(mu_eps, ln_sigma, mu, gamma, K, sample=True, seed=7,
                                     generator=_gen(7), backend=backend)
    assert out.sample is not None
    probs = _f64_probs(mu_eps[:1], ln_sigma[:1], mu[:1], gamma, K)[0]
    assert _chi2_pvalue(_bin_index(out.sample, K), probs) > 1e-4


# ----------------------------------------------------------------------------------------
# torch paths (no Triton needed)
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("K", KS)
def test_chunked_discretised_matches_reference(K: int) -> None:
    mu_eps, ln_sigma, mu, u = _discretised_inputs(777, 50 + K)
    want = ref.discretised_output_ref(mu_eps, ln_sigma, mu, 0.45, K, u=u, want_mode=True)
    got = ref.discretised_output_chunked(mu_eps, ln_sigma, mu, 0.45, K, u=u, want_mode=True, max_chunk_elems=5000)
    _close(got.mean, want.mean)
    p64 = _f64_probs(mu_eps, ln_sigma, mu, 0.45, K)
    torch.testing.assert_close(
        got.mean.double(), (p64 * ref.bin_centres(K, torch.float64, p64.device)).sum(-1), rtol=0, atol=2e-6
    )
    _check_sample_mode(got, want, p64, u)


def test_torch_backend_is_reference_with_given_noise() -> None:
    g = _gen(3)
    logits, y, z = (torch.randn(4, 27, generator=g) for _ in range(3))
    gum = ref.gumbel_from_uniform(torch.rand(4, 27, generator=g))
    got = kernels.discrete_bfn_step(logits, y, 0.2, z=z, gumbel=gum, backend="torch")
    want = ref.discrete_bfn_step_ref(logits, y, 0.2, z, gum)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    a = kernels.discrete_bfn_step(logits, y, 0.2, generator=_gen(9), backend="torch")
    b = kernels.discrete_bfn_step(logits, y, 0.2, generator=_gen(9), backend="torch")
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_float64_torch_path() -> None:
    mu, eps = torch.randn(10, dtype=torch.float64), torch.randn(10, dtype=torch.float64)
    out, x0 = kernels.continuous_solver_step(mu, eps, 0.5, 1.0, 0.5, backend="torch")
    assert out.dtype == torch.float64
    torch.testing.assert_close(x0, (mu / 0.5 - eps).clamp(-1, 1))


def test_empty_inputs() -> None:
    e = torch.empty(0, 5)
    y, th = kernels.discrete_bfn_step(e, e, 0.1)
    assert y.shape == th.shape == (0, 5)
    out = kernels.discretised_output(e, e, e, 0.5, 4, sample=True, mode=True)
    assert out.mean.shape == (0, 5) and out.sample is not None and out.mode is not None


# ----------------------------------------------------------------------------------------
# dispatch and validation
# ----------------------------------------------------------------------------------------
def test_backend_selection(monkeypatch: pytest.MonkeyPatch) -> None:
    x = torch.zeros(3)
    monkeypatch.delenv(kernels.ENV_VAR, raising=False)
    assert kernels.resolve_backend(x) == "torch"  # auto on CPU
    monkeypatch.setenv(kernels.ENV_VAR, "torch")
    assert kernels.resolve_backend(x, None) == "torch"
    monkeypatch.setenv(kernels.ENV_VAR, "cuda")
    with pytest.raises(ValueError, match=kernels.ENV_VAR):
        kernels.resolve_backend(x)
    with pytest.raises(ValueError, match="backend"):
        kernels.resolve_backend(x, "fast")
    if _HAS_TRITON:
        monkeypatch.setenv("TRITON_INTERPRET", "0")
        with pytest.raises(RuntimeError, match="TRITON_INTERPRET"):
            kernels.resolve_backend(x, "triton")
        monkeypatch.setenv("TRITON_INTERPRET", "1")
        assert kernels.resolve_backend(x, "triton") == "triton"
        with pytest.warns(UserWarning):
            assert kernels.resolve_backend(x.double(), "triton") == "torch"


def test_env_forces_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(kernels.ENV_VAR, "torch")
    mu = torch.randn(5)
    out = kernels.continuous_update(mu, mu, 0.5, 1.0, 1.0, z=mu)
    torch.testing.assert_close(out, ref.continuous_update_ref(mu, mu, 0.5, 1.0, 1.0, mu), rtol=0, atol=0)


@pytest.mark.parametrize(
    "call,name",
    [
        (lambda: kernels.discrete_bfn_step(torch.zeros(2, 3), torch.zeros(2, 4), 0.1), "y"),
        (lambda: kernels.discrete_bfn_step(torch.zeros(2, 1), torch.zeros(2, 1), 0.1), "logits"),
        (lambda: kernels.discrete_bfn_step(torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 3), 0.1), "logits"),
        (lambda: kernels.discrete_bfn_step(torch.zeros(2, 3), torch.zeros(2, 3), 0.1, z=torch.zeros(2, 3)), "gumbel"),
        (lambda: kernels.discrete_solver_step(torch.zeros(2, 3), torch.zeros(2, 3), 1.0, 1.0, c_p=0.5), "x0_prev"),
        (lambda: kernels.discrete_solver_step(torch.zeros(2, 3), torch.zeros(2, 3), 1.0, 1.0,
                                              x0_prev=torch.zeros(3, 2)), "x0_prev"),
        (lambda: kernels.continuous_update(torch.zeros(4), torch.zeros(5), 0.5, 1.0, 1.0), "eps_hat"),
        (lambda: kernels.continuous_update(torch.zeros(4), torch.zeros(4), 1.5, 1.0, 1.0), "gamma"),
        (lambda: kernels.continuous_update(torch.zeros(4), torch.zeros(4), 0.5, 1.0, 0.0), "alpha"),
        (lambda: kernels.continuous_solver_step(torch.zeros(4), torch.zeros(4), 0.5, 1.0, 1.0,
                                                z=torch.zeros(4, 1), c_n=1.0), "z"),
        (lambda: kernels.discretised_output(torch.zeros(4), torch.zeros(4), torch.zeros(4), 0.5, 1), "num_bins"),
        (lambda: kernels.discretised_output(torch.zeros(4), torch.zeros(3), torch.zeros(4), 0.5, 8), "ln_sigma_eps"),
        (lambda: kernels.discretised_output(torch.zeros(4), torch.zeros(4), torch.zeros(4), 0.5, 8,
                                            u=torch.zeros(4, dtype=torch.int32)), "u"),
    ],
)
def test_validation_names_argument(call, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        call()


# ----------------------------------------------------------------------------------------
# fallback: Triton tests in a fresh interpreter when triton was imported too early
# ----------------------------------------------------------------------------------------
@pytest.mark.skipif(not (_HAS_TRITON and _TRITON_STALE), reason="Triton tests already ran in this process")
def test_interpreter_suite_in_subprocess() -> None:
    env = dict(os.environ, TRITON_INTERPRET="1")
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__, "-k", "test_triton_"]
    res = subprocess.run(cmd, cwd=_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]


@needs_interp
def test_bfn_sampler_runs_the_fused_discrete_step(monkeypatch):
    """sample(..., solver="bfn") on discrete data calls kernels.discrete_bfn_step once per step on the
    Triton backend, and its final states y agree in distribution with the torch path's: the mean over
    tokens of y at the sampled class and of the spread max(y) - mean(y), within 5 standard errors."""
    from bfnsolvers import DiscreteBFN
    from bfnsolvers.oracles import MarkovChainOracle
    from bfnsolvers.sampling import sample

    process = DiscreteBFN(2.0, 4)
    trans = torch.rand(4, 4, generator=_gen(0)) + 0.2
    oracle = MarkovChainOracle(process, torch.ones(4), trans, 5)
    calls = []
    original = kernels.dispatch._triton_module().discrete_bfn_step
    monkeypatch.setattr(kernels.dispatch._triton_module(), "discrete_bfn_step", lambda *a: calls.append(1) or original(*a))

    def statistics(backend: str) -> torch.Tensor:
        monkeypatch.setenv(kernels.ENV_VAR, backend)
        x, info = sample(oracle, process, "bfn", nfe=20, shape=(3000, 5), generator=_gen(1), return_trajectory=True)
        y = info.trajectory[-1]
        return torch.stack([y.gather(-1, x.unsqueeze(-1)).squeeze(-1), y.amax(-1) - y.mean(-1)]).flatten(1)

    fused, plain = statistics("triton"), statistics("torch")
    assert len(calls) == 19                                        # 19 update steps, then the final call
    se = (fused.var(1) / fused.shape[1] + plain.var(1) / plain.shape[1]).sqrt()
    assert ((fused.mean(1) - plain.mean(1)).abs() < 5 * se).all(), (fused.mean(1), plain.mean(1), se)
