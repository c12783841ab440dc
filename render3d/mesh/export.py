"""Mesh files that graphics tools open: GLB (default), OBJ + MTL, PLY.

Axes and units are render3d's world, written as they are (no node transforms, no axis
swaps): right-handed, **+Y up**, 1 world unit = **1 metre**. That is glTF's own convention,
so a GLB needs nothing more (Blender's importer turns it into its Z-up on import); OBJ and
PLY carry no convention, and Blender's OBJ importer assumes the same Y-up. A header comment
in the OBJ and MTL says so.

Vertex colours (uint8 RGBA, alpha 255) are written as

- GLB: ``COLOR_0`` (normalized unsigned bytes), with a matte white PBR material (metallic
  0, roughness 1) so that viewers show the colours unchanged; glTF's default material
  would be fully metallic and look dark. Normals as ``NORMAL``.
- OBJ: ``v x y z r g b`` (the common extension that Blender, MeshLab and open3d read),
  colours written as ``(byte + 0.25) / 255`` so that readers that round and readers that
  truncate (MeshLab) both get the same byte back; an MTL with a white material; ``vn``.
- PLY (binary): ``uchar red, green, blue, alpha`` per vertex, float normals.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from render3d._checks import error_reason
from render3d._files import file_in_the_way, write_file, write_files

MESH_FORMATS = ("glb", "obj", "ply")
MATERIAL_NAME = "render3d_vertex_color"
UNCOLORED_GREY = 0.8  # base colour of a mesh without vertex colours
_AXES_NOTE = "render3d mesh: right-handed, +Y up, 1 unit = 1 metre"


def mesh_format(fn: str, path, format: str | None = None, *, name: str = "path") -> tuple[Path, str]:
    """Check a mesh file path (argument `name` of `fn`) -> (path, format). `format`
    defaults to the suffix."""
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"{fn}: argument '{name}' expected a file path, got {type(path).__name__}")
    path = Path(path)
    fmt = (format or path.suffix.lstrip(".")).lower()
    if fmt not in MESH_FORMATS:
        valid = ", ".join(f".{f}" for f in MESH_FORMATS)
        what = f"format {format!r}" if format else f"suffix {path.suffix or '(none)'!r}"
        raise ValueError(f"{fn}: argument '{name}' expected a mesh file ending in {valid}, got {what} ({path})")
    return path, fmt


def check_writable(fn: str, name: str, path) -> Path:
    """Make ``path``'s folder and check that a file can be created there, before any work.
    Raises ValueError naming `fn` and the argument `name`."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe = path.parent / f".{path.name}.write-test"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        blocking = file_in_the_way(path.parent)
        why = f"{blocking} is a file, not a folder" if blocking else exc.strerror
        raise ValueError(f"{fn}: argument '{name}' expected a writable path, got {path} ({why})") from None
    if path.is_dir():
        raise ValueError(f"{fn}: argument '{name}' expected a file path, got the folder {path}")
    return path


def mesh_files(path: Path, fmt: str) -> list[Path]:
    """The files an export to `path` in format `fmt` writes: the mesh, and an OBJ's MTL beside it."""
    return [path, path.with_suffix(".mtl")] if fmt == "obj" else [path]


def export_mesh(mesh, path, *, format: str | None = None) -> list[Path]:
    """Write ``mesh`` (a ``trimesh.Trimesh`` in world units, optional uint8 vertex colours)
    to `path` as GLB, OBJ (+ MTL beside it) or PLY, by `format` or the suffix.

    The folder is created; the path is checked before anything is written. Returns the
    paths written (the OBJ and its MTL for OBJ).
    """
    import trimesh

    fn = "render3d.mesh.export_mesh"
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        got = f"a mesh with {len(mesh.faces)} faces" if isinstance(mesh, trimesh.Trimesh) else type(mesh).__name__
        raise ValueError(f"{fn}: argument 'mesh' expected a trimesh.Trimesh with faces, got {got}")
    _check_geometry(fn, "mesh", mesh, "in the mesh given")
    path, fmt = mesh_format(fn, path, format)
    for file in mesh_files(path, fmt):
        check_writable(fn, "path", file)
    colors = mesh.visual.vertex_colors if mesh.visual.kind == "vertex" else None
    if fmt == "glb":
        return [_write_glb(mesh, colors, path)]
    if fmt == "obj":
        return _write_obj(mesh, colors, path)
    return [write_file(path, mesh.export(file_type="ply", encoding="binary", vertex_normal=True))]


def _write_glb(mesh, colors, path: Path) -> Path:
    import trimesh
    from trimesh.visual.material import PBRMaterial

    base = [255, 255, 255, 255] if colors is not None else [round(255 * UNCOLORED_GREY)] * 3 + [255]
    glb = trimesh.Trimesh(mesh.vertices, mesh.faces, vertex_normals=mesh.vertex_normals, process=False,
                          metadata=dict(mesh.metadata))
    glb.visual = trimesh.visual.TextureVisuals(
        material=PBRMaterial(name=MATERIAL_NAME, baseColorFactor=base, metallicFactor=0.0, roughnessFactor=1.0,
                             doubleSided=False))
    if colors is not None:
        glb.visual.vertex_attributes["color"] = np.asarray(colors, dtype=np.uint8)
    scene = trimesh.Scene(geometry={path.stem or "mesh": glb})
    return write_file(path, scene.export(file_type="glb", include_normals=True))


