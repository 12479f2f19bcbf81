"""Joint BFNs: several modalities (e.g. coordinates and atom types) in one network call.

``JointBFN`` (process), ``sample_joint`` (every registered solver per modality, lock-step on one grid),
``JointMoleculeOracle`` (exact joint posterior), ``molecule_adapter`` (MolCRAFT / GeoBFN call convention).
"""
from .adapters import molecule_adapter
from .geometry import com_free_gaussian_log_prob, com_project, degrees_of_freedom
from .grids import joint_times, mean_normalised_logsnr
from .model import JointDenoiser
from .oracle import JointMoleculeOracle, assignment_chi2, assign_to_molecules, joint_oracle_problem, joint_sliced_w2
from .process import JointBFN
from .sampling import JointSampleInfo, default_solvers, sample_joint

__all__ = ["JointBFN", "sample_joint", "JointSampleInfo", "JointDenoiser", "JointMoleculeOracle", "molecule_adapter",
           "joint_times", "mean_normalised_logsnr", "com_project", "com_free_gaussian_log_prob", "degrees_of_freedom",
           "assign_to_molecules", "assignment_chi2", "joint_sliced_w2", "joint_oracle_problem", "default_solvers"]
