"""Sample-quality metrics: against exact oracles (oracle_metrics), digits images (images), text (text)."""

from .images import digits_fd, frechet_distance, frechet_distance_gaussians, inception_fid, load_digits_classifier
from .oracle_metrics import (
    ModeCoverage,
    gmm_log_prob,
    gmm_nll,
    markov_bigram_probs,
    markov_bigram_tv,
    markov_chain_nll,
    markov_entropy_rate,
    markov_nll_gap,
    mode_coverage,
    sliced_wasserstein2,
)
from .text import CharNGram, load_vocabulary, spelling_accuracy

__all__ = [
    "CharNGram",
    "ModeCoverage",
    "digits_fd",
    "frechet_distance",
    "frechet_distance_gaussians",
    "gmm_log_prob",
    "gmm_nll",
    "inception_fid",
    "load_digits_classifier",
    "load_vocabulary",
    "markov_bigram_probs",
    "markov_bigram_tv",
    "markov_chain_nll",
    "markov_entropy_rate",
    "markov_nll_gap",
    "mode_coverage",
    "sliced_wasserstein2",
    "spelling_accuracy",
]
