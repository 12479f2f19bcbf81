"""Random draws from one generator, or from one generator per sample.

With ``PerSample`` row i of every draw comes from its own generator, so sample i is the same
whatever batch it is drawn in (diffusers' list-of-generators convention), for ODE and SDE
solvers alike: the start state, every solver noise and every readout draw are split by row.
"""
from __future__ import annotations

from typing import Sequence, Union

import torch
from torch import Tensor


class PerSample:
    """One ``torch.Generator`` per sample (row 0 of every draw from ``generators[0]``, ...)."""

    def __init__(self, generators: Sequence[torch.Generator]):
        self.generators = list(generators)

    def __len__(self) -> int:
        return len(self.generators)

    def __repr__(self) -> str:
        return f"PerSample({len(self)} generators)"


RandomSource = Union[torch.Generator, PerSample, None]


def as_random_source(generator, batch: int, device: torch.device) -> RandomSource:
    """``None``, a ``torch.Generator``, or a list of generators / integer seeds with one entry per sample."""
    if generator is None or isinstance(generator, (torch.Generator, PerSample)):
        if isinstance(generator, PerSample) and len(generator) != batch:
            raise ValueError(f"generator: {len(generator)} per-sample generators for a batch of {batch}")
        return generator
    if isinstance(generator, (list, tuple)):
        if len(generator) != batch:
            raise ValueError(f"generator: a list needs one generator or seed per sample ({batch}), got {len(generator)}")
        gens = []
        for g in generator:
            if isinstance(g, torch.Generator):
                gens.append(g)
            elif isinstance(g, int) and not isinstance(g, bool):
                gens.append(torch.Generator(device).manual_seed(g))
            else:
                raise ValueError(f"generator: list entries must be torch.Generator or int seeds, got {type(g).__name__}")
        return PerSample(gens)
    raise ValueError(f"generator must be None, a torch.Generator or a list of generators / int seeds "
                     f"(one per sample), got {type(generator).__name__}")


def _draw(fn, shape: Sequence[int], generator: RandomSource, dtype: torch.dtype, device) -> Tensor:
    shape = tuple(shape)
    if not isinstance(generator, PerSample):
        return fn(shape, generator=generator, dtype=dtype, device=device)
    if not shape or shape[0] != len(generator):
        raise ValueError(f"generator: {len(generator)} per-sample generators cannot draw a tensor of shape {shape}")
    return torch.stack([fn(shape[1:], generator=g, dtype=dtype, device=device) for g in generator.generators])


def randn(shape: Sequence[int], generator: RandomSource = None, dtype: torch.dtype = torch.float32,
          device=None) -> Tensor:
    """Standard normal draws; with ``PerSample``, row i from generator i."""
    return _draw(torch.randn, shape, generator, dtype, device)


def rand(shape: Sequence[int], generator: RandomSource = None, dtype: torch.dtype = torch.float32,
         device=None) -> Tensor:
    """Uniform draws on [0, 1); with ``PerSample``, row i from generator i."""
    return _draw(torch.rand, shape, generator, dtype, device)
