"""The README's first screen and the docs stay true: commands, examples, links, the picture."""
from __future__ import annotations

import re
import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
DOCS = sorted((ROOT / "docs").glob("*.md"))
INSTALL = 'pip install "torch==2.13.0" -e ".[test,data,triton]" && bfnsolvers'
TEST = "python -m pytest -q"


def _blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, re.S)


def test_first_screen() -> None:
    screen = "\n".join(README.splitlines()[:60])
    commands = [line.split("#")[0].strip() for line in _blocks(screen, "bash")[0].splitlines()]
    assert commands == [INSTALL, TEST]
    assert README.splitlines()[2] == "```bash"  # the commands come first, after the one-line title
    assert "](docs/samples.png)" in screen and "| `bfn` |" in screen and "Which solver should I use" in screen
    assert "Time direction" in screen and _blocks(screen, "python")


def test_ci_runs_the_readme_commands() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'pip install -q "torch==2.13.0" -e ".[test,data,triton]"' in ci
    assert [line for line in ci.splitlines() if "pytest" in line] == [TEST]


def test_every_registered_solver_is_in_the_readme_table() -> None:
    from bfnsolvers.solvers import SOLVERS

    table = "\n".join(line for line in README.splitlines() if line.startswith("| `"))
    missing = [name for name in SOLVERS if f"`{name}`" not in table]
    assert not missing, f"solvers missing from the README's table: {missing}"


def test_picture_is_a_png() -> None:
    assert (ROOT / "docs" / "samples.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("path", [ROOT / "README.md", *DOCS], ids=lambda p: p.name)
def test_relative_links_resolve(path: Path) -> None:
    for target in re.findall(r"\]\(([^)#]+)\)", path.read_text()):
        if not target.startswith(("http://", "https://")):
            assert (path.parent / target).exists(), f"{path.name}: broken link {target}"


@pytest.mark.parametrize("path", [ROOT / "README.md", ROOT / "docs" / "plug-in-your-model.md"], ids=lambda p: p.name)
def test_python_examples_run(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    for i, block in enumerate(_blocks(path.read_text(), "python")):
        script = tmp_path / f"example{i}.py"
        script.write_text(block)
        runpy.run_path(str(script), run_name="__main__")
        printed = capsys.readouterr().out
        for expected in re.findall(r"print\(.*\)\s+# (torch\.Size.*)$", block, re.M):
            assert printed.strip().splitlines()[-1] == expected.strip(), (path.name, printed)


def test_stale_third_order_claim_points_at_a_test() -> None:
    conventions = (ROOT / "docs" / "conventions.md").read_text()
    assert "tests/test_third_order.py -s" in conventions
    assert "2.35" in conventions and "3.04" in conventions
