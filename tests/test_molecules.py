"""MOSES-style molecule metrics (bfnsolvers.metrics.molecules) on hand-checked SMILES."""
import math

import pytest

pytest.importorskip("rdkit", reason="molecule metrics need RDKit")
from bfnsolvers.metrics.molecules import (canonical, frechet_fingerprint_distance, internal_diversity,  # noqa: E402
                                          molecule_metrics)


def test_counts_by_hand():
    samples = ["CCO", "OCC", "c1ccccc1", "C1CC", "", "CC(=O)Nc1ccc(O)cc1", "xyz"]
    assert canonical(samples) == ["CCO", "CCO", "c1ccccc1", None, None, "CC(=O)Nc1ccc(O)cc1", None]
    m = molecule_metrics(samples, train={"CCO"})
    assert (m["n"], m["valid"], m["unique"], m["novel"]) == (7, 4, 3, 2)
    assert m["validity"] == 4 / 7 and m["uniqueness"] == 3 / 4 and m["novelty"] == 2 / 3
    assert math.isclose(m["validity_se"], math.sqrt(4 / 7 * 3 / 7 / 7))


def test_internal_diversity():
    assert internal_diversity(["CCO", "CCO"]) == 0.0            # identical fingerprints
    far = internal_diversity(["CCO", "c1ccccc1"])
    assert 0.9 < far <= 1.0
    assert internal_diversity(["CCO", "CCCO", "c1ccccc1"]) < far


def test_fingerprint_frechet_is_zero_on_itself_and_positive_otherwise():
    a = ["CCO", "CCN", "c1ccccc1", "CC(=O)O", "CCCC", "c1ccncc1"]
    assert abs(frechet_fingerprint_distance(a, a)) < 1e-6
    assert frechet_fingerprint_distance(a, ["CCCCCCCC", "CCCCCCCN", "CCCCCCO", "OCCCCCO"]) > 1.0


def test_bad_input():
    with pytest.raises(ValueError, match="samples"):
        molecule_metrics([])
    with pytest.raises(ValueError, match="train"):
        molecule_metrics(["CCO"], train=["CCO"])
    with pytest.raises(ValueError, match="smiles"):
        canonical("CCO")
