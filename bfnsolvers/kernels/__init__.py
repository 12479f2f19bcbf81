"""``bfnsolvers.kernels`` in a source checkout (PYTHONPATH): the code lives in the top-level ``kernels/`` folder.

An installed wheel maps that folder to ``bfnsolvers.kernels`` itself (pyproject.toml ``package-dir``), so this
file is not shipped; here it only points the package's search path at ``kernels/`` and runs that folder's
``__init__.py`` in this namespace. Nothing imports a top-level ``kernels``.
"""
from pathlib import Path as _Path

__path__ = [str(_Path(__file__).resolve().parents[2] / "kernels")]
_init = _Path(__path__[0]) / "__init__.py"
exec(compile(_init.read_text(), str(_init), "exec"))
del _Path, _init
