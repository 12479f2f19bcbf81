"""Official BFN network architectures (state-dict compatible) and model wrappers."""

from .adapters import FourierImageInputAdapter, OutputAdapter, TextInputAdapter
from .builder import ADAPTERS, NETWORKS, build_adapter, build_model, build_network
from .config import load_yaml, normalize_model_config
from .gpt import GPT
from .unet_improved import UNetModel
from .unet_vdm import UNetVDM
from .wrappers import (
    BFNNetwork,
    BinaryLogitsNetwork,
    ImageEpsNetwork,
    TextLogitsNetwork,
    wrap_network,
)

__all__ = [
    "ADAPTERS",
    "BFNNetwork",
    "BinaryLogitsNetwork",
    "FourierImageInputAdapter",
    "GPT",
    "ImageEpsNetwork",
    "NETWORKS",
    "OutputAdapter",
    "TextInputAdapter",
    "TextLogitsNetwork",
    "UNetModel",
    "UNetVDM",
    "build_adapter",
    "build_model",
    "build_network",
    "load_yaml",
    "normalize_model_config",
    "wrap_network",
]
