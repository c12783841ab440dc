"""Rays: box intersection, sampling along rays, and occupancy-grid marching."""

from .aabb import ray_aabb, ray_boxes, world_to_box
from .occupancy import OccupancyGrid, PackedSamples, pack_bits, prune_samples
from .sampling import (
    SPACINGS,
    bin_edges,
    importance_sample,
    intervals_from_points,
    merge_samples,
    smooth_weights_eg3d,
    stratified_points,
)

__all__ = [
    "OccupancyGrid",
    "PackedSamples",
    "SPACINGS",
    "bin_edges",
    "importance_sample",
    "intervals_from_points",
    "merge_samples",
    "pack_bits",
    "prune_samples",
    "ray_aabb",
    "ray_boxes",
    "smooth_weights_eg3d",
    "stratified_points",
    "world_to_box",
]
