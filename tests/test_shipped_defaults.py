"""benchmarks/shipped_defaults.py runs and writes its table (a small smoke run: one NFE, one seed, 16 samples)."""
import runpy
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "shipped_defaults.py"


def test_shipped_defaults_writes_a_row_per_checkpoint(tmp_path):
    mod = runpy.run_path(str(BENCH))
    main = mod["main"]
    g = main.__globals__
    g.update(NFES=(4,), SEEDS=(0,), SAMPLES=16, OUT=tmp_path / "out.md")
    main()
    text = (tmp_path / "out.md").read_text()
    for name in g["CHECKPOINTS"]:
        assert f"## {name}:" in text
    assert text.count("| 4 | ") == len(g["CHECKPOINTS"])
    assert text.count("Ours below the best published at ") == len(g["CHECKPOINTS"])
    # a rerun of one checkpoint keeps the others' rows as written (here: planted values, to see them kept)
    planted = text.replace("| 4 | ", "| 4 | 999.000 | 1.000 (x) | 999.00 |  OLD ", 1)
    (tmp_path / "out.md").write_text(planted)
    main(["--checkpoints", "text-discrete"])
    again = (tmp_path / "out.md").read_text()
    first = next(n for n in g["CHECKPOINTS"] if n != "text-discrete")
    section = lambda t, n: t.split(f"## {n}:")[1].split("\n## ")[0]
    assert "| 4 | 999.000 | 1.000 (x)" in section(again, first) and "OLD" not in section(again, "text-discrete")
    assert section(again, "text-discrete") == section(text, "text-discrete")     # the same seeds: the same rows
    assert "rows not rerun kept" in again
