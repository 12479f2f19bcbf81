"""``JointBFN``: named BFN processes (continuous, discretised, discrete) sharing BFN time."""
from __future__ import annotations

from typing import Iterator, Mapping, Sequence

from ..processes import BFNProcess


class JointBFN:
    """An ordered mapping name -> BFN process; every modality's z_t = a_m(t) x0_m + s_m(t) eps_m at one t.

    Each modality keeps its own accuracy schedule (beta_m, lambda_m); the state, the noise and a network
    call are dicts over the names. ``zero_com`` names coordinate modalities (ContinuousBFN, samples
    (B, N, D)) whose data, noise and state live on the zero-centre-of-mass subspace of each molecule.
    """

    def __init__(self, processes: Mapping[str, BFNProcess] | None = None, /, *, zero_com: Sequence[str] | str = (),
                 **named: BFNProcess):
        if processes is not None and not isinstance(processes, Mapping):
            raise ValueError(f"processes must be a mapping name -> BFNProcess, got {type(processes).__name__}")
        items = dict(processes or {})
        for name, process in named.items():
            if name in items:
                raise ValueError(f"processes: modality {name!r} given twice")
            items[name] = process
        if not items:
            raise ValueError("processes: a JointBFN needs at least one modality")
        for name, process in items.items():
            if not isinstance(name, str) or not name.isidentifier():
                raise ValueError(f"processes: modality names must be identifiers, got {name!r}")
            if not isinstance(process, BFNProcess):
                raise ValueError(f"processes[{name!r}] must be a BFNProcess, got {type(process).__name__}")
        zero_com = (zero_com,) if isinstance(zero_com, str) else tuple(zero_com)
        for name in zero_com:
            if name not in items:
                raise ValueError(f"zero_com: {name!r} is not a modality ({list(items)})")
            if items[name].kind != "continuous":
                raise ValueError(f"zero_com: {name!r} must be a ContinuousBFN (coordinates), got {items[name]!r}")
            if items[name].x_range is not None:
                raise ValueError(f"zero_com: {name!r} needs x_range=None (clipping would leave the zero-CoM subspace)")
        self.processes: dict[str, BFNProcess] = items
        self.zero_com = zero_com

    def __getitem__(self, name: str) -> BFNProcess:
        return self.processes[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.processes)

    def __len__(self) -> int:
        return len(self.processes)

    def __contains__(self, name: object) -> bool:
        return name in self.processes

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.processes)

    def items(self):
        return self.processes.items()

    def kind(self, name: str) -> str:
        return self.processes[name].kind

    def state_shape(self, name: str, sample_shape: Sequence[int]) -> tuple[int, ...]:
        """The state's shape: the samples' shape, with a trailing K for discrete data."""
        return self.processes[name].state_shape(tuple(sample_shape))

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.processes.items())
        return f"JointBFN({inner}{', zero_com=' + repr(self.zero_com) if self.zero_com else ''})"


__all__ = ["JointBFN"]
