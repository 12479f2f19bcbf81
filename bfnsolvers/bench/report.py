"""Render a sweep's ``results.jsonl`` as ``report.md`` with one quality-vs-NFE PNG per metric.

Per target: a table per metric (rows solvers, columns NFE, mean over seeds +- sample std),
the noise floor (the metric between two independent exact/real sample sets of the same
size), samples/s, and the speedup of each solver over the original sampler ``bfn``: the
smallest NFE at which its quality first matches ``bfn``'s at NFE 1000 (or ``bfn``'s largest
NFE), with the ratio of NFE actually spent; ">max" if it never does in the sweep.
"""
from __future__ import annotations

import math
import re
import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from .results import RESULTS_FILE, read_results, results_path

__all__ = ["REPORT_FILE", "Speedup", "render_report", "results_table", "speedups"]

REPORT_FILE = "report.md"


def _row(rec: dict) -> str:
    name = rec.get("config_name") or "default"
    return rec["solver"] if name == "default" else f"{rec['solver']} [{name}]"


def _ok(rec: dict) -> bool:
    return rec.get("status", "ok") == "ok" and isinstance(rec.get("metrics"), dict)


def _mean_std(values: list[float]) -> tuple[float, float | None]:
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not values:
        return math.nan, None
    mean = statistics.fmean(values)
    return mean, (statistics.stdev(values) if len(values) > 1 else None)


def _fmt(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.4g}"


def _spec(records: list[dict], metric: str) -> dict:
    for r in records:
        spec = (r.get("metric_spec") or {}).get(metric)
        if spec:
            return spec
    return {"label": metric, "better": "lower", "log_scale": False}


def _metric_names(records: list[dict]) -> list[str]:
    names: list[str] = []
    primary = next((r.get("primary_metric") for r in records if r.get("primary_metric")), None)
    if primary:
        names.append(primary)
    for r in records:
        for m in (r.get("metrics") or {}):
            if m not in names:
                names.append(m)
    return names


def _floor(records: list[dict], metric: str, field: str = "noise_floor") -> float | None:
    """Mean over seeds of the noise floor (it depends only on seed and sample size), or of its std."""
    per_seed = {}
    for r in records:
        value = (r.get(field) or {}).get(metric)
        if value is not None:
            per_seed[(r.get("seed"), r.get("samples"))] = value
    return statistics.fmean(per_seed.values()) if per_seed else None


def results_table(records: list[dict], metric: str, *, value: Callable[[float], float] | None = None,
                  key: Callable[[dict], Any] | None = None) -> dict[Any, dict[int, tuple[float, float | None, float]]]:
    """row -> nominal NFE -> (mean over seeds, sample std or None, mean NFE spent) of ``metric`` over the
    finished cells (status "ok"). value: applied to each cell's value before the mean (e.g. ``abs``);
    key: a record's row (default: the solver, "solver [config]" for a named extra config)."""
    key = key or _row
    groups: dict[tuple[Any, int], list[dict]] = defaultdict(list)
    for r in records:
        if _ok(r) and metric in r["metrics"]:
            groups[(key(r), int(r["nfe"]))].append(r)
    out: dict[Any, dict[int, tuple[float, float | None, float]]] = defaultdict(dict)
    for (row, nfe), recs in groups.items():
        vals = [r["metrics"][metric] for r in recs]
        mean, std = _mean_std([value(v) for v in vals] if value else vals)
        spent = statistics.fmean([r.get("nfe_spent") or r["nfe"] for r in recs])
        out[row][nfe] = (mean, std, spent)
    return out


def _score(value: float, better: str, floor: float | None) -> float:
    """Smaller is better."""
    if better == "higher":
        return -value
    if better == "zero":
        return abs(value)
    if better == "floor":
        return abs(value - floor) if floor is not None else value
    return value


@dataclass
class Speedup:
    """NFE at which a solver first matches the baseline's quality at its reference NFE."""

    row: str
    nfe: int | None  # nominal NFE of the first match; None: never matched in the sweep
    nfe_spent: float | None
    ratio: float | None  # baseline NFE spent / this NFE spent
    max_nfe: int

    ref_spent: float = math.nan  # the baseline's NFE spent at its reference NFE
    max_spent: float = math.nan  # this row's NFE spent at its largest NFE

    def text(self) -> tuple[str, str]:
        if self.nfe is None:
            return f">{self.max_nfe}", f"<{self.ref_spent / self.max_spent:.3g}x"
        return str(self.nfe), f"{self.ratio:.3g}x"


