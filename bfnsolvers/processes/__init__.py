"""BFN noise processes as linear SDEs."""
from .base import T_FLOOR, BFNProcess
from .continuous import ContinuousBFN
from .discrete import DiscreteBFN
from .discretised import DiscretisedBFN

__all__ = ["BFNProcess", "ContinuousBFN", "DiscretisedBFN", "DiscreteBFN", "T_FLOOR"]
