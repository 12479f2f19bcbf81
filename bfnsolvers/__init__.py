"""bfnsolvers: fast samplers for Bayesian Flow Networks."""
from . import adapters
from .calibrate import calibrated_times, speed_profile
from .constraints import CentreOfMass, Inpaint
from .checkpoints import PRESETS, CheckpointError, load_checkpoint
from .denoiser import Denoiser
from .processes import (AccuracySchedule, BFNProcess, CallableSchedule, ChemBFNDiscrete, ContinuousBFN, DiscreteBFN,
                        DiscretisedBFN, GravesContinuous, GravesDiscrete)
from .sampling import SampleInfo, sample
from .solvers import SOLVERS, get_solver, register_solver

__version__ = "0.1.0"
__all__ = ["BFNProcess", "ContinuousBFN", "DiscretisedBFN", "DiscreteBFN", "Denoiser", "sample", "SampleInfo",
           "SOLVERS", "get_solver", "register_solver", "load_checkpoint", "CheckpointError", "PRESETS", "speed_profile", "calibrated_times",
           "Inpaint", "CentreOfMass", "adapters",
           "AccuracySchedule", "GravesContinuous", "GravesDiscrete", "ChemBFNDiscrete", "CallableSchedule"]
