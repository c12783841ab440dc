"""Volume rendering: compositing and density activations."""

from .composite import (
    DENSITY_ACTIVATIONS,
    alpha_to_density,
    composite,
    composite_packed,
    density_activation,
    packed_offsets,
)

__all__ = [
    "DENSITY_ACTIVATIONS",
    "alpha_to_density",
    "composite",
    "composite_packed",
    "density_activation",
    "packed_offsets",
]
