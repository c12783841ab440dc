"""Discriminators, registered by name in `render3d.registry.DISCRIMINATORS`."""

from render3d.registry import DISCRIMINATORS

from .stylegan2 import StyleGAN2Discriminator, StyleGAN2DiscriminatorConfig, minibatch_stddev

__all__ = ["DISCRIMINATORS", "StyleGAN2Discriminator", "StyleGAN2DiscriminatorConfig", "minibatch_stddev"]
