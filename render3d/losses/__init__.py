"""GAN losses and regularizers, registered by name in `render3d.registry.LOSSES`."""

from render3d.registry import LOSSES

from .stylegan2 import (
    StyleGAN2Loss,
    StyleGAN2LossConfig,
    ns_discriminator_loss,
    ns_generator_loss,
    opacity_entropy,
    path_lengths,
    r1_penalty,
)

__all__ = [
    "LOSSES",
    "StyleGAN2Loss",
    "StyleGAN2LossConfig",
    "ns_discriminator_loss",
    "ns_generator_loss",
    "opacity_entropy",
    "path_lengths",
    "r1_penalty",
]
