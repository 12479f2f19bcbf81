"""bfnsolvers: fast samplers for Bayesian Flow Networks."""
from .processes import BFNProcess, ContinuousBFN, DiscreteBFN, DiscretisedBFN

__version__ = "0.1.0"
__all__ = ["BFNProcess", "ContinuousBFN", "DiscretisedBFN", "DiscreteBFN"]