def _write_obj(mesh, colors, path: Path) -> list[Path]:
    from trimesh.util import array_to_string

    mtl = path.with_suffix(".mtl")
    kd = "1 1 1" if colors is not None else " ".join([f"{UNCOLORED_GREY:g}"] * 3)
    material = (
        f"# {_AXES_NOTE}\n"
        + ("# the colours are per vertex (v x y z r g b); this white material shows them unchanged\n"
           if colors is not None else "")
        + f"newmtl {MATERIAL_NAME}\nKa 0 0 0\nKd {kd}\nKs 0 0 0\nd 1\nillum 1\n"
    )
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    if colors is not None:
        # (byte + 0.25) / 255: rounding and truncating readers both recover the byte.
        rgb = (np.asarray(colors[:, :3], dtype=np.float64) + 0.25) / 255.0
        v_rows = array_to_string(np.column_stack([vertices, rgb]), digits=8)
    else:
        v_rows = array_to_string(vertices, digits=8)
    n_rows = array_to_string(np.asarray(mesh.vertex_normals, dtype=np.float64), digits=6)
    # 1-based vertex//normal indices (trimesh fills both from one value)
    f_rows = array_to_string(np.asarray(mesh.faces, dtype=np.int64) + 1, value_format="{}//{}")
    text = "\n".join([
        f"# {_AXES_NOTE}",
        f"# {len(vertices)} vertices, {len(mesh.faces)} faces"
        + (", vertex colours as v x y z r g b" if colors is not None else ""),
        f"mtllib {mtl.name}",
        f"o {path.stem or 'mesh'}",
        "v " + v_rows.replace("\n", "\nv "),
        "vn " + n_rows.replace("\n", "\nvn "),
        f"usemtl {MATERIAL_NAME}",
        "f " + f_rows.replace("\n", "\nf "),
        "",
    ])
    return write_files({path: text.encode(), mtl: material.encode()})


def load_mesh(path):
    """Read a mesh file (GLB/glTF, OBJ, PLY, or any other format trimesh reads) -> one
    ``trimesh.Trimesh`` in world coordinates (scene-graph transforms applied), with vertex
    colours as ``ColorVisuals`` when the file has them (a GLB's ``COLOR_0``; textures are
    sampled to vertex colours)."""
    import trimesh

    fn = "render3d.mesh.load_mesh"
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{fn}: argument 'path' expected an existing mesh file, got {path}")
    try:
        loaded = trimesh.load(path, process=False)
    except Exception as exc:  # trimesh raises many kinds on unreadable input
        raise ValueError(f"{fn}: argument 'path' expected a mesh file trimesh can read, got {path} "
                         f"({error_reason(exc)})") from None
    if isinstance(loaded, trimesh.Trimesh):
        parts = [_colored_copy(loaded, np.eye(4))]
    elif isinstance(loaded, trimesh.Scene):
        parts = []
        for node in loaded.graph.nodes_geometry:
            transform, name = loaded.graph[node]
            if isinstance(loaded.geometry[name], trimesh.Trimesh):
                parts.append(_colored_copy(loaded.geometry[name], transform))
    else:
        parts = []
    parts = [p for p in parts if len(p.faces)]
    if not parts:
        raise ValueError(f"{fn}: argument 'path' expected a file with triangles, got none in {path}")
    for part in parts:
        _check_geometry(fn, "path", part, f"in {path}")
    return parts[0] if len(parts) == 1 else trimesh.util.concatenate(parts)


def _check_geometry(fn: str, name: str, mesh, where: str) -> None:
    """Faces that index existing vertices, and finite vertex coordinates: what neither
    trimesh's reader nor its constructor checks, and what every later step assumes."""
    faces, count = np.asarray(mesh.faces), len(mesh.vertices)
    if len(faces) and (faces.min() < 0 or faces.max() >= count):
        bad = int(((faces < 0) | (faces >= count)).any(1).sum())
        raise ValueError(f"{fn}: argument '{name}' expected faces that index its {count} vertices, got {bad} "
                         f"face(s) with an index out of range (largest {faces.max()}) {where}")
    finite = np.isfinite(np.asarray(mesh.vertices)).all(1)
    if not finite.all():
        raise ValueError(f"{fn}: argument '{name}' expected finite vertex coordinates, got {int((~finite).sum())} "
                         f"of {count} vertices not finite {where}")


def _colored_copy(mesh, transform: np.ndarray):
    """A copy of `mesh` moved by `transform` [4, 4], with per-vertex RGBA colours when it has
    any: a GLB's COLOR_0 (kept by trimesh as a vertex attribute beside the material), or a
    texture or material sampled at the vertices."""
    import trimesh

    visual, colors = mesh.visual, None
    if visual.kind == "vertex":
        colors = visual.vertex_colors
    elif visual.kind == "texture":
        # trimesh keeps vertex colours that come with a material as a vertex attribute
        # (of the visual for glTF, of the mesh for OBJ)
        for attributes in (visual.vertex_attributes, mesh.vertex_attributes):
            if colors is None and len(attributes.get("color", ())) == len(mesh.vertices):
                colors = trimesh.visual.color.to_rgba(attributes["color"])
        if colors is None and visual.uv is not None:
            colors = visual.to_color().vertex_colors
    part = trimesh.Trimesh(mesh.vertices, mesh.faces, vertex_colors=colors, process=False)
    part.apply_transform(transform)
    return part


def mesh_summary(mesh) -> str:
    """One line: vertex and face counts and whether the mesh is watertight."""
    shape = "watertight" if mesh.is_watertight else "not watertight"
    return f"{len(mesh.vertices):,} vertices, {len(mesh.faces):,} faces, {shape}"
