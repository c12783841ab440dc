"""Meshes from fields: sample a grid in chunks, marching cubes, world coordinates, colours.

The field is sampled at ``resolution`` points per axis spanning the box corners inclusive
(sample ``i`` of an axis sits at ``lo + i * (hi - lo) / (n - 1)``), one chunk of points at a
time, into a float32 grid with a one-sample border of "outside" all around: a surface
that leaves the box is closed by a cap lying on the box's face, so every mesh is closed.
PyMCubes' classic marching cubes turns the grid into a welded mesh in grid-index
coordinates, which are mapped back to world units exactly (same affine map as the samples).

Two kinds of field (``field_type``):

- ``"density"``: non-negative density, inside where it exceeds ``level``. ``level="auto"``
  takes Otsu's threshold of the sampled densities (the value that best separates the
  "empty" and "filled" modes of their histogram). For render3d's analytic fields, whose
  density is ``scale * sigmoid(-sdf / softness)``, that is about ``scale / 2``: the exact
  surface ``sdf = 0``.
- ``"sdf"``: signed distance, negative inside; the surface is ``level`` (``"auto"``: 0).

Faces are wound counter-clockwise seen from outside, so normals point out and the signed
volume of a closed mesh is positive.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np
import torch

from .._checks import check_box, check_choice, check_positive

FIELD_TYPES = ("density", "sdf")
DEFAULT_CHUNK = 1 << 20  # points per call of the field: ~12 MB of float32 points

PointFn = Callable[[torch.Tensor], torch.Tensor]


class NoSurfaceError(ValueError):
    """`extract_mesh` found no surface: `level` is not strictly between the field's minimum
    `low` and maximum `high` inside the box (as the caller reads them: an sdf's own signs).
    `auto`: whether the level was chosen automatically (Otsu's, or 0 for an sdf)."""

    def __init__(self, message: str, low: float, high: float, level: float, auto: bool):
        super().__init__(message)
        self.low, self.high, self.level, self.auto = low, high, level, auto

    def field_said(self) -> str:
        """What the field is like inside the box, for a message: "is 0 everywhere", ..."""
        if self.low == self.high:
            return f"is {self.low:.6g} everywhere"
        return (f"lies in [{self.low:.6g}, {self.high:.6g}], and the level {self.level:.6g}"
                f"{' (auto)' if self.auto else ''} is not strictly inside")


def grid_shape(fn: str, resolution, lo: np.ndarray, hi: np.ndarray) -> tuple[int, int, int]:
    """Samples per axis: an int is the count along the box's longest side, the other axes
    get as many as keep the voxels (nearly) cubic; 3 ints are used as given. At least 2."""
    if isinstance(resolution, (int, np.integer)) and not isinstance(resolution, bool):
        if resolution < 2:
            raise ValueError(f"{fn}: argument 'resolution' expected an int >= 2 or 3 of them, got {resolution!r}")
        extent = hi - lo
        cells = (resolution - 1) * extent / extent.max()
        return tuple(max(2, int(round(c)) + 1) for c in cells)
    try:
        shape = tuple(int(r) for r in resolution)
        ok = len(shape) == 3 and all(r >= 2 and r == v for r, v in zip(shape, resolution))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"{fn}: argument 'resolution' expected an int >= 2 or 3 of them, got {resolution!r}")
    return shape


def sample_grid(fn: PointFn, bbox, resolution, *, chunk: int = DEFAULT_CHUNK, device=None,
                dtype: torch.dtype = torch.float32, progress: bool = False, caller: str = "sample_grid",
                name: str = "fn") -> np.ndarray:
    """Evaluate a scalar field on a regular grid over `bbox`, `chunk` points at a time.

    Args:
        fn: points ``[N, 3]`` (world units, on `device`, `dtype`) -> values ``[N]``.
        bbox: ``(min_xyz, max_xyz)`` in world units.
        resolution: samples per axis (see `grid_shape`).
        chunk: points per call of `fn`; bounds the memory of the field's evaluation.
        caller, name: the public function and argument to name in errors.

    Returns:
        float32 array ``[nx, ny, nz]``: entry ``[i, j, k]`` is the value at
        ``lo + (i, j, k) * (hi - lo) / (shape - 1)``.

    Raises ValueError if `fn` returns the wrong shape or any NaN/inf (reporting how many and
    where the first one is).
    """
    from tqdm import tqdm

    check_positive(caller, "chunk", chunk, integer=True)
    lo, hi = check_box(caller, "bbox", bbox)
    nx, ny, nz = grid_shape(caller, resolution, lo, hi)
    axes = [torch.linspace(0.0, 1.0, n, dtype=torch.float64) * (h - l) + l for n, l, h in zip((nx, ny, nz), lo, hi)]
    axes = [a.to(device=device, dtype=dtype) for a in axes]
    try:
        values = np.empty((nx, ny, nz), dtype=np.float32)
    except MemoryError:
        raise ValueError(f"{caller}: argument 'resolution' expected a grid that fits in memory, got {resolution}: "
                         f"{nx} x {ny} x {nz} samples, {nx * ny * nz * 4 / 2**30:.4g} GiB") from None
    # Whole x-slabs per call when a slab fits in a chunk, otherwise blocks of rows of one slab.
    slabs = max(1, chunk // (ny * nz))
    rows = min(ny, max(1, chunk // nz))
    blocks = [(i, min(nx, i + slabs), j, min(ny, j + rows)) for i in range(0, nx, slabs) for j in range(0, ny, rows)]
    bad = 0
    with torch.no_grad():
        for i0, i1, j0, j1 in tqdm(blocks, desc="field", unit="chunk", disable=not progress, leave=False):
            points = torch.stack(torch.meshgrid(axes[0][i0:i1], axes[1][j0:j1], axes[2], indexing="ij"), -1)
            out = fn(points.reshape(-1, 3))
            if not isinstance(out, torch.Tensor) or out.shape not in ((points.shape[0] * points.shape[1] * nz,),
                                                                      (points.shape[0] * points.shape[1] * nz, 1)):
                got = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                raise ValueError(f"{caller}: argument '{name}' expected to map points [N, 3] to values [N], "
                                 f"got {got} for N={points.shape[0] * points.shape[1] * nz}")
            block = out.detach().reshape(i1 - i0, j1 - j0, nz).to("cpu", torch.float32).numpy()
            values[i0:i1, j0:j1] = block
            finite = np.isfinite(block)
            if not finite.all():
                if bad == 0:
                    first = np.argwhere(~finite)[0] + (i0, j0, 0)
                bad += int((~finite).sum())
    if bad:
        where = lo + first * (hi - lo) / (np.array((nx, ny, nz)) - 1)
        value = values[tuple(first)]
        raise ValueError(
            f"{caller}: argument '{name}' expected finite values, got {value} at {bad} of {nx * ny * nz} grid points "
            f"(the first at world point {np.round(where, 6).tolist()})"
        )
    return values


def auto_level(values: np.ndarray) -> float:
    """Otsu's threshold of a density grid (subsampled to at most ~4M values)."""
    from skimage.filters import threshold_otsu

    if values.min() == values.max():
        return float(values.min())
    step = max(1, math.ceil((values.size / (1 << 22)) ** (1 / 3)))
    return float(threshold_otsu(values[::step, ::step, ::step].ravel()))  # 1-D: no guess that [..., 3] is RGB


def march(values: np.ndarray, level: float, lo: np.ndarray, hi: np.ndarray):
    """Marching cubes of ``values [nx, ny, nz]`` (inside where value > level, sampled over
    the box corners inclusive) -> vertices ``[V, 3]`` float64 in world units and faces
    ``[F, 3]`` int64, wound outward."""
    import mcubes

    # The border is so far below the level that a cap sits within 1e-3 of a cell outside
    # the box's face; clipping puts it on the face.
    spread = float(values.max() - values.min())
    border = float(values.min()) - 1e3 * max(spread, abs(level), 1.0)
    padded = np.pad(values, 1, mode="constant", constant_values=border)
    vertices, faces = mcubes.marching_cubes(padded, level)
    step = (hi - lo) / (np.array(values.shape) - 1)
    vertices = np.clip(lo + (vertices - 1.0) * step, lo, hi)
    return vertices, faces.astype(np.int64)


def _level(fn: str, level, field_type: str, values: np.ndarray) -> tuple[float, str]:
    if isinstance(level, str):
        check_choice(fn, "level", level, ("auto",))
        return (auto_level(values) if field_type == "density" else 0.0), "auto"
    try:
        value = float(level)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value):
        raise ValueError(f"{fn}: argument 'level' expected 'auto' or a finite number, got {level!r}")
    return value, "fixed"


def extract_mesh(
    density_fn: PointFn,
    bbox,
    resolution=256,
    level="auto",
    *,
    field_type: str = "density",
    color_fn: PointFn | None = None,
    chunk: int = DEFAULT_CHUNK,
    clean: bool | Mapping = True,
    device=None,
    dtype: torch.dtype = torch.float32,
    progress: bool = False,
):
    """A triangle mesh of a field's surface, in world units.

    Args:
        density_fn: points ``[N, 3]`` (world units) -> ``[N]``: the density (inside where
            above `level`) or, with ``field_type="sdf"``, the signed distance (negative inside).
        bbox: ``(min_xyz, max_xyz)``, world units: the box sampled; surfaces leaving it are
            closed by caps on its faces.
        resolution: samples per axis, corners included: an int for the longest side (other
            sides get cubic voxels), or 3 ints.
        level: the iso-value, or ``"auto"`` (density: Otsu's threshold of the sampled grid;
            sdf: 0).
        field_type: ``"density"`` or ``"sdf"``.
        color_fn: points ``[N, 3]`` -> RGB ``[N, 3]`` in [0, 1], queried at the final vertices
            (after cleanup) to give vertex colours; None leaves the mesh uncoloured.
        chunk: points per call of `density_fn` / `color_fn` (bounds their memory).
        clean: True runs `clean_mesh` with its defaults, False skips it, a mapping passes
            its keywords (e.g. ``{"target_faces": 50_000}``).
        device, dtype: where and in what precision the sample points are made.
        progress: show a progress bar while sampling the field.

    Returns:
        ``trimesh.Trimesh`` with float64 vertices ``[V, 3]`` (world units), int64 faces
        ``[F, 3]`` wound outward, vertex normals and, with `color_fn`, uint8 RGBA vertex
        colours. ``mesh.metadata["render3d"]`` records the level (and whether it was
        automatic), field type, grid shape and box.

    Raises ValueError naming the argument when the field has NaN/inf values, and its
    subclass `NoSurfaceError` when it has no surface at `level` inside the box.
    """
    import trimesh

    from .cleanup import clean_mesh, vertex_normals

    fn = "render3d.mesh.extract_mesh"
    if not callable(density_fn):
        raise ValueError(f"{fn}: argument 'density_fn' expected a callable points [N, 3] -> [N], "
                         f"got {type(density_fn).__name__}")
    if color_fn is not None and not callable(color_fn):
        raise ValueError(f"{fn}: argument 'color_fn' expected a callable points [N, 3] -> RGB [N, 3] or None, "
                         f"got {type(color_fn).__name__}")
    check_choice(fn, "field_type", field_type, FIELD_TYPES)
    if not isinstance(clean, (bool, Mapping)):
        raise ValueError(f"{fn}: argument 'clean' expected True, False or a mapping of clean_mesh keywords, "
                         f"got {clean!r}")
    if not isinstance(level, str):
        _level(fn, level, field_type, np.zeros(1))  # a bad fixed level fails before sampling
    lo, hi = check_box(fn, "bbox", bbox)
    values = sample_grid(density_fn, (lo, hi), resolution, chunk=chunk, device=device, dtype=dtype,
                         progress=progress, caller=fn, name="density_fn")
    level_value, level_mode = _level(fn, level, field_type, values)
    if field_type == "sdf":  # marching cubes below wants "inside = above the level"
        np.negative(values, out=values)
        inside_level = -level_value
    else:
        inside_level = level_value
    low, high = float(values.min()), float(values.max())
    if not low < inside_level < high:
        shown = (-high, -low) if field_type == "sdf" else (low, high)
        raise NoSurfaceError(
            f"{fn}: the field has no surface inside bbox: argument 'level' expected a value strictly between the "
            f"field's minimum and maximum there, [{shown[0]:.6g}, {shown[1]:.6g}], got {level_value:.6g}"
            f"{' (auto)' if level_mode == 'auto' else ''}", *shown, level_value, level_mode == "auto")
    vertices, faces = march(values, inside_level, lo, hi)
    del values
    mesh = trimesh.Trimesh(vertices, faces, process=False)
    if clean is not False:
        mesh = clean_mesh(mesh, **({} if clean is True else dict(clean)))
    if color_fn is not None:
        mesh.visual = trimesh.visual.ColorVisuals(
            mesh, vertex_colors=vertex_colors(color_fn, mesh.vertices, chunk=chunk, device=device, dtype=dtype))
    mesh.metadata["render3d"] = {
        "level": level_value,
        "level_mode": level_mode,
        "field_type": field_type,
        "grid": list(grid_shape(fn, resolution, lo, hi)),
        "bbox": [lo.tolist(), hi.tolist()],
    }
    if clean is False:
        mesh.vertex_normals = vertex_normals(mesh.vertices, mesh.faces)
    return mesh


def vertex_colors(color_fn: PointFn, vertices: np.ndarray, *, chunk: int = DEFAULT_CHUNK, device=None,
                  dtype: torch.dtype = torch.float32) -> np.ndarray:
    """Query ``color_fn`` (points ``[N, 3]`` -> RGB ``[N, 3]`` in [0, 1]) at ``vertices [V, 3]``
    (world units), `chunk` points at a time -> uint8 RGBA ``[V, 4]`` (alpha 255; values
    outside [0, 1] are clamped). Raises ValueError on a wrong shape or NaN/inf colours."""
    fn = "render3d.mesh.vertex_colors"
    check_positive(fn, "chunk", chunk, integer=True)
    rgba = np.full((len(vertices), 4), 255, dtype=np.uint8)
    points = torch.as_tensor(np.ascontiguousarray(vertices), dtype=dtype, device=device)
    with torch.no_grad():
        for start in range(0, len(points), chunk):
            p = points[start:start + chunk]
            rgb = color_fn(p)
            if not isinstance(rgb, torch.Tensor) or tuple(rgb.shape) != (len(p), 3):
                got = list(rgb.shape) if isinstance(rgb, torch.Tensor) else type(rgb).__name__
                raise ValueError(f"{fn}: argument 'color_fn' expected to map points [N, 3] to RGB [N, 3], "
                                 f"got {got} for N={len(p)}")
            rgb = rgb.detach().to("cpu", torch.float32)
            if not bool(torch.isfinite(rgb).all()):
                index = int((~torch.isfinite(rgb)).any(dim=-1).nonzero()[0]) + start
                raise ValueError(f"{fn}: argument 'color_fn' expected finite colours, got "
                                 f"{rgb[index - start].tolist()} at vertex {index} "
                                 f"(world point {np.round(vertices[index], 6).tolist()})")
            rgba[start:start + len(p), :3] = (rgb.clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()
    return rgba
