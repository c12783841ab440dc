"""Evaluation: FID and KID from Inception features, shape-set metrics (COV, MMD, 1-NNA over
Chamfer distances) against ground-truth meshes, multi-view reprojection error, and JSON
results that record their settings."""

from render3d.metrics.consistency import reprojection_error
from render3d.metrics.images import (
    ImageFolder,
    InceptionFeatures,
    default_inception_path,
    extract_features,
    feature_statistics,
    fid,
    frechet_distance,
    kid,
)
from render3d.metrics.results import results_record, write_results
from render3d.metrics.shapes import (
    chamfer_distance,
    chamfer_matrix,
    compare_shape_sets,
    coverage_mmd_1nna,
    load_points,
    sample_surface,
)

__all__ = [
    "ImageFolder",
    "InceptionFeatures",
    "chamfer_distance",
    "chamfer_matrix",
    "compare_shape_sets",
    "coverage_mmd_1nna",
    "default_inception_path",
    "extract_features",
    "feature_statistics",
    "fid",
    "frechet_distance",
    "kid",
    "load_points",
    "reprojection_error",
    "results_record",
    "sample_surface",
    "write_results",
]
