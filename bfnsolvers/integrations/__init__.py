"""Integrations with third-party BFN packages; each is an optional extra, imported on demand:

* ``bfnsolvers.integrations.chembfn`` -- ChemBFN (``bayesianflow_for_chem``, ``pip install "bfnsolvers[chem]"``).
"""
