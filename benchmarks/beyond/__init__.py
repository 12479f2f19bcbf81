"""Issue "beyond the published solvers": published configurations vs log-SNR grids with a start rule.

Published (our faithful ports, parity-tested): uniform-in-t grid from eta (0.01 continuous,
0.001 discrete), start z ~ N(0, s(eta)^2), last step replaced by x0_hat ("drop").
Ours: uniform-in-lambda grid spanning lambda(1) - span .. lambda(1) (span in {7, 8, 9} half-log-SNR
units, the same for every NFE; 9 was ``sample()``'s default when these ran, ``bfnsolvers.defaults.DEFAULT_SPAN``; continuous data now use
``CONTINUOUS_START_RULE``, chosen on the mixture family: ``benchmarks/families.py``), lower order at the final steps, final step "denoise" (one call at
t = 1) or "drop" (x0_hat at the last-but-one time). (A first pass with a fixed lambda_start showed
that a fixed start value does not transfer across processes: lambda(1) is 6.9 for the continuous
oracle and -1.9 for the text8-like chain; a fixed span does.) Also our solvers on the uniform and
quadratic grids from the published eta. Discrete data (Markov oracle, text model): our solvers polynomial
in t on the uniform grid (with and without lower order at the final steps), on the quadratic-start grid and
on grids calibrated to the model (``bfnsolvers.calibrate``, pilot start states apart from the scored ones),
the last two with the final call at t = 1; the Markov oracle is scored on two metrics (entropy gap and
adjacent-pair TV). Reference: the original sampler `bfn` at NFE 1000 on its uniform grid.

    python -m benchmarks.beyond            # writes benchmarks/results/beyond-<problem>/
    python -m benchmarks.beyond plateau    # writes benchmarks/results/plateau-<problem>/
    python -m benchmarks.beyond trajectory # writes benchmarks/results/beyond-trajectory.md
    python -m benchmarks.beyond chains     # writes benchmarks/results/beyond-chains.md
    python -m benchmarks.beyond calibration # writes benchmarks/results/beyond-calibration.md
    python -m benchmarks.beyond models     # digits / text checkpoints: writes benchmarks/results/beyond-<name>/

The models' original-sampler references come from their NFE sweeps (benchmarks/checkpoints.sh), which use
the same sample count, seed and per-batch seeds.

One module per experiment: ``oracles`` (the sweeps and ``beyond.md``), ``plateau``, ``trajectory``,
``calibration``, ``chains``, ``models``; ``common`` holds what they share; ``__main__`` is the front door.
"""