def speedups(records: list[dict], metric: str, baseline: str = "bfn",
             reference_nfe: int = 1000) -> tuple[tuple[int, float, float] | None, dict[str, Speedup]]:
    """((reference NFE, its NFE spent, baseline quality), {row: Speedup}) for one target's records."""
    table = results_table(records, metric)
    if baseline not in table or not table[baseline]:
        return None, {}
    spec = _spec(records, metric)
    floor = _floor(records, metric)
    base = table[baseline]
    ref = reference_nfe if reference_nfe in base else max(base)
    base_mean, _, base_spent = base[ref]
    target = _score(base_mean, spec["better"], floor)
    result = {}
    for row, cols in table.items():
        hit = next((n for n in sorted(cols) if not math.isnan(cols[n][0])
                    and _score(cols[n][0], spec["better"], floor) <= target), None)
        top = max(cols)
        if hit is None:
            result[row] = Speedup(row, None, None, None, top, base_spent, cols[top][2])
        else:
            spent = cols[hit][2]
            result[row] = Speedup(row, hit, spent, base_spent / spent, top, base_spent, cols[top][2])
    return (ref, base_spent, base_mean), result


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")


def _plot(records: list[dict], metric: str, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    spec = _spec(records, metric)
    absolute = spec["better"] == "zero"
    floor = _floor(records, metric)
    table = results_table(records, metric)
    fig, ax = plt.subplots(figsize=(9, 5))
    kinds = {_row(r): (r.get("config") or {}).get("solver_kind") for r in records}
    colours = plt.get_cmap("tab20").colors
    values = []
    for i, row in enumerate(sorted(table, key=lambda r: (not r.startswith("bfn ") and r != "bfn", r))):
        cols = table[row]
        nfes = sorted(cols)
        ys = [abs(cols[n][0]) if absolute else cols[n][0] for n in nfes]
        errs = [cols[n][1] or 0.0 for n in nfes]
        values += ys
        style = {"color": colours[(2 * i) % 20 + (2 * i // 20) % 2], "linestyle": "-." if kinds.get(row) == "sde" else "-"}
        if row == "bfn" or row.startswith("bfn ["):
            style.update(color="black" if row == "bfn" else "dimgrey", linewidth=2.2)
        if any(errs):
            ax.errorbar(nfes, ys, yerr=errs, marker="o", markersize=3, capsize=2, label=row, **style)
        else:
            ax.plot(nfes, ys, marker="o", markersize=3, label=row, **style)
    if floor is not None:
        f = abs(floor) if absolute else floor
        values.append(f)
        ax.axhline(f, color="grey", linestyle="--", linewidth=1.2, label="noise floor (exact vs exact)")
        spread = _floor(records, metric, "noise_floor_std")
        if spread:
            ax.axhspan(f - spread, f + spread, color="grey", alpha=0.12, linewidth=0)
    ax.set_xscale("log")
    ticks = sorted({n for cols in table.values() for n in cols})
    ax.set_xticks(ticks, [str(n) for n in ticks])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if (spec.get("log_scale") or absolute) and finite and min(finite) > 0:
        ax.set_yscale("log")
    ax.set_xlabel("NFE")
    ax.set_ylabel(("|" + metric + "|") if absolute else metric)
    ax.set_title(f"{title}\n{spec['label']}", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _distinct(records: Iterable[dict], get) -> list:
    seen = []
    for r in records:
        try:
            v = get(r)
        except (KeyError, TypeError):
            continue
        if v is not None and v not in seen:
            seen.append(v)
    return seen


def _config_lines(recs: list[dict]) -> list[str]:
    cfg = lambda key: _distinct(recs, lambda r: r["config"][key])  # noqa: E731
    join = lambda vals: ", ".join(f"`{v}`" for v in vals) or "-"  # noqa: E731
    t_starts = defaultdict(set)
    for r in recs:
        if isinstance(r.get("config"), dict) and "t_start" in r["config"]:
            t_starts[r["config"]["t_start"]].add(r["solver"])
    lines = [
        f"- samples per cell: {join(_distinct(recs, lambda r: r['samples']))}; seeds: "
        f"{join(sorted(_distinct(recs, lambda r: r['seed'])))}; batch size: {join(cfg('batch_size'))}",
        f"- schedule: {join(cfg('schedule'))}; final: {join(cfg('final'))}; readout: {join(cfg('readout'))}; "
        f"dtype: {join(cfg('dtype'))}",
    ]
    if t_starts:
        lines.append("- t_start: " + "; ".join(f"`{t}` ({', '.join(sorted(s))})" for t, s in sorted(t_starts.items())))
    models = cfg("model")
    if models:
        lines.append(f"- model: {join(models)}; process: {join(cfg('process'))}")
    machines = _distinct(recs, lambda r: (r["machine"]["cpu"], r["machine"]["cpu_count"], r["machine"]["torch_threads"],
                                          r["machine"]["world_size"], r["machine"]["device"], r["machine"]["platform"]))
    for cpu, count, threads, world, device, plat in machines:
        lines.append(f"- machine: {cpu} ({count} cores), torch threads {threads}, ranks {world}, device {device}, {plat}")
    for v in _distinct(recs, lambda r: r["versions"]):
        lines.append("- versions: " + ", ".join(f"{k} {val}" for k, val in v.items()))
    mem = _distinct(recs, lambda r: r["memory"]["kind"])
    if mem:
        peak = max(r["memory"]["peak_bytes"] for r in recs if isinstance(r.get("memory"), dict))
        lines.append(f"- peak memory (largest cell): {peak / 2 ** 20:.1f} MiB; measured as: {join(mem)}")
    walls = [r["timing"]["wall_time_s"] for r in recs if isinstance(r.get("timing"), dict)]
    if walls:
        lines.append(f"- total sampling wall time: {sum(walls):.1f} s over {len(walls)} cells")
    for note in _distinct(recs, lambda r: r["noise_floor_method"]):
        lines.append(f"- noise floor: {note}")
    for c in _distinct(recs, lambda r: r["command"]):
        lines.append(f"- command: `{c}`")
    return lines


def _section(target: str, recs: list[dict], out: Path, baselines: list[str], reference_nfe: int,
             single: bool) -> list[str]:
    nfes = sorted({int(r["nfe"]) for r in recs})
    rows = sorted({_row(r) for r in recs}, key=lambda r: (not r.startswith("bfn ") and r != "bfn", r))
    md = [f"## {target}", "", *_config_lines(recs), ""]
    metrics = _metric_names(recs)
    for baseline in baselines if metrics else []:
        primary = metrics[0]
        spec = _spec(recs, primary)
        ref, _ = speedups(recs, primary, baseline, reference_nfe)
        md += [f"### Speedup over `{baseline}` ({primary}: {spec['label']}, better: {spec['better']})", ""]
        if ref is None:
            md += [f"No `{baseline}` cells: no speedup.", ""]
        else:
            md += [f"`{baseline}` at NFE {ref[0]} (spent {ref[1]:g}): {primary} = {_fmt(ref[2])}. A solver matches it at the "
                   f"smallest NFE whose mean {primary} is at least as good; speedup = {ref[1]:g} / NFE spent there.", ""]
            floor, spread = _floor(recs, primary), _floor(recs, primary, "noise_floor_std")
            if floor is not None and spread and abs(_score(ref[2], spec["better"], floor)
                                                     - _score(floor, spec["better"], floor)) < spread:
                md += [f"Note: this is within one std ({_fmt(spread)}) of the noise floor ({_fmt(floor)}), so which NFE "
                       "first matches it is decided by sampling noise; more samples or seeds would sharpen it.", ""]
            md += ["| solver | " + " | ".join(f"{m}: NFE to match | speedup" for m in metrics) + " |",
                   "|---|" + "---|---|" * len(metrics)]
            per_metric = {m: speedups(recs, m, baseline, reference_nfe)[1] for m in metrics}
            for row in rows:
                cells = []
                for m in metrics:
                    s = per_metric[m].get(row)
                    cells += list(s.text()) if s else ["-", "-"]
                md.append(f"| {row} | " + " | ".join(cells) + " |")
            md.append("")
    for metric in metrics:
        spec = _spec(recs, metric)
        table = results_table(recs, metric)
        floor = _floor(recs, metric)
        md += [f"### {metric}: {spec['label']} (better: {spec['better']})", "",
               "| solver | " + " | ".join(str(n) for n in nfes) + " |", "|---|" + "---:|" * len(nfes)]
        errors = {(_row(r), int(r["nfe"])) for r in recs if not _ok(r)}
        for row in rows:
            cells = []
            for n in nfes:
                if n in table.get(row, {}):
                    mean, std, _ = table[row][n]
                    cells.append(_fmt(mean) + (f" ± {_fmt(std)}" if std is not None else ""))
                else:
                    cells.append("err" if (row, n) in errors else "")
            md.append(f"| {row} | " + " | ".join(cells) + " |")
        if floor is not None:
            spread = _floor(recs, metric, "noise_floor_std")
            text = _fmt(floor) + (f" ± {_fmt(spread)}" if spread is not None else "")
            md.append("| *noise floor* | " + " | ".join(text for _ in nfes) + " |")
        png = f"{metric}.png" if single else f"{_slug(target)}_{metric}.png"
        _plot(recs, metric, out / png, target)
        md += ["", f"![{target} {metric}]({png})", ""]
    sps = defaultdict(list)
    for r in recs:
        if _ok(r) and (r.get("timing") or {}).get("samples_per_s"):
            sps[(_row(r), int(r["nfe"]))].append(r["timing"]["samples_per_s"])
    if sps:
        md += ["### Samples per second", "", "| solver | " + " | ".join(str(n) for n in nfes) + " |",
               "|---|" + "---:|" * len(nfes)]
        for row in rows:
            md.append(f"| {row} | " + " | ".join(_fmt(statistics.fmean(sps[(row, n)])) if sps.get((row, n)) else ""
                                                  for n in nfes) + " |")
        md.append("")
    bad = [r for r in recs if not _ok(r)]
    if bad:
        md += ["### Cells with errors", ""]
        md += [f"- {_row(r)} NFE {r['nfe']} seed {r['seed']}: {r.get('error', 'no metrics')}" for r in bad[:20]]
        md.append("")
    return md


def render_report(out_dir: str | Path, *, baseline: str | Sequence[str] | None = None,
                  reference_nfe: int = 1000) -> str:
    """Write ``out_dir/report.md`` and one PNG per (target, metric); return the markdown.

    baseline: the row(s) speedups are measured against: a solver, or "solver [config]"
    for a named extra config; one speedup table per baseline. None: ``bfn`` under every
    config it was swept with.
    """
    out = Path(out_dir)
    records = read_results(out) if results_path(out).is_file() else []
    records = list({r.get("key", id(r)): r for r in records}.values())  # a re-run cell: its last line counts
    if baseline is None:
        baselines = sorted({_row(r) for r in records if r.get("solver") == "bfn"}, key=lambda r: (r != "bfn", r))
        baselines = baselines or ["bfn"]
    else:
        baselines = [baseline] if isinstance(baseline, str) else list(baseline)
    if not baselines or not all(isinstance(b, str) and b for b in baselines):
        raise ValueError(f"baseline must be a row name or a list of them, got {baseline!r}")
    if not isinstance(reference_nfe, int) or reference_nfe < 1:
        raise ValueError(f"reference_nfe must be a positive integer, got {reference_nfe!r}")
    if not results_path(out).is_file():
        raise ValueError(f"out_dir: no {RESULTS_FILE} in {str(out)!r}")
    if not records:
        raise ValueError(f"out_dir: {str(results_path(out))!r} holds no complete records")
    by_target: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        by_target[r.get("target", "?")].append(r)
    md = [f"# NFE vs quality: {out.name}", "",
          f"{len(records)} cells from `{RESULTS_FILE}`. Tables: mean over seeds (± sample std when there are several "
          "seeds). Noise floor: the same metric between two independent exact (oracle) or real (data) sample sets of "
          "the same size (± the std over replicate sets where there are several). Plots: log NFE axis, one line per "
          "solver, the noise floor dashed (its ±1 std band shaded).", ""]
    for target, recs in by_target.items():
        md += _section(target, recs, out, baselines, reference_nfe, len(by_target) == 1)
    text = "\n".join(md).rstrip() + "\n"
    (out / REPORT_FILE).write_text(text)
    return text
