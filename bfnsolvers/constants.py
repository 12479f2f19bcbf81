"""Numbers and bin grids of the processes (t_min, the discretised sigma clamp, bin centres and edges), one copy
that the processes, the output distributions and the fused kernels (``bfnsolvers.kernels``) all import.

A leaf module (it imports torch only), so that the kernels at the bottom of the house can import it.
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["SIGMA_X_MAX", "SIGMA_X_MIN", "T_MIN", "bin_centres", "bin_edges"]

#: Default t_min of the continuous and discretised processes: below it the data prediction is 0
#: (the network output is not trusted at t ~ 0; bfn-math.md section 1).
T_MIN = 1e-6
#: The clamp of the discretised output's sigma_x (the official code's).
SIGMA_X_MIN, SIGMA_X_MAX = 1e-3, 10.0


def bin_centres(num_bins: int, dtype: torch.dtype = torch.float32, device=None) -> Tensor:
    """Centres k_c = (2k - 1)/K - 1, k = 1..K, of K equal bins on [-1, 1] (BFN eq. 88)."""
    k = torch.arange(1, num_bins + 1, dtype=dtype, device=device)
    return (2 * k - 1) / num_bins - 1


def bin_edges(num_bins: int, dtype: torch.dtype = torch.float32, device=None) -> Tensor:
    """Interior edges e_j = -1 + 2j/K, j = 1..K-1."""
    return torch.arange(1, num_bins, dtype=dtype, device=device) * (2.0 / num_bins) - 1.0
