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


def test_qed_is_the_weighted_geometric_mean_of_the_desirabilities():
    """QED = exp(sum_i w_i ln d_i(p_i) / sum_i w_i) over the eight properties (Bickerton et al. 2012), recomputed
    from RDKit's desirability functions (asymmetric double sigmoids) and the mean weights."""
    from rdkit import Chem
    from rdkit.Chem import QED

    from bfnsolvers.metrics.molecules import qed_values
    smiles = ["CCO", "CC(=O)Oc1ccccc1C(=O)O", "CC(=O)Nc1ccc(O)cc1", "c1ccccc1"]
    for s, q in zip(smiles, qed_values(smiles)):
        p = QED.properties(Chem.MolFromSmiles(s))
        w = QED.WEIGHT_MEAN
        d = [QED.ads(x, QED.adsParameters[k]) for k, x in p._asdict().items()]
        ref = math.exp(sum(wi * math.log(di) for wi, di in zip(w, d)) / sum(w))
        assert math.isclose(q, ref, rel_tol=1e-12)


def test_qed_classes_and_hit_rate_by_hand():
    from bfnsolvers.metrics.molecules import hit_rate, qed_classes, qed_values
    # QED: ethanol 0.407, benzene 0.443, aspirin 0.550, paracetamol 0.595
    smiles = ["CCO", "c1ccccc1", "CC(=O)Oc1ccccc1C(=O)O", "CC(=O)Nc1ccc(O)cc1"]
    q = qed_values(smiles)
    assert q == sorted(q)
    assert qed_classes(smiles, [0.5, 0.58]) == [0, 0, 1, 2]
    assert qed_classes(smiles, [q[2], 0.9]) == [0, 0, 1, 1]          # a QED equal to a threshold reaches it
    r = hit_rate(smiles, [0.5, 0.58], 0)
    assert (r["hits"], r["hit_rate"]) == (2, 0.5) and math.isclose(r["hit_rate_se"], 0.25)
    assert math.isclose(r["qed_mean"], sum(q) / 4)
    assert math.isnan(hit_rate([], [0.5], 1)["hit_rate"])
    with pytest.raises(ValueError, match="thresholds"):
        qed_classes(smiles, [0.6, 0.5])
    with pytest.raises(ValueError, match="target"):
        hit_rate(smiles, [0.5, 0.58], 3)
    with pytest.raises(ValueError, match="smiles"):
        qed_values(["C1CC"])


def test_training_labels_match_the_metric_classes():
    """benchmarks/chembfn/train.py labels molecules with torch.bucketize(right=True): the same classes."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks" / "chembfn"))
    from train import qed_classes as train_classes

    from bfnsolvers.metrics.molecules import qed_classes, qed_values
    smiles = ["CCO", "c1ccccc1", "CC(=O)Oc1ccccc1C(=O)O", "CC(=O)Nc1ccc(O)cc1"]
    q = qed_values(smiles)
    for th in ([0.5, 0.58], [q[1], q[2]], [0.1, 0.2], [0.9, 0.95]):
        assert train_classes(smiles, th).tolist() == qed_classes(smiles, th)
