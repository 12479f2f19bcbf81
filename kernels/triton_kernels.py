"""Triton kernels for the per-step hot loop (imported lazily by `bfnsolvers.kernels.dispatch`).

All arithmetic is float32; loads accept any float dtype and stores cast to the output
dtype. Launchers expect validated, contiguous inputs (see `bfnsolvers.kernels.dispatch`).

Random numbers (when no pre-drawn noise is passed): Philox-4x32 keyed by `seed`, one
counter per element, counter = offset + flat element index (row-major over the output).
Each counter gives four 32-bit words: words 0 and 1 -> z ~ N(0, 1) by Box-Muller
(bit-identical to ``tl.randn(seed, counter)``), word 2 -> u ~ U[0, 1) (Gumbel noise or
the inverse-CDF uniform). A launch consumes counters [offset, offset + numel); advance
`offset` by numel between calls with the same seed to get fresh noise.

Importing this module imports triton: set TRITON_INTERPRET=1 *before* triton is first
imported anywhere in the process to run these kernels on CPU tensors.

Over 400 lines on purpose: the six kernels and their launchers share the Philox, softmax and erf helpers at the top.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import triton
import triton.language as tl

#: Largest class count handled with one row per register tile.
MAX_BLOCK_K = 16384


# ----------------------------------------------------------------------------------------
# device helpers
# ----------------------------------------------------------------------------------------
@triton.jit
def _normal_and_uniform(seed, counter):
    """z ~ N(0,1) from Philox words 0, 1 (Box-Muller) and u ~ U[0,1) from word 2."""
    i1, i2, i3, _ = tl.randint4x(seed, counter)
    u1 = tl.uint_to_uniform_float(i1)
    u2 = tl.uint_to_uniform_float(i2)
    z, _ = tl.pair_uniform_to_normal(u1, u2)
    return z, tl.uint_to_uniform_float(i3)


@triton.jit
def _normal(seed, counter):
    """z ~ N(0,1) from Philox words 0, 1 (same as tl.randn)."""
    i1, i2, _, _ = tl.randint4x(seed, counter)
    z, _ = tl.pair_uniform_to_normal(tl.uint_to_uniform_float(i1), tl.uint_to_uniform_float(i2))
    return z


@triton.jit
def _uniform(seed, counter):
    """u ~ U[0,1) from Philox word 2."""
    _, _, i3, _ = tl.randint4x(seed, counter)
    return tl.uint_to_uniform_float(i3)


@triton.jit
def _softmax_rows(x, mask):
    """Row softmax of a [BLOCK_R, BLOCK_K] tile; masked lanes get 0 (no NaN on empty rows)."""
    x = tl.where(mask, x, float("-inf"))
    m = tl.max(x, axis=1)
    m = tl.where(m == float("-inf"), 0.0, m)
    e = tl.exp(x - m[:, None])
    s = tl.sum(e, axis=1)
    s = tl.where(s > 0.0, s, 1.0)
    return e / s[:, None]


@triton.jit
def _ndtr(x):
    """Standard normal CDF."""
    return 0.5 + 0.5 * tl.erf(x * 0.7071067811865476)


@triton.jit
def _ndtri(p):
    """Inverse standard normal CDF (Acklam's rational approximation, rel. error ~1e-9)."""
    q = p - 0.5
    r = q * q
    num = (((((-3.969683028665376e01 * r + 2.209460984245205e02) * r - 2.759285104469687e02) * r
             + 1.383577518672690e02) * r - 3.066479806614716e01) * r + 2.506628277459239e00) * q
    den = (((((-5.447609879822406e01 * r + 1.615858368580409e02) * r - 1.556989798598866e02) * r
             + 6.680131188771972e01) * r - 1.328068155288572e01) * r + 1.0)
    x_mid = num / den
    pt = tl.minimum(p, 1.0 - p)
    t = tl.sqrt(-2.0 * tl.log(tl.maximum(pt, 1e-30)))
    num_t = (((((-7.784894002430293e-03 * t - 3.223964580411365e-01) * t - 2.400758277161838e00) * t
               - 2.549732539343734e00) * t + 4.374664141464968e00) * t + 2.938163982698783e00)
    den_t = ((((7.784695709041462e-03 * t + 3.224671290700398e-01) * t + 2.445134137142996e00) * t
              + 3.754408661907416e00) * t + 1.0)
    x_tail = num_t / den_t
    x_tail = tl.where(p > 0.5, -x_tail, x_tail)
    return tl.where(pt < 0.02425, x_tail, x_mid)


@triton.jit
def _row_tile(pid, R, K, BLOCK_R: tl.constexpr, BLOCK_K: tl.constexpr):
    """Flat int64 indices and mask of a [BLOCK_R, BLOCK_K] tile of a (R, K) matrix."""
    rows = pid * BLOCK_R + tl.arange(0, BLOCK_R)
    cols = tl.arange(0, BLOCK_K)
    mask = (rows < R)[:, None] & (cols < K)[None, :]
    idx = rows.to(tl.int64)[:, None] * K + cols[None, :]
    return idx, cols, mask


# ----------------------------------------------------------------------------------------
# 1. original BFN sampler step, discrete data
# ----------------------------------------------------------------------------------------
@triton.jit
def _discrete_bfn_step_kernel(
    logits_ptr, y_ptr, z_ptr, g_ptr, y_out_ptr, theta_out_ptr,
    R, K, alpha, noise_scale, seed, offset,
    NOISE_GIVEN: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_K: tl.constexpr,
):
    """k = argmax(logits + g); y' = y + alpha (K e_k - 1) + sqrt(alpha K) z; theta' = softmax(y')."""
    idx, cols, mask = _row_tile(tl.program_id(0), R, K, BLOCK_R, BLOCK_K)
    lg = tl.load(logits_ptr + idx, mask=mask, other=0.0).to(tl.float32)
    y = tl.load(y_ptr + idx, mask=mask, other=0.0).to(tl.float32)
    if NOISE_GIVEN:
        z = tl.load(z_ptr + idx, mask=mask, other=0.0).to(tl.float32)
        g = tl.load(g_ptr + idx, mask=mask, other=0.0).to(tl.float32)
    else:
        z, u = _normal_and_uniform(seed, offset + idx)
        g = -tl.log(-tl.log(tl.maximum(u, 1e-30)))
    score = tl.where(mask, lg + g, float("-inf"))
    k = tl.argmax(score, axis=1)
    onehot = tl.where(cols[None, :] == k[:, None], 1.0, 0.0)
    y_new = y + (alpha * (K * onehot - 1.0) + noise_scale * z)
    tl.store(y_out_ptr + idx, y_new.to(y_out_ptr.dtype.element_ty), mask=mask)
    theta = _softmax_rows(y_new, mask)
    tl.store(theta_out_ptr + idx, theta.to(theta_out_ptr.dtype.element_ty), mask=mask)


# ----------------------------------------------------------------------------------------
# 2. BFN-Solver step, discrete data
# ----------------------------------------------------------------------------------------
@triton.jit
def _discrete_solver_step_kernel(
    logits_ptr, y_ptr, prev_ptr, z_ptr, y_out_ptr, x0_out_ptr, theta_out_ptr,
    R, K, c_y, c_x, c_p, c_n, seed, offset,
    HAS_PREV: tl.constexpr, NOISE: tl.constexpr, WRITE_THETA: tl.constexpr,
    BLOCK_R: tl.constexpr, BLOCK_K: tl.constexpr,
):
    """x0 = K softmax(logits) - 1; y' = c_y y + c_x x0 [+ c_p x0_prev] [+ c_n z].
    NOISE: 0 none, 1 loaded z, 2 Philox z."""
    idx, cols, mask = _row_tile(tl.program_id(0), R, K, BLOCK_R, BLOCK_K)
    lg = tl.load(logits_ptr + idx, mask=mask, other=0.0).to(tl.float32)
    y = tl.load(y_ptr + idx, mask=mask, other=0.0).to(tl.float32)
    x0 = K * _softmax_rows(lg, mask) - 1.0
    y_new = c_y * y + c_x * x0
    if HAS_PREV:
        y_new = y_new + c_p * tl.load(prev_ptr + idx, mask=mask, other=0.0).to(tl.float32)
    if NOISE == 1:
        y_new = y_new + c_n * tl.load(z_ptr + idx, mask=mask, other=0.0).to(tl.float32)
    if NOISE == 2:
        y_new = y_new + c_n * _normal(seed, offset + idx)
    tl.store(y_out_ptr + idx, y_new.to(y_out_ptr.dtype.element_ty), mask=mask)
    tl.store(x0_out_ptr + idx, x0.to(x0_out_ptr.dtype.element_ty), mask=mask)
    if WRITE_THETA:
        theta = _softmax_rows(y_new, mask)
        tl.store(theta_out_ptr + idx, theta.to(theta_out_ptr.dtype.element_ty), mask=mask)


# ----------------------------------------------------------------------------------------
# 3./4. continuous data
# ----------------------------------------------------------------------------------------
@triton.jit
def _x_from_eps(mu, eps_ptr, offs, mask, gamma, s, lo, hi, ZERO: tl.constexpr):
    """clip(mu/gamma - s eps, lo, hi), or 0 when ZERO."""
    if ZERO:
        x = mu * 0.0
    else:
        eps = tl.load(eps_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        x = mu / gamma - s * eps
        x = tl.minimum(tl.maximum(x, lo), hi)
    return x


@triton.jit
def _continuous_update_kernel(
    mu_ptr, eps_ptr, z_ptr, out_ptr,
    n, gamma, s, noise_scale, rho, alpha, denom, seed, offset,
    ZERO: tl.constexpr, NOISE_GIVEN: tl.constexpr, BLOCK: tl.constexpr,
):
    """y = x_hat + z/sqrt(alpha); mu' = (rho mu + alpha y) / (rho + alpha)."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    mu = tl.load(mu_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    x = _x_from_eps(mu, eps_ptr, offs, mask, gamma, s, -1.0, 1.0, ZERO)
    if NOISE_GIVEN:
        z = tl.load(z_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    else:
        z = _normal(seed, offset + offs)
    y = x + noise_scale * z
    out = (rho * mu + alpha * y) / denom
    tl.store(out_ptr + offs, out.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _continuous_solver_step_kernel(
    mu_ptr, eps_ptr, prev_ptr, z_ptr, out_ptr, x0_out_ptr,
    n, gamma, s, lo, hi, c_z, c_x, c_p, c_n, seed, offset,
    ZERO: tl.constexpr, HAS_PREV: tl.constexpr, NOISE: tl.constexpr, BLOCK: tl.constexpr,
):
    """x0 = clip(eps -> x); mu' = c_z mu + c_x x0 [+ c_p x0_prev] [+ c_n z]."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    mu = tl.load(mu_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    x0 = _x_from_eps(mu, eps_ptr, offs, mask, gamma, s, lo, hi, ZERO)
    out = c_z * mu + c_x * x0
    if HAS_PREV:
        out = out + c_p * tl.load(prev_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    if NOISE == 1:
        out = out + c_n * tl.load(z_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    if NOISE == 2:
        out = out + c_n * _normal(seed, offset + offs)
    tl.store(out_ptr + offs, out.to(out_ptr.dtype.element_ty), mask=mask)
    tl.store(x0_out_ptr + offs, x0.to(x0_out_ptr.dtype.element_ty), mask=mask)


# ----------------------------------------------------------------------------------------
# 5. discretised output distribution
# ----------------------------------------------------------------------------------------
@triton.jit
def _clamp_index(v, lo, hi):
    """Float -> int32 index clamped to [lo, hi]; NaN -> lo."""
    v = tl.where(v == v, v, lo * 1.0)
    v = tl.minimum(tl.maximum(v, lo * 1.0), hi * 1.0)
    return v.to(tl.int32)


@triton.jit
def _discretised_mean(mu_x, sigma, mask, K):
    """mean = -(1/K) sum_{j=1}^{K-1} erf((e_j - mu_x) / (sqrt2 sigma)), e_j = -1 + 2j/K.

    Only edges within ERF_SATURATION of mu_x (in erf units) are evaluated; edges below
    contribute -1 and edges above +1 each, which is what float32 erf returns there.
    The loop length is the widest window in the block."""
    step = 2.0 / K
    w = 1.0 / (1.4142135623730951 * sigma)
    half = 4.5 / w  # erf(+-4.5) is +-1 in float32 (already from ~3.92): window half-width in x
    jlo = _clamp_index(tl.floor((mu_x + 1.0 - half) / step), 1, K - 1)
    jhi = _clamp_index(tl.ceil((mu_x + 1.0 + half) / step), 1, K - 1)
    n_iter = tl.max(tl.where(mask, jhi - jlo + 1, 1), axis=0)
    acc = mu_x * 0.0
    for i in range(0, n_iter):
        j = jlo + i
        arg = ((j.to(tl.float32) * step - 1.0) - mu_x) * w
        acc += tl.where(j <= K - 1, tl.erf(arg), 0.0)
    jend = tl.minimum(jlo + n_iter - 1, K - 1)
    n_below = (jlo - 1).to(tl.float32)
    n_above = (K - 1 - jend).to(tl.float32)
    return -((acc - n_below) + n_above) / K


@triton.jit
def _discretised_mode(mu_x, sigma, K):
    """argmax_k p_k among {first bin, interior bin nearest mu_x, last bin}; returns its centre."""
    step = 2.0 / K
    p_first = _ndtr(((step - 1.0) - mu_x) / sigma)
    p_last = _ndtr((mu_x - (1.0 - step)) / sigma)
    m = tl.minimum(tl.maximum(tl.floor((mu_x + 1.0) / step), 1.0), K - 2.0)
    lo_e = m * step - 1.0
    p_mid = _ndtr(((lo_e + step) - mu_x) / sigma) - _ndtr((lo_e - mu_x) / sigma)
    take = (p_mid > p_first) & (K > 2)
    best = tl.where(take, m, 0.0)
    best_p = tl.where(take, p_mid, p_first)
    best = tl.where(p_last > best_p, K - 1.0, best)
    return (2.0 * best + 1.0) / K - 1.0


@triton.jit
def _discretised_sample(mu_x, sigma, u, K):
    """Centre of the bin containing mu_x + sigma Phi^-1(u) (inverse-CDF sample)."""
    q = mu_x + sigma * _ndtri(u)
    idx = _clamp_index(tl.floor((q + 1.0) * (K * 0.5)), 0, K - 1)
    idx = tl.where(u <= 0.0, 0, idx)
    return (2.0 * idx.to(tl.float32) + 1.0) / K - 1.0


@triton.jit
def _discretised_output_kernel(
    mu_eps_ptr, ln_sigma_ptr, mu_ptr, u_ptr, mean_ptr, sample_ptr, mode_ptr,
    n, K, gamma, s, seed, offset,
    ZERO: tl.constexpr, SAMPLE: tl.constexpr, U_GIVEN: tl.constexpr, MODE: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """Per element: mu_x, sigma_x from (mu_eps, ln_sigma_eps, mu, gamma); mean, sample, mode."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    if ZERO:
        mu_x = tl.zeros([BLOCK], tl.float32)
        sigma = mu_x + 1.0
    else:
        mu = tl.load(mu_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        me = tl.load(mu_eps_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        ls = tl.load(ln_sigma_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        mu_x = mu / gamma - s * me
        sigma = tl.minimum(tl.maximum(s * tl.exp(ls), 1e-3), 10.0)
        mu_x = tl.where(mask, mu_x, 0.0)
        sigma = tl.where(mask, sigma, 1.0)
    mean = _discretised_mean(mu_x, sigma, mask, K)
    tl.store(mean_ptr + offs, mean.to(mean_ptr.dtype.element_ty), mask=mask)
    if SAMPLE:
        if U_GIVEN:
            u = tl.load(u_ptr + offs, mask=mask, other=0.5).to(tl.float32)
        else:
            u = _uniform(seed, offset + offs)
        smp = _discretised_sample(mu_x, sigma, u, K)
        tl.store(sample_ptr + offs, smp.to(sample_ptr.dtype.element_ty), mask=mask)
    if MODE:
        mode = _discretised_mode(mu_x, sigma, K)
        tl.store(mode_ptr + offs, mode.to(mode_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _discretised_sample_bisect(mu_x, sigma, u, K, TOP, NBITS):
    """Centre of bin k = #{j in 1..K-1: F(e_j) <= u} by binary lifting (one erf per bit), with
    F(e_j) = (1 + erf((e_j - mu_x) / (sqrt2 sigma))) / 2; TOP = highest power of two <= K - 1."""
    step = 2.0 / K
    w = 1.0 / (1.4142135623730951 * sigma)
    k = mu_x * 0.0
    bit = TOP * 1.0
    for _ in range(0, NBITS):
        cand = k + bit
        cdf = 0.5 * (1.0 + tl.erf(((cand * step - 1.0) - mu_x) * w))
        k = tl.where((cdf <= u) & (cand <= K - 1.0), cand, k)
        bit = bit * 0.5
    return (2.0 * k + 1.0) / K - 1.0


@triton.jit
def _discretised_gaussian_kernel(
    mu_x_ptr, sigma_ptr, u_ptr, mean_ptr, sample_ptr, mode_ptr,
    n, K, TOP, NBITS, seed, offset,
    MEAN: tl.constexpr, SAMPLE: tl.constexpr, U_GIVEN: tl.constexpr, MODE: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """Per element, from (mu_x, sigma_x): mean, bisection sample, mode of the discretised Gaussian."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    mu_x = tl.load(mu_x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    sigma = tl.load(sigma_ptr + offs, mask=mask, other=1.0).to(tl.float32)
    if MEAN:
        mean = _discretised_mean(mu_x, sigma, mask, K)
        tl.store(mean_ptr + offs, mean.to(mean_ptr.dtype.element_ty), mask=mask)
    if SAMPLE:
        if U_GIVEN:
            u = tl.load(u_ptr + offs, mask=mask, other=0.5).to(tl.float32)
        else:
            u = _uniform(seed, offset + offs)
        smp = _discretised_sample_bisect(mu_x, sigma, u, K, TOP, NBITS)
        tl.store(sample_ptr + offs, smp.to(sample_ptr.dtype.element_ty), mask=mask)
    if MODE:
        mode = _discretised_mode(mu_x, sigma, K)
        tl.store(mode_ptr + offs, mode.to(mode_ptr.dtype.element_ty), mask=mask)


# ----------------------------------------------------------------------------------------
# launchers (inputs validated and contiguous)
# ----------------------------------------------------------------------------------------
def _row_blocks(K: int) -> tuple[int, int, int]:
    """(BLOCK_R, BLOCK_K, num_warps) for row kernels: ~2048 elements per program."""
    block_k = triton.next_power_of_2(K)
    if block_k > MAX_BLOCK_K:
        raise ValueError(f"K = {K} exceeds the Triton row kernels' limit of {MAX_BLOCK_K} classes")
    block_r = max(1, 2048 // block_k)
    num_warps = 4 if block_k <= 2048 else min(16, block_k // 512)
    return block_r, block_k, num_warps


def discrete_bfn_step(
    logits: torch.Tensor, y: torch.Tensor, alpha: float,
    z: Optional[torch.Tensor], gumbel: Optional[torch.Tensor], seed: int, offset: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    K = logits.shape[-1]
    R = logits.numel() // K
    y_out, theta = torch.empty_like(y), torch.empty_like(y)
    given = z is not None
    block_r, block_k, warps = _row_blocks(K)
    _discrete_bfn_step_kernel[(triton.cdiv(R, block_r),)](
        logits, y, z if given else y, gumbel if given else y, y_out, theta,
        R, K, alpha, math.sqrt(alpha * K), seed, offset,
        NOISE_GIVEN=given, BLOCK_R=block_r, BLOCK_K=block_k, num_warps=warps,
    )
    return y_out, theta


def discrete_solver_step(
    logits: torch.Tensor, y: torch.Tensor, c_y: float, c_x: float, c_p: float,
    x0_prev: Optional[torch.Tensor], c_n: float, z: Optional[torch.Tensor], noise: int,
    return_theta: bool, seed: int, offset: int,
) -> tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
    K = logits.shape[-1]
    R = logits.numel() // K
    y_out, x0 = torch.empty_like(y), torch.empty_like(y)
    theta = torch.empty_like(y) if return_theta else None
    block_r, block_k, warps = _row_blocks(K)
    _discrete_solver_step_kernel[(triton.cdiv(R, block_r),)](
        logits, y, x0_prev if x0_prev is not None else y, z if z is not None else y,
        y_out, x0, theta if theta is not None else y_out,
        R, K, c_y, c_x, c_p, c_n, seed, offset,
        HAS_PREV=x0_prev is not None, NOISE=noise, WRITE_THETA=return_theta,
        BLOCK_R=block_r, BLOCK_K=block_k, num_warps=warps,
    )
    return y_out, x0, theta


_BLOCK = 1024
_BLOCK_DISCRETISED = 256


def continuous_update(
    mu: torch.Tensor, eps_hat: torch.Tensor, gamma: float, s: float, rho: float, alpha: float,
    z: Optional[torch.Tensor], zero: bool, seed: int, offset: int,
) -> torch.Tensor:
    out = torch.empty_like(mu)
    n = mu.numel()
    _continuous_update_kernel[(triton.cdiv(n, _BLOCK),)](
        mu, eps_hat, z if z is not None else mu, out,
        n, gamma if gamma > 0 else 1.0, s, 1.0 / math.sqrt(alpha), rho, alpha, rho + alpha, seed, offset,
        ZERO=zero, NOISE_GIVEN=z is not None, BLOCK=_BLOCK, num_warps=4,
    )
    return out


def continuous_solver_step(
    mu: torch.Tensor, eps_hat: torch.Tensor, gamma: float, s: float, lo: float, hi: float,
    c_z: float, c_x: float, c_p: float, x0_prev: Optional[torch.Tensor], c_n: float,
    z: Optional[torch.Tensor], noise: int, zero: bool, seed: int, offset: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    out, x0 = torch.empty_like(mu), torch.empty_like(mu)
    n = mu.numel()
    _continuous_solver_step_kernel[(triton.cdiv(n, _BLOCK),)](
        mu, eps_hat, x0_prev if x0_prev is not None else mu, z if z is not None else mu, out, x0,
        n, gamma if gamma > 0 else 1.0, s, lo, hi, c_z, c_x, c_p, c_n, seed, offset,
        ZERO=zero, HAS_PREV=x0_prev is not None, NOISE=noise, BLOCK=_BLOCK, num_warps=4,
    )
    return out, x0


def discretised_output(
    mu_eps: torch.Tensor, ln_sigma_eps: torch.Tensor, mu: torch.Tensor, gamma: float, s: float,
    K: int, u: Optional[torch.Tensor], want_sample: bool, want_mode: bool, zero: bool,
    seed: int, offset: int,
) -> tuple[torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor]]:
    mean = torch.empty_like(mu)
    sample = torch.empty_like(mu) if want_sample else None
    mode = torch.empty_like(mu) if want_mode else None
    n = mu.numel()
    _discretised_output_kernel[(triton.cdiv(n, _BLOCK_DISCRETISED),)](
        mu_eps, ln_sigma_eps, mu, u if u is not None else mu,
        mean, sample if sample is not None else mean, mode if mode is not None else mean,
        n, K, gamma if gamma > 0 else 1.0, s, seed, offset,
        ZERO=zero, SAMPLE=want_sample, U_GIVEN=u is not None, MODE=want_mode,
        BLOCK=_BLOCK_DISCRETISED, num_warps=4,
    )
    return mean, sample, mode


def discretised_gaussian(
    mu_x: torch.Tensor, sigma_x: torch.Tensor, K: int, u: Optional[torch.Tensor], want_mean: bool,
    want_sample: bool, want_mode: bool, seed: int, offset: int,
) -> tuple[Optional[torch.Tensor], Optional[torch.Tensor], Optional[torch.Tensor]]:
    mean = torch.empty_like(mu_x) if want_mean else None
    sample = torch.empty_like(mu_x) if want_sample else None
    mode = torch.empty_like(mu_x) if want_mode else None
    dummy = next(t for t in (mean, sample, mode, mu_x) if t is not None)
    n = mu_x.numel()
    nbits = (K - 1).bit_length()
    _discretised_gaussian_kernel[(triton.cdiv(n, _BLOCK_DISCRETISED),)](
        mu_x, sigma_x, u if u is not None else mu_x,
        mean if mean is not None else dummy, sample if sample is not None else dummy,
        mode if mode is not None else dummy,
        n, K, 1 << (nbits - 1), nbits, seed, offset,
        MEAN=want_mean, SAMPLE=want_sample, U_GIVEN=u is not None, MODE=want_mode,
        BLOCK=_BLOCK_DISCRETISED, num_warps=4,
    )
    return mean, sample, mode
