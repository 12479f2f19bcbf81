"""MOSES-style metrics for generated SMILES (RDKit is imported lazily, on first use).

* validity: fraction of samples that are non-empty and that RDKit parses (``Chem.MolFromSmiles``);
* uniqueness: distinct canonical SMILES / valid samples;
* novelty: distinct canonical valid SMILES not in the reference (training) set / distinct valid;
* internal diversity: 1 - mean Tanimoto similarity of Morgan fingerprints (radius 2, 1024 bits) over
  the distinct pairs of up to ``max_n`` valid molecules (MOSES averages over all pairs including
  i = i; over distinct pairs the value is n / (n - 1) times larger minus 1 / (n - 1));
* Frechet ChemNet Distance (``fcd``): ``fcd_torch``'s ChemNet, whose weights ship in its wheel; without
  it, ``frechet_fingerprint_distance`` fits Gaussians to 1024-bit Morgan count-free bit vectors.
* property bins (``qed_classes``, ``hit_rate``): the class of a molecule is the number of thresholds
  its RDKit QED reaches; the hit rate of a target class is the fraction of valid samples in it.
Standard errors: binomial sqrt(p (1 - p) / n) for the fractions.
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np


def _chem():
    try:
        from rdkit import Chem, DataStructs, RDLogger
        from rdkit.Chem import rdFingerprintGenerator
    except ImportError as err:                         # pragma: no cover - depends on the environment
        raise ImportError('molecule metrics need RDKit: pip install rdkit (or "bfnsolvers[chem]")') from err
    RDLogger.DisableLog("rdApp.*")
    return Chem, DataStructs, rdFingerprintGenerator


def _check(smiles: Sequence[str], name: str = "smiles") -> list[str]:
    if isinstance(smiles, str) or not all(isinstance(s, str) for s in smiles):
        raise ValueError(f"{name} must be a list of strings")
    return list(smiles)


def canonical(smiles: Sequence[str]) -> list[str | None]:
    """RDKit canonical SMILES of each sample, None where it is empty or does not parse."""
    Chem, _, _ = _chem()
    out: list[str | None] = []
    for s in _check(smiles):
        m = Chem.MolFromSmiles(s) if s else None
        out.append(None if m is None or m.GetNumAtoms() == 0 else Chem.MolToSmiles(m))
    return out


def binomial_se(p: float, n: int) -> float:
    """Standard error sqrt(p (1 - p) / n) of a fraction p of n trials (nan for n = 0)."""
    return math.sqrt(p * (1 - p) / n) if n else float("nan")


def morgan_fingerprints(smiles: Iterable[str], radius: int = 2, bits: int = 1024) -> list:
    """Morgan bit-vector fingerprints (RDKit ExplicitBitVect) of valid SMILES."""
    Chem, _, gen = _chem()
    g = gen.GetMorganGenerator(radius=radius, fpSize=bits)
    return [g.GetFingerprint(Chem.MolFromSmiles(s)) for s in smiles]


def internal_diversity(smiles: Sequence[str], max_n: int = 1000, seed: int = 0) -> float:
    """1 - mean Tanimoto(fp_i, fp_j) over distinct pairs of (up to max_n, a seeded subset of) valid SMILES."""
    _, DataStructs, _ = _chem()
    smiles = _check(smiles)
    if len(smiles) > max_n:
        idx = np.random.default_rng(seed).choice(len(smiles), max_n, replace=False)
        smiles = [smiles[i] for i in sorted(idx)]
    fps = morgan_fingerprints(smiles)
    if len(fps) < 2:
        return float("nan")
    total, pairs = 0.0, 0
    for i in range(1, len(fps)):
        sims = DataStructs.BulkTanimotoSimilarity(fps[i], fps[:i])
        total, pairs = total + sum(sims), pairs + len(sims)
    return 1.0 - total / pairs


def fingerprint_features(smiles: Sequence[str]) -> np.ndarray:
    """(N, 1024) float array of Morgan (radius 2) bits, the features of the fingerprint Frechet distance."""
    _, DataStructs, _ = _chem()
    out = np.zeros((len(smiles), 1024), dtype=np.float64)
    for i, fp in enumerate(morgan_fingerprints(smiles)):
        DataStructs.ConvertToNumpyArray(fp, out[i])
    return out


def frechet_fingerprint_distance(smiles: Sequence[str], reference: Sequence[str]) -> float:
    """Squared Frechet distance between Gaussians fitted to Morgan-bit features of two sets of valid SMILES
    (not FCD: no ChemNet)."""
    from .images import frechet_distance
    return frechet_distance(fingerprint_features(smiles), fingerprint_features(reference))


class FCDStats:
    """Frechet ChemNet Distance (Preuer et al. 2018) with ``fcd_torch``'s ChemNet (weights in its wheel):
    reference statistics computed once, then ``distance(smiles)`` for each sample set."""

    def __init__(self, reference: Sequence[str], device: str = "cpu"):
        try:
            from fcd_torch import FCD
        except ImportError as err:
            raise ImportError("FCD needs fcd_torch (pip install fcd_torch==1.0.7; it ships ChemNet's weights)") from err
        self.fcd = FCD(device=device, n_jobs=1)
        self.ref = self.fcd.precalc(_check(reference, "reference"))

    def distance(self, smiles: Sequence[str]) -> float:
        """FCD between valid SMILES and the reference set (nan for fewer than 2)."""
        smiles = _check(smiles)
        if len(smiles) < 2:
            return float("nan")
        return float(self.fcd(gen=smiles, pref=self.ref))


def molecule_metrics(samples: Sequence[str], train: set[str] | None = None, max_div: int = 1000) -> dict:
    """validity, uniqueness, novelty (vs ``train``, canonical SMILES), internal diversity, with binomial
    standard errors, and the list of valid canonical SMILES under "valid_smiles"."""
    samples = _check(samples, "samples")
    if not samples:
        raise ValueError("samples must not be empty")
    if train is not None and not isinstance(train, (set, frozenset)):
        raise ValueError("train must be a set of canonical SMILES (or None)")
    canon = [c for c in canonical(samples) if c is not None]
    uniq = sorted(set(canon))
    n, v, u = len(samples), len(canon), len(uniq)
    out = {"n": n, "valid": v, "unique": u, "validity": v / n, "validity_se": binomial_se(v / n, n),
           "uniqueness": u / v if v else float("nan"), "uniqueness_se": binomial_se(u / v, v) if v else float("nan"),
           "int_div": internal_diversity(uniq, max_div) if u >= 2 else float("nan")}
    if train is not None:
        novel = sum(s not in train for s in uniq)
        out.update(novel=novel, novelty=novel / u if u else float("nan"),
                   novelty_se=binomial_se(novel / u, u) if u else float("nan"))
    out["valid_smiles"] = canon
    return out


def qed_values(smiles: Sequence[str]) -> list[float]:
    """RDKit QED (Bickerton et al. 2012, ``rdkit.Chem.QED.qed``) of each valid SMILES."""
    Chem, _, _ = _chem()
    from rdkit.Chem import QED
    out = []
    for s in _check(smiles):
        m = Chem.MolFromSmiles(s) if s else None
        if m is None:
            raise ValueError(f"smiles: {s!r} is not a valid SMILES")
        out.append(QED.qed(m))
    return out



def _bins(values: Sequence[float], thresholds: Sequence[float]) -> list[int]:
    th = [float(x) for x in thresholds]
    if not th or any(a >= b for a, b in zip(th, th[1:])):
        raise ValueError(f"thresholds must be a non-empty increasing sequence, got {thresholds!r}")
    import bisect
    return [bisect.bisect_right(th, q) for q in values]


def qed_classes(smiles: Sequence[str], thresholds: Sequence[float]) -> list[int]:
    """Class of each valid SMILES: #{thresholds <= QED} (thresholds increasing), i.e. 0 .. len(thresholds)."""
    return _bins(qed_values(smiles), thresholds)


def hit_rate(valid_smiles: Sequence[str], thresholds: Sequence[float], target: int) -> dict:
    """Fraction of valid samples whose QED class is ``target`` (with its binomial SE) and their mean QED."""
    if isinstance(target, bool) or not isinstance(target, int) or not 0 <= target <= len(thresholds):
        raise ValueError(f"target must be a class in 0..{len(thresholds)}, got {target!r}")
    q = qed_values(valid_smiles)
    hits, v = sum(c == target for c in _bins(q, thresholds)), len(q)
    return {"hits": hits, "hit_rate": hits / v if v else float("nan"),
            "hit_rate_se": binomial_se(hits / v, v) if v else float("nan"),
            "qed_mean": sum(q) / v if v else float("nan")}
