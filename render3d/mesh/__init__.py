"""Meshes out of fields: extraction, cleanup and vertex colours.

    from render3d.mesh import extract_mesh
    mesh = extract_mesh(field.density, bbox, 256, "auto", color_fn=field.color)

trimesh, PyMCubes, scikit-image and scipy are imported inside the functions that need them
(``pip install 'render3d[mesh]'``).
"""

from .cleanup import clean_mesh, decimate, remove_small_components, vertex_normals
from .extract import FIELD_TYPES, extract_mesh, sample_grid, vertex_colors

__all__ = [
    "FIELD_TYPES",
    "clean_mesh",
    "decimate",
    "extract_mesh",
    "remove_small_components",
    "sample_grid",
    "vertex_colors",
    "vertex_normals",
]
