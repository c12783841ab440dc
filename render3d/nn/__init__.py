"""StyleGAN2 building blocks: equalized-lr layers, the mapping network, modulated
convolutions and fully-connected layers with demodulation and noise, to-RGB skips, and
filtered up/down-sampling."""

from .layers import Conv2dLayer, FullyConnected
from .mapping import MappingNetwork, normalize_2nd_moment
from .modulated import NOISE_MODES, ModulatedConv2d, ModulatedLinear, ToRGB, modulated_conv2d
from .resample import downsample2d, make_filter, upfirdn2d, upsample2d

__all__ = [
    "Conv2dLayer",
    "FullyConnected",
    "MappingNetwork",
    "ModulatedConv2d",
    "ModulatedLinear",
    "NOISE_MODES",
    "ToRGB",
    "downsample2d",
    "make_filter",
    "modulated_conv2d",
    "normalize_2nd_moment",
    "upfirdn2d",
    "upsample2d",
]
