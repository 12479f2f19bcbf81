"""BFN noise processes as linear SDEs."""
from .accuracy import AccuracySchedule, CallableSchedule, ChemBFNDiscrete, GravesContinuous, GravesDiscrete
from .base import T_FLOOR, BFNProcess
from .continuous import ContinuousBFN
from .discrete import DiscreteBFN
from .discretised import DiscretisedBFN

__all__ = ["AccuracySchedule", "CallableSchedule", "ChemBFNDiscrete", "GravesContinuous", "GravesDiscrete",
           "BFNProcess", "ContinuousBFN", "DiscretisedBFN", "DiscreteBFN", "T_FLOOR"]
