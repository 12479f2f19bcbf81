"""The bench: NFE-vs-quality sweeps and their reports.

``targets`` (what is sampled and how it is scored) -> ``sweep`` (plan and run cells; ``distributed`` and
``provenance`` help) -> ``results`` (the JSONL file) -> ``report`` (tables and plots); ``cli`` is the
command line's face (``bfnsolvers sweep`` / ``bfnsolvers report``).
"""
from .report import REPORT_FILE, Speedup, render_report, results_table, speedups
from .results import RESULTS_FILE, SweepLockedError, read_results
from .sweep import batch_seed, run_sweep
from .targets import Metric, SweepTarget, oracle_target, resolve_target

__all__ = ["Metric", "REPORT_FILE", "RESULTS_FILE", "Speedup", "SweepLockedError", "SweepTarget", "batch_seed",
           "oracle_target", "read_results", "render_report", "resolve_target", "results_table", "run_sweep",
           "speedups"]
