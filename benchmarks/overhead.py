#!/usr/bin/env python
"""Machinery per step: the default solvers run through the library (``Denoiser`` + process output
distribution + solver loop) vs a minimal hand-written loop of the same update, with a zero-cost network (it
returns a precomputed output of the right shape), so the difference is the library's own per-step cost.

- continuous (CIFAR-10 layout B x 3 x 32 x 32, sigma_1 = 0.02): ``bfn-unipc3`` (the default) vs the 2M
  predictor + quadratic corrector written out with precomputed Python-float coefficients;
- discrete (text8 layout B x 256 x 27, beta_1 = 0.75): ``sde-bfn-unipc3-t`` (the default) vs its
  Adams-Bashforth / Adams-Moulton update in u with precomputed integral weights.

The hand loops compute the same numbers (the max abs difference to the library is reported: 0 where the
arithmetic is the same). Each (library, hand) pair is timed interleaved, ``--repeats`` times; the table gives
the medians and the median of the per-pair ratios (shared machine: compare ratios, not absolute times).

    python benchmarks/overhead.py --threads 1 --out benchmarks/results/overhead_cpu.md
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(_ROOT))

import torch  # noqa: E402

from bfnsolvers import ContinuousBFN, DiscreteBFN  # noqa: E402
from bfnsolvers.denoiser import Denoiser  # noqa: E402
from bfnsolvers.solvers import SOLVERS  # noqa: E402
from bfnsolvers.solvers.common import sde_coefficients  # noqa: E402
from bfnsolvers.solvers.discrete import integral_weights, natural_grid  # noqa: E402

STEPS = 10


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class ZeroCost(torch.nn.Module):
    """Returns a fixed output: the network costs nothing, what is left is the sampler."""

    def __init__(self, out: torch.Tensor):
        super().__init__()
        self.out = out

    def forward(self, x, t):
        return self.out


def continuous_case(batch: int, device: torch.device):
    process = ContinuousBFN(sigma_1=0.02)
    shape = (batch, 3, 32, 32)
    g = torch.Generator(device="cpu").manual_seed(0)
    out = (0.5 * torch.randn(shape, generator=g)).to(device)
    z0 = (0.1 * torch.randn(shape, generator=g)).to(device)
    ts = torch.linspace(0.05, 1.0, STEPS + 1, dtype=torch.float64)
    spec = SOLVERS["bfn-unipc3"]
    a, s, lam = sde_coefficients(process, ts)
    gam, nr = [], []
    for t in ts.tolist():
        g_t, r_t = process.noise_ratio(torch.tensor(t, dtype=torch.float32), torch.float32)
        gam.append(float(g_t)), nr.append(float(r_t))
    lo, hi = process.x_range

    net = ZeroCost(out)
    t_in = [torch.full((batch,), t, device=device) for t in ts.tolist()]

    def library():
        d = Denoiser(net, process)
        return spec(d, z0, ts, lower_order_final=False)

    def hand():
        z, z_prev, hist = z0, None, []          # hist: newest first (lam, x0)
        for i in range(STEPS):
            x0 = (z / gam[i] - nr[i] * net(z, t_in[i])).clamp(lo, hi)
            if hist:                            # corrector from lam[i-1] to lam[i] through x0, hist
                h = lam[i] - lam[i - 1]
                p1 = math.expm1(-h)
                p2 = p1 / h + 1
                m_prev = hist[0][1]
                d_a = (x0 - m_prev) / h
                if len(hist) > 1:
                    h0 = lam[i - 1] - hist[1][0]
                    c = (d_a - (m_prev - hist[1][1]) / h0) / (h + h0)
                    term = -p1 * m_prev + p2 * h * (d_a - c * h) - 2 * h * h * (p2 / h - 0.5) * c
                else:
                    term = -p1 * m_prev + p2 * h * d_a
                z = (s[i] / s[i - 1]) * z_prev + a[i] * term
            z_prev = z
            hist = [(lam[i], x0)] + hist[:1]
            h = lam[i + 1] - lam[i]
            p1 = math.expm1(-h)
            if len(hist) == 1:
                term = -p1 * x0
            else:
                r0 = (lam[i] - hist[1][0]) / h
                term = -p1 * (x0 + 0.5 * ((x0 - hist[1][1]) / r0))
            z = (s[i + 1] / s[i]) * z + a[i + 1] * term
        return z

    return "continuous", "bfn-unipc3", shape, library, hand


def discrete_case(batch: int, device: torch.device):
    K = 27
    process = DiscreteBFN(beta_1=0.75, num_classes=K)
    shape = (batch, 256, K)
    g = torch.Generator(device="cpu").manual_seed(0)
    out = torch.randn(shape, generator=g).to(device)
    z0 = torch.zeros(shape).to(device)
    noise = [torch.randn(shape, generator=g).to(device) for _ in range(STEPS)]
    ts = torch.linspace(0.05, 1.0, STEPS + 1, dtype=torch.float64)
    spec = SOLVERS["sde-bfn-unipc3-t"]
    beta_ref, u = process.beta_ref, natural_grid(process, ts)
    order = 3

    def sampler():
        it = iter(noise)
        return lambda z: next(it)

    net = ZeroCost(out)
    t_in = [torch.full((batch,), t, device=device) for t in ts.tolist()]

    def library():
        d = Denoiser(net, process)
        return spec(d, z0, ts, noise_sampler=sampler(), lower_order_final=False)

    def x0_of(z, i):
        return K * torch.softmax(net(torch.softmax(z, -1), t_in[i]), -1) - 1   # the network reads theta

    def hand():
        z, hist, draw = z0, [], sampler()
        x0 = x0_of(z, 0)
        for i in range(STEPS):
            hist = [(u[i], x0)] + hist[:order - 1]
            nodes, xs = [h[0] for h in hist], [h[1] for h in hist]
            u0, u1 = u[i], u[i + 1]
            eps = math.sqrt(K * beta_ref * (u1 ** 2 - u0 ** 2)) * draw(z)
            w = integral_weights(nodes, u0, u1, True)
            z_next = z + beta_ref * sum(wj * x for wj, x in zip(w, xs)) + eps
            if i + 1 < STEPS:
                x0 = x0_of(z_next, i + 1)
                k = max(len(nodes) - 1, 1)
                w = integral_weights([u1] + nodes[:k], u0, u1, True)
                z_next = z + beta_ref * sum(wj * x for wj, x in zip(w, [x0] + xs[:k])) + eps
            z = z_next
        return z

    return "discrete", "sde-bfn-unipc3-t", shape, library, hand


def interleaved_times(fns, repeats: int, device: torch.device) -> list[list[float]]:
    """Seconds per call of each function, timed in turn within every repeat (so machine noise hits all alike).

    On CPU the clock is this thread's CPU time (``time.thread_time``, user + system: page faults count): on a
    loaded shared machine the process is descheduled for whole time slices, which wall time would count. On
    CUDA it is wall time around a synchronised call (the device works while the host thread waits)."""
    clock = time.perf_counter if device.type == "cuda" else time.thread_time
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, acc in zip(fns, times):
            _sync(device)
            start = clock()
            fn()
            _sync(device)
            acc.append(clock() - start)
    return times


def measure(case, device: torch.device, repeats: int) -> dict:
    kind, solver, shape, library, hand = case
    diff = float((library() - hand()).abs().max())
    for _ in range(2):                          # warm-up
        library(), hand()
    _sync(device)
    lib_t, hand_t = ([t / STEPS * 1e3 for t in ts] for ts in interleaved_times((library, hand), repeats, device))
    ratios = [x / y for x, y in zip(lib_t, hand_t)]
    return {"kind": kind, "solver": solver, "shape": shape, "lib": statistics.median(lib_t),
            "hand": statistics.median(hand_t), "ratio": statistics.median(ratios),
            "lib_min": min(lib_t), "hand_min": min(hand_t), "diff": diff}


def network_rows(device: torch.device, batches: list[int], repeats: int, quick: bool) -> list[dict]:
    """The official architectures (random weights, published sizes; ``quick``: tiny versions for a CPU smoke
    run): ``sample()`` wall time per step vs the bare network's forward time, interleaved; overhead = the
    sampler's share of a step."""
    import copy
    from bfnsolvers.checkpoints import build_model, make_process, preset_config
    from bfnsolvers.sampling import sample

    rows = []
    for preset, solver in (("cifar10-continuous-256", None), ("text8-discrete", None)):
        cfg = copy.deepcopy(preset_config(preset))
        if quick:
            p = cfg["net"]["parameters"]
            if "n_blocks" in p:
                p.update(embedding_dim=32, n_blocks=2, norm_groups=8)
                cfg["output_adapter"]["parameters"]["input_height"] = 35
            else:
                p.update(n_layer=2, n_head=2, n_embd=64)
                cfg["input_adapter"]["parameters"]["output_size"] = 64
        torch.manual_seed(0)
        model = build_model(cfg).to(device).eval()
        process = make_process(cfg)
        shape = tuple(process.sample_shape(tuple(model.data_shape)))     # model.data_shape: the state's
        nfe = 3 if quick else 10
        for b in batches:
            params = torch.rand((b,) + tuple(model.data_shape), device=device)
            t = torch.full((b,), 0.5, device=device)

            def net():
                with torch.no_grad():
                    for _ in range(nfe):
                        model(params, t)

            def lib():
                x, info = sample(model, process, solver=solver, nfe=nfe, shape=(b,) + shape, device=device,
                                 generator=torch.Generator(device="cpu").manual_seed(0))
                return info.nfe

            calls = lib()
            net(), lib()
            lib_t, net_t = interleaved_times((lib, net), repeats, device)
            ratios = [x / (y * calls / nfe) for x, y in zip(lib_t, net_t)]
            row = {"preset": preset + (" (quick: tiny)" if quick else ""), "batch": b, "nfe": calls,
                   "sample": statistics.median(lib_t) / calls * 1e3, "net": statistics.median(net_t) / nfe * 1e3,
                   "ratio": statistics.median(ratios)}
            rows.append(row)
            print(f"{row['preset']} B={b} sample {row['sample']:.2f} ms/call net {row['net']:.2f} ms/call "
                  f"ratio {row['ratio']:.3f}", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batches", default="1,16,64")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--networks", action="store_true", help="also the official architectures (random weights)")
    ap.add_argument("--quick", action="store_true", help="tiny networks, few repeats (a smoke run)")
    args = ap.parse_args()
    if args.quick:
        args.repeats = min(args.repeats, 2)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.set_default_device(None)
    rows = []
    # every tensor is placed on the device explicitly: no ``with torch.device(...)`` (a torch-function mode that
    # intercepts every torch call, which would time the mode, not the sampler)
    for b in [int(x) for x in args.batches.split(",")]:
        for make in (continuous_case, discrete_case):
            rows.append(measure(make(b, device), device, args.repeats))
            r = rows[-1]
            print(f"{r['kind']:10s} {r['solver']:18s} B={r['shape'][0]:3d} lib {r['lib']:.3f} ms/step "
                  f"hand {r['hand']:.3f} ratio {r['ratio']:.2f} min ratio {r['lib_min'] / r['hand_min']:.2f} "
                  f"diff {r['diff']:.1e}", flush=True)
    batches = [int(x) for x in args.batches.split(",")]
    net_rows = network_rows(device, batches, args.repeats, args.quick) if args.networks else []
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or "cpu")
    lines = ["# Machinery per step: library vs a hand-written loop of the same update (zero-cost network)", "",
             f"Command: `python benchmarks/overhead.py {' '.join(sys.argv[1:])}`", "",
             f"Device: {device.type} ({name}), torch {torch.__version__}, threads {torch.get_num_threads()}, "
             f"{os.cpu_count()} logical CPUs; load average at end {' / '.join(f'{x:.2f}' for x in os.getloadavg())}.",
             "", f"{STEPS} steps, uniform grid 0.05..1, `lower_order_final=False`; medians of {args.repeats} "
             "interleaved (library, hand) pairs, each timed by the thread's CPU time on CPU (wall time on CUDA); "
             "ratio = median of the per-pair ratios; min ratio = fastest library run / fastest hand run.", "",
             "| data | solver | state shape | library ms/step | hand ms/step | library / hand (median) | "
             "library / hand (min) | max abs diff |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['kind']} | `{r['solver']}` | {'x'.join(map(str, r['shape']))} | {r['lib']:.3f} | "
                     f"{r['hand']:.3f} | {r['ratio']:.2f}x | {r['lib_min'] / r['hand_min']:.2f}x | {r['diff']:.1e} |")
    if net_rows:
        lines += ["", "## Official architectures (random weights): sample() per network call vs the bare forward", "",
                  "Default solver and grid for the data type; `sample` = sample() wall time / NFE (output distribution, "
                  "solver, readout and checks included), `net` = the bare forward at the same batch; "
                  "ratio = median of the per-pair ratios (1.00 = no sampler overhead).", "",
                  "| preset | batch | NFE | sample ms/call | net ms/call | sample / net |", "|---|---|---|---|---|---|"]
        lines += [f"| {r['preset']} | {r['batch']} | {r['nfe']} | {r['sample']:.2f} | {r['net']:.2f} | {r['ratio']:.3f} |"
                  for r in net_rows]
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
