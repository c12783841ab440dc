"""Sampling a trained generator: latents and styles from seeds, a check that its densities are
finite, cameras around its subject, rendered views with depth, orbit frames and meshes. Shared
by the training snapshots, `render3d render`, `render3d export-mesh`, `render3d eval`,
`render3d demo` and the viewer."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch

from render3d._checks import check_number, check_positive, is_number
from render3d.cameras import Cameras, Framing, orbit, spiral

SEED_LIMIT = 2 ** 64       # torch's generators take seeds below this
VIEW_KEYS = ("radius", "pitch", "fov_degrees", "pivot")     # a generator's metadata "view"


def check_view(fn: str, view) -> None:
    """`view` a generator's metadata "view": a positive radius, an EG3D pitch in (0, pi) (pi/2
    level), a field of view in (0, 180) degrees and a pivot of 3 finite numbers. It was a
    KeyError, or 'math domain error', deep inside."""
    missing = [key for key in VIEW_KEYS if key not in view] if isinstance(view, Mapping) else list(VIEW_KEYS)
    if missing:
        raise ValueError(f"{fn}: argument 'view' expected a generator's metadata view with {', '.join(VIEW_KEYS)}, "
                         f"got {view!r}, without {', '.join(missing)}")
    check_positive(fn, "view['radius']", view["radius"])
    check_number(fn, "view['pitch']", view["pitch"])
    check_number(fn, "view['fov_degrees']", view["fov_degrees"])
    pivot = view["pivot"]
    pivot_ok = isinstance(pivot, Sequence) and len(pivot) == 3 and all(is_number(v) and math.isfinite(v) for v in pivot)
    if not (0 < view["pitch"] < math.pi and 0 < view["fov_degrees"] < 180 and pivot_ok):
        raise ValueError(f"{fn}: argument 'view' expected a pitch in (0, pi), fov_degrees in (0, 180) and a pivot of 3 "
                         f"finite numbers, got {dict(view)!r}")


def latents_from_seeds(seeds: list[int], z_dim: int, device="cpu") -> torch.Tensor:
    """``[len(seeds), z_dim]``: z of seed s is N(0, I) from a CPU generator seeded with s, so a
    seed means the same subject on every device. Seeds are ints in 0..2**64-1."""
    if isinstance(seeds, (str, bytes)):             # "12" was the seeds 1 and 2
        raise ValueError(f"latents_from_seeds: argument 'seeds' expected a list of ints, got {seeds!r}")
    bad = [s for s in seeds if not (is_number(s, integer=True) and 0 <= s < SEED_LIMIT)]
    if bad:
        raise ValueError(f"latents_from_seeds: argument 'seeds' expected ints in 0..2**64-1, got {bad[0]!r}")
    return torch.stack([torch.randn(z_dim, generator=torch.Generator().manual_seed(int(s))) for s in seeds]).to(device)


def styles_from_seeds(G, seeds: list[int], view: dict | None = None, *, labels: torch.Tensor | None = None,
                      truncation: float = 1.0, device=None) -> torch.Tensor:
    """``ws [len(seeds), num_ws, w_dim]`` of the subjects of `seeds` (z from `latents_from_seeds`),
    on G's device unless `device` is given. A camera-conditioned generator (``G.c_dim > 0``,
    as in EG3D) also needs camera labels ``[len(seeds), 25]``: `labels` when given, else the
    front view's (`view_cameras(view, 1, ...)`'s, `view` being the generator's metadata
    "view"), so that every picture of a subject shows the same subject."""
    if not isinstance(seeds, (str, bytes)) and not len(seeds):
        raise ValueError("styles_from_seeds: argument 'seeds' expected at least one seed, got none")
    check_number("styles_from_seeds", "truncation", truncation)
    device = next(G.parameters()).device if device is None else device
    z = latents_from_seeds(seeds, G.z_dim, device)
    c = None
    if getattr(G, "c_dim", 0) > 0:
        if labels is None:
            if view is None:
                raise ValueError(f"styles_from_seeds: argument 'view' expected the generator's metadata view "
                                 f"(it is camera-conditioned, c_dim={G.c_dim}), got None")
            labels = view_cameras(view, 1, 1).to_eg3d_label().expand(len(seeds), -1)
        c = labels.to(device=device, dtype=z.dtype)
    return G.mapping(z, c, truncation=truncation)


@torch.no_grad()
def nonfinite_density(G, ws: torch.Tensor, view: dict, *, chunk: int = 16) -> tuple[int, float] | None:
    """(index, density) of the first subject of ``ws [S, num_ws, w_dim]`` whose density at its
    centre (`view`'s pivot, `view` a generator's metadata "view") is NaN or infinite, else None.
    One point per subject: a cheap check, run before a render or marching cubes would trip over
    it deep inside, for a generator whose training diverged or a truncation that carries w
    past what its layers hold. `chunk` subjects at a time: each builds its own feature volume."""
    check_view("nonfinite_density", view)
    pivot = torch.tensor(view["pivot"], dtype=ws.dtype, device=ws.device)
    for start in range(0, len(ws), chunk):
        part = ws[start:start + chunk]
        density = G.density(pivot.expand(len(part), 1, 3), part)[:, 0]
        bad = (~torch.isfinite(density)).nonzero()
        if len(bad):
            i = int(bad[0, 0])
            return start + i, density[i].item()
    return None


def view_cameras(view: dict, n: int, size: int, *, pitch_offset: float = 0.0, device="cpu") -> Cameras:
    """n cameras evenly spaced in yaw (a full turn from the front) at the training cameras'
    radius, FOV and mean pitch (`view`: a generator's metadata "view"), `size` pixels."""
    check_view("view_cameras", view)
    return orbit(n, radius=view["radius"], width=size, height=size, pitch=view["pitch"] + pitch_offset,
                 pivot=tuple(view["pivot"]), fov_degrees=view["fov_degrees"], device=device)


def view_framing(view: dict) -> Framing:
    """The `Framing` whose first camera is `view_cameras`'s first (the front view at the
    training cameras' radius, FOV and mean pitch): a viewer's initial camera. `view`'s pitch
    is EG3D's (pi/2 level), a framing's elevation is the angle above the horizon."""
    check_view("view_framing", view)
    polar = math.acos(1 - 2 * view["pitch"] / math.pi)
    return Framing(view["radius"], math.pi / 2 - polar, view["fov_degrees"], tuple(view["pivot"]),
                   yaw_start=math.pi / 2)


VIEWS_PER_CALL = 8   # views of one subject per G.synthesis call: a training batch's memory at most


def synthesize_views(G, ws: torch.Tensor, cameras: Cameras, *, noise_mode: str = "const"):
    """`G.synthesis` of one subject (``ws [1, num_ws, w_dim]``) from each of `cameras`, yielded
    `VIEWS_PER_CALL` views at a time (the subject's styles repeated): fewer and larger
    operations than one view at a time, the same pictures up to float rounding."""
    for start in range(0, len(cameras), VIEWS_PER_CALL):
        part = cameras[start:start + VIEWS_PER_CALL]
        yield G.synthesis(ws.expand(len(part), -1, -1), part, noise_mode=noise_mode)


@torch.no_grad()
def render_views(G, ws: torch.Tensor, cameras: Cameras, *, noise_mode: str = "const",
                 progress: bool = False) -> dict[str, torch.Tensor]:
    """Every ws ``[S, num_ws, w_dim]`` from every camera (`synthesize_views`: up to
    `VIEWS_PER_CALL` views in one call, bounded memory) -> ``image [S, V, 3, H, W]`` in [0, 1],
    ``depth [S, V, 1, n, n]``, ``alpha [S, V, 1, n, n]``. `progress`: a progress bar over the
    S x V pictures."""
    from tqdm import tqdm

    out = {"image": [], "depth": [], "alpha": []}
    with tqdm(total=len(ws) * len(cameras), desc="views", unit="view", disable=not progress) as bar:
        for s in range(len(ws)):
            rows = []
            for rendered in synthesize_views(G, ws[s:s + 1], cameras, noise_mode=noise_mode):
                rows.append(rendered)
                bar.update(len(rendered["image"]))
            out["image"].append(torch.cat([((r["image"] + 1) / 2).clamp(0, 1) for r in rows]))
            out["depth"].append(torch.cat([r["depth"] for r in rows]))
            out["alpha"].append(torch.cat([r["alpha"] for r in rows]))
    return {k: torch.stack(v).cpu() for k, v in out.items()}


def views_grid_image(views: dict[str, torch.Tensor], *, with_depth: bool = True) -> torch.Tensor:
    """A picture ``[3, H, W]``: per subject a row of views and, below it, their depth maps
    (Turbo, near red) up-sampled to the image size."""
    from render3d.visualize import depth_to_rgb, make_grid

    rows = []
    size = views["image"].shape[-1]
    for s in range(len(views["image"])):
        rows.append(views["image"][s])
        if with_depth:
            depth = depth_to_rgb(views["depth"][s], views["alpha"][s])
            rows.append(torch.nn.functional.interpolate(depth, size=size, mode="nearest"))
    return make_grid(rows)


ORBIT_COLUMNS = 8   # subjects side by side in an orbit video; more start another row


@torch.no_grad()
def orbit_frames(G, ws: torch.Tensor, view: dict, frames: int, size: int, *, noise_mode: str = "const",
                 pitch_swing: float = 0.15, progress: bool = False) -> torch.Tensor:
    """Frames ``[frames, 3, H, W]`` in [0, 1] of one full turn around each subject, the pitch
    swinging once by +- `pitch_swing` radians over the turn. Subjects stand side by side, in
    rows of up to `ORBIT_COLUMNS` (a short last row is filled with white). `progress`: a
    progress bar over the frames."""
    from tqdm import tqdm

    check_view("orbit_frames", view)
    check_number("orbit_frames", "pitch_swing", pitch_swing)
    if len(ws) == 0:
        raise ValueError("orbit_frames: argument 'ws' expected at least one subject, got none")
    cameras = spiral(frames, radius=view["radius"], width=size, height=size, pitch_range=pitch_swing, pitch_cycles=1,
                     pitch_mean=view["pitch"], pivot=tuple(view["pivot"]), fov_degrees=view["fov_degrees"],
                     device=ws.device)
    columns = min(len(ws), ORBIT_COLUMNS)
    out = []
    with tqdm(total=frames, desc="orbit", unit="frame", disable=not progress) as bar:
        streams = [synthesize_views(G, ws[s:s + 1], cameras, noise_mode=noise_mode) for s in range(len(ws))]
        for rendered in zip(*streams):                          # the same frames of every subject
            tiles = [((r["image"] + 1) / 2).clamp(0, 1) for r in rendered]
            tiles += [torch.ones_like(tiles[0])] * (-len(tiles) % columns)
            out.append(torch.cat([torch.cat(tiles[r:r + columns], dim=-1) for r in range(0, len(tiles), columns)],
                                 dim=-2))
            bar.update(len(tiles[0]))
    return torch.cat(out).cpu()


BAKE_PITCH_OFFSETS = (-0.3, 0.0, 0.3)   # rings of views around the training cameras' mean pitch
BAKE_VIEWS_PER_RING = 12
MESH_COLORS = ("renders", "field")


def bake_cameras(view: dict, size: int, device="cpu") -> Cameras:
    """The views a generator mesh's colours are baked from: rings of `BAKE_VIEWS_PER_RING`
    cameras around the subject at the training cameras' radius and FOV, at their mean pitch
    and `BAKE_PITCH_OFFSETS` radians off it."""
    return Cameras.cat([view_cameras(view, BAKE_VIEWS_PER_RING, size, pitch_offset=offset, device=device)
                        for offset in BAKE_PITCH_OFFSETS])


def extract_generator_mesh(G, ws: torch.Tensor, *, resolution: int = 128, level="auto", clean=True,
                           color: str | None = "renders", view: dict | None = None, chunk: int = 1 << 16,
                           progress: bool = False):
    """A trimesh of one subject (``ws [1, num_ws, w_dim]``) through `render3d.mesh.extract_mesh`
    on `G.density` over the generator's box, with vertex colours from `color`:

    - ``"renders"``: the generator's own pictures (``G.synthesis``, at its resolution, from
      `bake_cameras(view)`) projected onto the vertices that each view sees
      (`render3d.mesh.bake_vertex_colors`, weighted by viewing angle and coverage); a vertex
      no view sees takes the colour of the nearest one seen (if no view sees any, all take
      ``G.color``). The mesh then looks like the renders. Needs `view`, the generator's
      metadata "view".
    - ``"field"``: ``G.color`` at each vertex (the colour head applied to the point alone:
      without the compositing along rays and the neural renderer's filters it is patchier and
      more saturated than the renders).
    - None: no colours.

    ``mesh.metadata["render3d"]["colors"]`` records which. `progress`: progress bars over the
    density grid and the views the colours are baked from.
    """
    from render3d.mesh import bake_vertex_colors, extract_mesh, vertex_colors

    fn = "extract_generator_mesh"
    if color not in (*MESH_COLORS, None):
        raise ValueError(f"{fn}: argument 'color' expected one of 'renders', 'field' or None, got {color!r}")
    if color == "renders" and view is None:
        raise ValueError(f"{fn}: argument 'view' expected the generator's metadata view (color='renders' renders "
                         f"the subject around it), got None")

    def density(points):
        return G.density(points[None].to(ws), ws)[0]

    def rgb(points):
        return G.color(points[None].to(ws), ws)[0]

    with torch.no_grad():
        mesh = extract_mesh(density, G.bbox, resolution, level, color_fn=rgb if color == "field" else None,
                            clean=clean, chunk=chunk, progress=progress)
        if color == "renders":
            from tqdm import tqdm

            size = G.resolutions[-1]
            cameras = bake_cameras(view, size, device=ws.device)
            outputs = []
            with tqdm(total=len(cameras), desc="colour views", unit="view", disable=not progress, leave=False) as bar:
                for rendered in synthesize_views(G, ws, cameras):
                    outputs.append(rendered)
                    bar.update(len(rendered["image"]))
            images = torch.cat([((o["image"] + 1) / 2).clamp(0, 1) for o in outputs])
            alpha = torch.cat([o["alpha"] for o in outputs])
            colors, seen = bake_vertex_colors(mesh, images, cameras, alpha=alpha)
            if not seen.any():                          # no view sees it: its colour head it is
                colors = vertex_colors(rgb, mesh.vertices, chunk=chunk)[:, :3] / 255.0
                seen[:] = True
            _fill_unseen(mesh, colors, seen)
    mesh.metadata["render3d"]["colors"] = color
    return mesh


def _fill_unseen(mesh, colors, seen) -> None:
    """Set `mesh`'s vertex colours to `colors` ([N, 3] in [0, 1]), the vertices not `seen`
    taking the colour of the nearest seen vertex."""
    import numpy as np
    import trimesh
    from scipy.spatial import cKDTree

    if seen.any() and not seen.all():
        vertices = np.asarray(mesh.vertices)
        _, nearest = cKDTree(vertices[seen]).query(vertices[~seen])
        colors[~seen] = colors[seen][nearest]
    rgba = np.concatenate([np.round(colors * 255).astype(np.uint8), np.full((len(colors), 1), 255, np.uint8)], 1)
    mesh.visual = trimesh.visual.ColorVisuals(mesh, vertex_colors=rgba)
