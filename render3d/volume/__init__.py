"""Volume rendering: compositing, density activations, fields, the volume renderer, named
scenes and multi-view renders."""

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
from .scenes import Scene, describe_scenes, make_scene, register_scene, scene_names
from .structured import (
    FeatureVolumeField,
    OSGDecoder,
    TriPlaneField,
    sample_feature_volume,
    sample_triplane,
)
from .views import render_orbit, render_views

__all__ = [
    "DENSITY_ACTIVATIONS",
    "AnalyticField",
    "BoxField",
    "FeatureVolumeField",
    "Field",
    "GyroidField",
    "OSGDecoder",
    "Scene",
    "SphereField",
    "TorusField",
    "TriPlaneField",
    "UnionField",
    "VolumeRenderer",
    "alpha_to_density",
    "composite",
    "composite_packed",
    "demo_scene",
    "describe_scenes",
    "density_activation",
    "make_scene",
    "packed_offsets",
    "register_scene",
    "render_orbit",
    "render_views",
    "sample_feature_volume",
    "sample_triplane",
    "scene_names",
]
