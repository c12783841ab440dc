"""Volume rendering: compositing, density activations, fields and the volume renderer."""

from .composite import (
    DENSITY_ACTIVATIONS,
    alpha_to_density,
    composite,
    composite_packed,
    density_activation,
    packed_offsets,
)
from .fields import (
    AnalyticField,
    BoxField,
    Field,
    GyroidField,
    SphereField,
    TorusField,
    UnionField,
    demo_scene,
)
from .renderer import VolumeRenderer
from .structured import (
    FeatureVolumeField,
    OSGDecoder,
    TriPlaneField,
    sample_feature_volume,
    sample_triplane,
)

__all__ = [
    "DENSITY_ACTIVATIONS",
    "AnalyticField",
    "BoxField",
    "FeatureVolumeField",
    "Field",
    "GyroidField",
    "OSGDecoder",
    "SphereField",
    "TorusField",
    "TriPlaneField",
    "UnionField",
    "VolumeRenderer",
    "alpha_to_density",
    "composite",
    "composite_packed",
    "demo_scene",
    "density_activation",
    "packed_offsets",
    "sample_feature_volume",
    "sample_triplane",
]
