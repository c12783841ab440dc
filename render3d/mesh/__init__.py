"""Meshes out of fields: extraction, cleanup, vertex colours (from the field or baked from
pictures), files for graphics tools, and previews without a GPU.

    from render3d.mesh import extract_mesh, export_mesh
    mesh = extract_mesh(field.density, bbox, 256, "auto", color_fn=field.color)
    export_mesh(mesh, "outputs/mesh.glb")   # GLB: +Y up, metres, COLOR_0 vertex colours

trimesh, PyMCubes, scikit-image, scipy and open3d (previews; nvdiffrast optionally) are
imported inside the functions that need them (``pip install 'render3d[mesh]'``).
"""

from .bake import bake_vertex_colors
from .cleanup import clean_mesh, decimate, remove_small_components, vertex_normals
from .export import MESH_FORMATS, export_mesh, load_mesh, mesh_summary
from .extract import FIELD_TYPES, NoSurfaceError, extract_mesh, sample_grid, vertex_colors
from .preview import PREVIEW_BACKENDS, axes_arrows, draw_axis_labels, render_mesh, with_axes

__all__ = [
    "FIELD_TYPES",
    "MESH_FORMATS",
    "NoSurfaceError",
    "PREVIEW_BACKENDS",
    "axes_arrows",
    "bake_vertex_colors",
    "clean_mesh",
    "decimate",
    "draw_axis_labels",
    "export_mesh",
    "extract_mesh",
    "load_mesh",
    "mesh_summary",
    "remove_small_components",
    "render_mesh",
    "sample_grid",
    "vertex_colors",
    "vertex_normals",
    "with_axes",
]
