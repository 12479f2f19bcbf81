#!/usr/bin/env python
"""Benchmark the fused step kernels in `kernels/`.

For each kernel: the minimal bytes moved (every input read once, every output written
once, float32), and the median time of the Triton kernel (CUDA only), the eager torch
path (`backend="torch"`, noise drawing included) and `torch.compile` of the torch
reference (noise drawn inside the compiled function; skipped if compilation fails).
Bandwidth is minimal bytes / time, also as a fraction of the measured device copy
bandwidth (a big `clone()`, counting read + write). Plus the peak memory of the
discretised output distribution (16x3x32x32, K=256): materialising reference vs the
chunked torch path (and the Triton kernel on CUDA).

    python benchmarks/kernels.py --device cpu --out benchmarks/results/kernels_cpu.md
    python benchmarks/kernels.py --device cuda --out benchmarks/results/kernels.md
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

_HERE = Path(__file__).resolve().parent
_ROOT = _HERE.parent

import torch  # noqa: E402

from bfnsolvers import kernels  # noqa: E402
from bfnsolvers.bench.provenance import proc_status_bytes  # noqa: E402
from bfnsolvers.kernels import reference as ref  # noqa: E402

MEM_SHAPE = (16, 3, 32, 32)
MEM_K = 256
F32 = 4


# ----------------------------------------------------------------------------------------
# timing
# ----------------------------------------------------------------------------------------
def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_median(fn: Callable[[], object], device: str, min_time: float = 0.5, min_reps: int = 5,
                max_reps: int = 200) -> float:
    """Median seconds per call after one warm-up call (CUDA events on GPU)."""
    fn()
    _sync(device)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_reps or (time.perf_counter() - start < min_time and len(times) < max_reps):
        if device == "cuda":
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            b.synchronize()
            times.append(a.elapsed_time(b) / 1e3)
        else:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def copy_bandwidth(device: str, nbytes: int) -> dict[str, float]:
    """Bytes/s (read + write counted) of x.clone() and of out.copy_(x) into a preallocated
    tensor, x a `nbytes` float32 tensor. On CPU clone() of a big tensor pays fresh-page
    faults on every call (glibc returns big blocks to the OS), so copy_ is also reported."""
    x = torch.ones(nbytes // F32, device=device)
    out = torch.empty_like(x)
    t_clone = time_median(lambda: x.clone(), device, min_time=1.0)
    t_copy = time_median(lambda: out.copy_(x), device, min_time=1.0)
    return {"clone": 2 * nbytes / t_clone, "copy_": 2 * nbytes / t_copy}


# ----------------------------------------------------------------------------------------
# benchmark cases
# ----------------------------------------------------------------------------------------
@dataclass
class Case:
    kernel: str
    config: str
    min_bytes: int
    variants: dict[str, Callable[[], object]] = field(default_factory=dict)


def _compiled(fn: Callable, *args) -> Callable[[], object]:
    """torch.compile(fn) applied to fixed args (compiled on first call)."""
    cfn = torch.compile(fn, dynamic=False)
    return lambda: cfn(*args)


def discrete_cases(device: str, n_target: int) -> list[Case]:
    cases = []
    for K in (27, 256):
        R = max(1, n_target // K)
        g = torch.Generator(device=device).manual_seed(0)
        logits, y, prev = (torch.randn(R, K, device=device, generator=g) for _ in range(3))
        n = R * K
        alpha = 0.05

        def bfn_ref(lg, yy):
            z = torch.randn_like(yy)
            return ref.discrete_bfn_step_ref(lg, yy, alpha, z, ref.gumbel_from_uniform(torch.rand_like(yy)))

        c = Case("discrete_bfn_step", f"{R}x{K} (sampled class + noise)", 4 * n * F32)
        c.variants["triton"] = lambda lg=logits, yy=y: kernels.discrete_bfn_step(lg, yy, alpha, seed=1, backend="triton")
        c.variants["torch eager"] = lambda lg=logits, yy=y, gg=g: kernels.discrete_bfn_step(
            lg, yy, alpha, generator=gg, backend="torch")
        c.variants["torch.compile(ref)"] = _compiled(bfn_ref, logits, y)
        cases.append(c)

        def solver_ref(lg, yy, pp):
            return ref.discrete_solver_step_ref(lg, yy, 1.1, 0.3, -0.1, pp)

        c = Case("discrete_solver_step", f"{R}x{K} (2nd-order ODE: x0_prev, no noise)", 5 * n * F32)
        c.variants["triton"] = lambda lg=logits, yy=y, pp=prev: kernels.discrete_solver_step(
            lg, yy, 1.1, 0.3, c_p=-0.1, x0_prev=pp, backend="triton")
        c.variants["torch eager"] = lambda lg=logits, yy=y, pp=prev: kernels.discrete_solver_step(
            lg, yy, 1.1, 0.3, c_p=-0.1, x0_prev=pp, backend="torch")
        c.variants["torch.compile(ref)"] = _compiled(solver_ref, logits, y, prev)
        cases.append(c)
    return cases


def continuous_cases(device: str, n: int) -> list[Case]:
    g = torch.Generator(device=device).manual_seed(0)
    mu, eps, prev = (torch.randn(n, device=device, generator=g) for _ in range(3))

    def update_ref(m, e):
        return ref.continuous_update_ref(m, e, 0.6, 3.0, 0.5, torch.randn_like(m))

    def solver_ref(m, e, p):
        return ref.continuous_solver_step_ref(m, e, 0.6, 0.9, 0.2, 0.05, p)

    up = Case("continuous_update", f"{n} elements (noise drawn)", 3 * n * F32)
    up.variants["triton"] = lambda: kernels.continuous_update(mu, eps, 0.6, 3.0, 0.5, seed=1, backend="triton")
    up.variants["torch eager"] = lambda: kernels.continuous_update(mu, eps, 0.6, 3.0, 0.5, generator=g, backend="torch")
    up.variants["torch.compile(ref)"] = _compiled(update_ref, mu, eps)
    st = Case("continuous_solver_step", f"{n} elements (2nd-order ODE: x0_prev, no noise)", 5 * n * F32)
    st.variants["triton"] = lambda: kernels.continuous_solver_step(mu, eps, 0.6, 0.9, 0.2, c_p=0.05, x0_prev=prev,
                                                                   backend="triton")
    st.variants["torch eager"] = lambda: kernels.continuous_solver_step(mu, eps, 0.6, 0.9, 0.2, c_p=0.05,
                                                                        x0_prev=prev, backend="torch")
    st.variants["torch.compile(ref)"] = _compiled(solver_ref, mu, eps, prev)
    return [up, st]


def discretised_inputs(shape: tuple[int, ...], device: str) -> tuple[torch.Tensor, ...]:
    """Late-sampling-like inputs: mu_x spread over [-1, 1], sigma_x ~ 0.01-0.1."""
    g = torch.Generator(device=device).manual_seed(0)
    mu = 0.5 * torch.randn(shape, device=device, generator=g)
    mu_eps = 0.5 * torch.randn(shape, device=device, generator=g)
    ln_sigma = torch.randn(shape, device=device, generator=g) - 1.0
    return mu_eps, ln_sigma, mu


def discretised_cases(device: str, shape: tuple[int, ...], K: int = MEM_K) -> list[Case]:
    me, ls, mu = discretised_inputs(shape, device)
    gamma = 0.99
    n = mu.numel()

    def full_ref(a, b, c):
        return ref.discretised_output_ref(a, b, c, gamma, K, u=torch.rand_like(c))

    c = Case("discretised_output", f"{'x'.join(map(str, shape))}, K={K} (mean + sample)", 5 * n * F32)
    c.variants["triton"] = lambda: kernels.discretised_output(me, ls, mu, gamma, K, sample=True, seed=1,
                                                              backend="triton")
    c.variants["torch eager (chunked)"] = lambda: kernels.discretised_output(me, ls, mu, gamma, K, sample=True,
                                                                             backend="torch")
    c.variants["torch eager (materialising ref)"] = lambda: full_ref(me, ls, mu)
    c.variants["torch.compile(ref)"] = _compiled(full_ref, me, ls, mu)
    return [c]


# ----------------------------------------------------------------------------------------
# running
# ----------------------------------------------------------------------------------------
def run_case(case: Case, device: str, copy_bw: float, skip_compile: bool) -> list[dict]:
    rows = []
    for name, fn in case.variants.items():
        row: dict = {"kernel": case.kernel, "config": case.config, "variant": name, "min_bytes": case.min_bytes}
        if name == "triton" and device != "cuda":
            row["note"] = "n/a (Triton needs CUDA)"
        elif name.startswith("torch.compile") and skip_compile:
            row["note"] = "skipped (--no-compile)"
        else:
            try:
                t = time_median(fn, device)
                row.update(ms=t * 1e3, gbps=case.min_bytes / t / 1e9, frac=case.min_bytes / t / copy_bw)
            except Exception as exc:  # torch.compile may fail on some setups: report, go on
                row["note"] = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:80] if str(exc) else ''}"
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def _vm_kib(field_name: str) -> int:
    return proc_status_bytes(field_name) // 1024


def mem_child(variant: str) -> None:
    """Run in a fresh process: peak RSS increase of one call, via VmHWM reset (clear_refs 5)."""
    me, ls, mu = discretised_inputs(MEM_SHAPE, "cpu")
    u = torch.rand(MEM_SHAPE, generator=torch.Generator().manual_seed(1))

    def call(a, b, c, uu):
        if variant == "reference":
            return ref.discretised_output_ref(a, b, c, 0.99, MEM_K, u=uu)
        return ref.discretised_output_chunked(a, b, c, 0.99, MEM_K, u=uu)

    call(me[:1, :1, :2], ls[:1, :1, :2], mu[:1, :1, :2], u[:1, :1, :2])  # load code paths, tiny
    Path("/proc/self/clear_refs").write_text("5")
    base = _vm_kib("VmRSS")
    out = call(me, ls, mu, u)
    peak = _vm_kib("VmHWM")
    assert out.mean.shape == MEM_SHAPE
    print(json.dumps({"variant": variant, "peak_extra_bytes": (peak - base) * 1024}))


def cpu_peak_memory() -> list[dict]:
    rows = []
    for variant in ("reference", "chunked"):
        res = subprocess.run([sys.executable, __file__, "--mem-child", variant], capture_output=True, text=True,
                             cwd=_ROOT, timeout=600)
        if res.returncode != 0:
            rows.append({"variant": variant, "note": f"failed: {res.stderr.strip().splitlines()[-1:]}"})
            continue
        rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
    return rows


def cuda_peak_memory() -> list[dict]:
    me, ls, mu = discretised_inputs(MEM_SHAPE, "cuda")
    u = torch.rand(MEM_SHAPE, device="cuda")
    calls = {
        "reference": lambda: ref.discretised_output_ref(me, ls, mu, 0.99, MEM_K, u=u),
        "chunked": lambda: ref.discretised_output_chunked(me, ls, mu, 0.99, MEM_K, u=u),
        "triton": lambda: kernels.discretised_output(me, ls, mu, 0.99, MEM_K, u=u, backend="triton"),
    }
    rows = []
    for name, fn in calls.items():
        fn()
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        rows.append({"variant": name, "peak_extra_bytes": torch.cuda.max_memory_allocated() - base})
    return rows


# ----------------------------------------------------------------------------------------
# report
# ----------------------------------------------------------------------------------------
def machine(device: str) -> str:
    try:
        model = next(line.split(":", 1)[1].strip() for line in subprocess.run(
            ["lscpu"], capture_output=True, text=True).stdout.splitlines() if line.startswith("Model name"))
    except (StopIteration, OSError):
        model = platform.processor() or "unknown CPU"
    desc = (f"CPU: {model} (lscpu model name), {os.cpu_count()} logical CPUs, torch threads "
            f"{torch.get_num_threads()}; torch {torch.__version__}")
    try:
        import triton

        desc += f", triton {triton.__version__}"
    except ImportError:
        desc += ", triton not installed"
    if device == "cuda":
        desc += f"; GPU: {torch.cuda.get_device_name()}"
    return desc


def _fmt_row(r: dict) -> str:
    mb = f"{r['min_bytes'] / 1e6:.1f}"
    if "ms" not in r:
        return f"| {r['kernel']} | {r['config']} | {mb} | {r['variant']} | {r.get('note', '')} | | |"
    return (f"| {r['kernel']} | {r['config']} | {mb} | {r['variant']} | {r['ms']:.3f} | "
            f"{r['gbps']:.1f} | {100 * r['frac']:.1f}% |")


def write_report(path: Path, device: str, cmd: str, bws: dict[str, float], copy_mb: int, rows: list[dict],
                 mem_rows: list[dict], load: Optional[tuple[float, float, float]]) -> None:
    lines = [f"# Fused step kernels: benchmark ({device})", "",
             f"Command: `{cmd}`", "", f"Machine: {machine(device)}", ""]
    if device != "cuda":
        lines += ["**No GPU was available in this session**, so only the torch paths are timed (Triton needs",
                  "CUDA; the Triton kernels were checked for correctness under the CPU interpreter only).",
                  "GPU figures: `python benchmarks/kernels.py --device cuda --out benchmarks/results/kernels.md`.",
                  ""]
    if device == "cpu":
        lines += [f"Torch CPU threads: {torch.get_num_threads()}. With all cores busy, OpenMP's spinning "
                  "threads can make multi-threaded torch ops 10-500x slower; on a shared machine use "
                  "`--threads 1`.", ""]
    if load is not None:
        lines += [f"Load average (1/5/15 min) at start: {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} "
                  "(shared machine: other processes may inflate times).", ""]
    lines += [f"Copy bandwidth ({copy_mb} MiB float32 tensor, read + write counted): `clone()` "
              f"{bws['clone'] / 1e9:.1f} GB/s, `copy_()` into a preallocated tensor {bws['copy_'] / 1e9:.1f} GB/s; "
              f"% copy below uses the larger, {max(bws.values()) / 1e9:.1f} GB/s.", "",
              "Times are medians over repeated calls after a warm-up (compile time excluded). `min MB` = each "
              "input read once + each output written once (float32); GB/s = min bytes / time; "
              "% copy = that bandwidth / copy bandwidth. Torch paths include drawing their noise.", "",
              "| kernel | config | min MB | variant | ms | GB/s | % copy |", "|---|---|---|---|---|---|---|"]
    lines += [_fmt_row(r) for r in rows]
    lines += ["", f"## Peak memory: discretised output, {'x'.join(map(str, MEM_SHAPE))}, K={MEM_K} "
              "(mean + sample)", ""]
    n = math.prod(MEM_SHAPE)
    if device == "cuda":
        lines.append("Method: `torch.cuda.max_memory_allocated()` minus allocated memory before the call.")
    else:
        lines.append("Method: each variant in a fresh process; reset the kernel's peak-RSS counter "
                     "(`/proc/self/clear_refs` = 5), call once, report VmHWM - VmRSS before the call (all pages "
                     "the call touched at its peak, outputs included; torch's CPU allocator is malloc, so this "
                     "sees it, unlike tracemalloc).")
    lines += ["", f"One [..., K] float32 tensor is {n * MEM_K * F32 / 2**20:.1f} MiB; the inputs are "
              f"{3 * n * F32 / 2**20:.2f} MiB.", "", "| variant | peak extra MiB |", "|---|---|"]
    for r in mem_rows:
        val = f"{r['peak_extra_bytes'] / 2**20:.2f}" if "peak_extra_bytes" in r else r.get("note", "")
        lines.append(f"| {r['variant']} | {val} |")
    lines += ["", "Notes:",
              "- Discretised mean, in the Triton kernel and the chunked path: sum_k p_k k_c = "
              "-(1/K) sum_{j=1}^{K-1} erf((e_j - mu_x) / (sqrt2 sigma_x)) over the K-1 interior edges e_j "
              "(summation by parts); the kernel evaluates erf only on edges where it is not saturated "
              "in float32. Sample and mode are O(1) per element (quantile mu_x + sigma_x Phi^-1(u); "
              "mode among first, last and nearest interior bin).",
              "- `torch.compile(ref)` draws its noise inside the compiled function; inductor's CPU "
              "random-number code dominates the noisy kernels there.",
              "- Eager torch pays for its temporaries (allocation, page faults): compare with the "
              "solver steps, which draw no noise."]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", type=Path, default=None, help="markdown report (default benchmarks/results/kernels_<dev>.md)")
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile variants")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU); default: torch's")
    ap.add_argument("--mem-child", choices=["reference", "chunked"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.mem_child:
        mem_child(args.mem_child)
        return
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda but CUDA is not available")
    dev = args.device
    if args.threads:
        torch.set_num_threads(args.threads)
    out = args.out or _ROOT / "benchmarks" / "results" / f"kernels_{dev}.md"
    cmd = "python benchmarks/kernels.py " + " ".join(sys.argv[1:])
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    copy_mb = 1024 if dev == "cuda" else 256
    bws = copy_bandwidth(dev, copy_mb * 2**20)
    copy_bw = max(bws.values())  # the larger: the conservative denominator
    print(f"copy bandwidth {json.dumps({k: v / 1e9 for k, v in bws.items()})} GB/s", flush=True)
    n_big = 1 << 24 if dev == "cuda" else 1 << 22  # elements per tensor: beyond GPU L2 / CPU L3 per call
    disc_shape = (256, 3, 32, 32) if dev == "cuda" else MEM_SHAPE
    cases = discrete_cases(dev, n_big) + continuous_cases(dev, n_big) + discretised_cases(dev, MEM_SHAPE)
    if disc_shape != MEM_SHAPE:
        cases += discretised_cases(dev, disc_shape)
    rows = [r for c in cases for r in run_case(c, dev, copy_bw, args.no_compile)]
    mem_rows = cuda_peak_memory() if dev == "cuda" else cpu_peak_memory()
    print(json.dumps(mem_rows), flush=True)
    write_report(out, dev, cmd, bws, copy_mb, rows, mem_rows, load)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
