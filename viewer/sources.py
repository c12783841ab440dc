"""What the viewer shows: a *source* turns a camera into pictures.

Every source renders `render3d.cameras.Cameras` (a batch of one) to ``image [1, 3, H, W]``
in [0, 1], ``depth [1, 1, H, W]`` (world units), ``alpha [1, 1, H, W]`` and, where it lists
"normals" among its `modes`, ``normals [1, 3, H, W]`` (world space, unit). Optional
capabilities:

- `parameters`: numbers the page shows as sliders (a seed, a truncation, the two seeds and
  the mix of a latent interpolation); their values reach `render` and `download` as
  ``settings`` (name -> value), one set per browser;
- `download`: the model as a file (a coloured GLB mesh, or the splats as a 3DGS PLY);
- `client_geometry`: a mesh or splats the browser can draw itself (three.js) instead of
  the server rendering them;
- `follow`: take up a newer version of the model (a training run's newest checkpoint); the
  viewer polls it while it serves.

Sources here: a field (a built-in analytic scene, or a procedural object chosen by seed),
Gaussian splats from a 3DGS PLY, and a mesh file; a trained generator's (its seed, truncation
and latent interpolation as parameters) is `generator.GeneratorSource`. `open_source` picks
one from the command line's TARGET.
"""

from __future__ import annotations

import functools
import math
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from render3d import DEMO_CHECKPOINT
from render3d._checks import is_number, said_choices
from render3d.cameras import Cameras, Framing
from render3d.volume import AnalyticField, Scene, VolumeRenderer, make_scene, scene_names
from render3d.volume.views import FAR, NEAR

from .loop import RenderCancelled

MODES = ("rgb", "depth", "normals", "alpha")
DEFAULT_SCENE = "demo"     # shown when the demo checkpoint is missing
PROCEDURAL = "procedural"
Progress = Callable[[float, str], None]   # (fraction done in [0, 1], what is happening)
Cancelled = Callable[[], bool]


@dataclass(frozen=True)
class Parameter:
    """A number a source takes from the page: `name` (the key in ``settings``), `label`,
    `default`, range `low`..`high` and `step`; `integer` values are whole numbers (a seed)."""

    name: str
    label: str
    default: float
    low: float
    high: float
    step: float = 1.0
    integer: bool = True

    def __post_init__(self) -> None:
        if not (self.low <= self.default <= self.high and self.step > 0):    # a slider viser cannot build
            raise ValueError(f"Parameter {self.name!r}: expected low <= default <= high and step > 0, got low "
                             f"{self.low}, default {self.default}, high {self.high}, step {self.step}")


@dataclass(frozen=True)
class Splats:
    """Gaussians as viser's client-side splat renderer takes them: ``centers [N, 3]``,
    ``covariances [N, 3, 3]`` (world units squared), ``rgbs [N, 3]`` and ``opacities [N, 1]``
    in [0, 1], float32."""

    centers: np.ndarray
    covariances: np.ndarray
    rgbs: np.ndarray
    opacities: np.ndarray


class Source(ABC):
    """A renderable thing; see the module docstring. Subclasses set `name`, `framing`
    (the initial view) and, where they differ from these defaults, the rest."""

    name: str
    framing: Framing
    modes: tuple[str, ...] = MODES
    parameters: tuple[Parameter, ...] = ()
    download_label: str = "Download mesh (GLB)"

    follows: bool = False                   # whether `follow` can ever find something newer
    state: str = ""                         # said in the page beside the frame rate ('' for nothing)

    def follow(self) -> str | None:
        """Take up a newer version of the model if there is one; returns what was taken up (a
        name for the page), or None. Raises ValueError naming a newer version that cannot be
        shown (then kept as it is, and not tried again)."""
        return None

    def defaults(self) -> dict[str, float]:
        """Each parameter's default value, by name."""
        return {p.name: p.default for p in self.parameters}

    def resolve(self, settings: Mapping[str, float]) -> dict[str, float]:
        """`settings` with the defaults for missing names; a ValueError naming a value outside its
        parameter's range, or not whole where the parameter is (a seed of -1 was numpy's error,
        {} a KeyError, 2.5 drew seed 2 but named the download seed2.5)."""
        resolved = {**self.defaults(), **settings}
        for p in self.parameters:
            value = resolved[p.name]
            number = is_number(value) and math.isfinite(value)
            if not (number and p.low <= value <= p.high and (not p.integer or float(value).is_integer())):
                kind = "a whole number" if p.integer else "a number"
                raise ValueError(f"{type(self).__name__}: setting {p.name!r} expected {kind} in {p.low}..{p.high}, "
                                 f"got {value!r}")
        return resolved

    @abstractmethod
    def render(self, cameras: Cameras, mode: str, settings: Mapping[str, float],
               cancelled: Cancelled) -> dict[str, torch.Tensor]:
        """Pictures of one camera (see the module docstring); ``normals`` only when `mode`
        is "normals". Raises `RenderCancelled` once ``cancelled()`` is True, where the
        render is long enough to check."""

    @abstractmethod
    def download(self, settings: Mapping[str, float], progress: Progress) -> tuple[str, bytes]:
        """The model as a file: (file name, contents)."""

    def client_geometry(self):
        """A ``trimesh.Trimesh`` or `Splats` for the browser to draw, or None (server only)."""
        return None


def picture(views: Mapping[str, torch.Tensor], mode: str, background: float = 1.0) -> np.ndarray:
    """One render's `mode` as uint8 ``[H, W, 3]``: RGB as it is, depth colour-mapped
    (Turbo, near red), normals as ``n * 0.5 + 0.5``, alpha as grey levels."""
    from render3d.visualize import depth_to_rgb, normals_to_rgb, to_uint8

    if mode not in MODES:
        raise ValueError(f"viewer.picture: argument 'mode' expected one of {said_choices(MODES)}, got {mode!r}")
    alpha = views["alpha"]
    if mode == "rgb":
        image = views["image"]
    elif mode == "depth":
        image = depth_to_rgb(views["depth"], alpha, background=background)
    elif mode == "normals":
        image = normals_to_rgb(views["normals"], alpha, background=background)
    else:
        image = alpha.expand(-1, 3, -1, -1)
    return to_uint8(image.float())[0]


def written_file(write: Callable[[Path], Path], name: str) -> tuple[str, bytes]:
    """Run ``write(path)`` on a temporary path named `name`; it returns the path it wrote
    (a writer may change the suffix). Returns that file's (name, contents)."""
    with tempfile.TemporaryDirectory(prefix="render3d-viewer-") as folder:
        path = Path(write(Path(folder) / name))
        return path.name, path.read_bytes()


def mesh_glb(mesh) -> bytes:
    """A ``trimesh.Trimesh`` as GLB bytes (render3d's export: +Y up, COLOR_0 vertex colours)."""
    from render3d.mesh import export_mesh

    return written_file(lambda path: export_mesh(mesh, path)[0], "mesh.glb")[1]


# --- fields: built-in scenes and procedural objects ----------------------------------------

class FieldSource(Source):
    """A field rendered by the volume renderer (coarse + importance samples), in chunks of
    rays so that a stale render stops early. `scene_for(settings)` gives the `Scene` to draw;
    the download is `render3d.mesh.extract_mesh` of its density, coloured by its colour."""

    CHUNK = 4096  # rays between two looks at `cancelled`

    def __init__(self, name: str, scene_for: Callable[[Mapping[str, float]], Scene], framing: Framing,
                 parameters: tuple[Parameter, ...] = (), *, samples: int = 32, mesh_resolution: int = 128) -> None:
        self.name, self.scene_for, self.framing, self.parameters = name, scene_for, framing, parameters
        self.samples, self.mesh_resolution = samples, mesh_resolution

    def render(self, cameras, mode, settings, cancelled):
        scene = self.scene_for(self.resolve(settings))
        renderer = VolumeRenderer(n_coarse=self.samples, n_fine=self.samples, near=NEAR, far=FAR, bbox=scene.bbox,
                                  background=scene.background).eval()
        normals = mode == "normals"
        origins, directions = cameras.generate_rays()
        pieces = []
        with torch.no_grad():
            for start in range(0, origins.shape[1], self.CHUNK):
                if cancelled():
                    raise RenderCancelled
                stop = start + self.CHUNK
                pieces.append(renderer.render_rays(scene.field, origins[:, start:stop], directions[:, start:stop],
                                                   normals=normals))
        h, w = cameras.height, cameras.width

        def image(key):
            return torch.cat([p[key] for p in pieces], 1).reshape(1, h, w, -1).permute(0, 3, 1, 2)

        views = {"image": image("features"), "depth": image("depth"), "alpha": image("opacity")}
        if normals:
            views["normals"] = image("normals")
        return views

    def download(self, settings, progress):
        from render3d.mesh import extract_mesh

        settings = self.resolve(settings)
        scene = self.scene_for(settings)
        progress(0.1, f"sampling the field on a {self.mesh_resolution}^3 grid, marching cubes")
        mesh = extract_mesh(scene.field.density, scene.bbox, self.mesh_resolution, color_fn=scene.field.color)
        progress(0.9, "writing the GLB")
        suffix = "".join(f"_{k}{int(v) if float(v).is_integer() else v}" for k, v in settings.items())
        return f"{self.name}{suffix}.glb", mesh_glb(mesh)


def scene_source(name: str) -> FieldSource:
    """A built-in analytic scene (`render3d.volume.scene_names()`) as a source."""
    scene = make_scene(name)
    return FieldSource(name, lambda settings: scene, scene.framing)


class ProceduralField(AnalyticField):
    """A procedural object of `render3d.datasets.procedural` (a smooth union of primitives)
    as a density field, each point coloured like the part whose surface is nearest."""

    def __init__(self, obj) -> None:
        super().__init__((0.5, 0.5, 0.5), density_scale=200.0, softness=0.005)
        self.obj = obj
        self.register_buffer("part_colors", torch.tensor([p.color for p in obj.parts]), persistent=False)

    def _sdf(self, points):
        return self.obj.sdf(points.reshape(-1, 3)).reshape(points.shape[:-1])

    def _rgb(self, points):
        nearest = self.obj.nearest_part(points.reshape(-1, 3)).reshape(points.shape[:-1])
        return self.part_colors.to(points.dtype)[nearest]


@functools.lru_cache(maxsize=8)
def procedural_scene(seed: int) -> Scene:
    """The procedural object of `seed` (as `render3d dataset synth` draws them) in a box
    around its parts."""
    from render3d.datasets.procedural import BLEND, random_object

    obj = random_object(np.random.default_rng(seed))
    lo = np.min([p.center - p.bound() for p in obj.parts], 0) - 2 * BLEND
    hi = np.max([p.center + p.bound() for p in obj.parts], 0) + 2 * BLEND
    return Scene(ProceduralField(obj), (tuple(lo.tolist()), tuple(hi.tolist())), Framing.around(lo, hi))


def procedural_source() -> FieldSource:
    """Procedural objects, one per seed: a seed slider changes the object."""
    seed = Parameter("seed", "Seed", 0, 0, 999)
    # one framing for every seed: most objects fit in [-0.5, 0.5]^3 (all within 0.75)
    framing = Framing.around([-0.5] * 3, [0.5] * 3)
    return FieldSource(PROCEDURAL, lambda settings: procedural_scene(int(settings["seed"])), framing, (seed,))


# --- files: Gaussian splats and meshes ------------------------------------------------------

class SplatSource(Source):
    """Gaussians from a 3DGS PLY, rasterized by `render3d.splat.rasterize`; the download is
    the PLY file itself. The browser can draw them too (degree-0 colour only)."""

    modes = ("rgb", "depth", "alpha")
    download_label = "Download splats (PLY)"

    def __init__(self, path: Path, background=(0.96, 0.96, 0.97)) -> None:
        from render3d.splat import load_ply

        self.path, self.name = Path(path), Path(path).stem
        self.splats = load_ply(self.path)
        if not len(self.splats["means"]):                   # nothing to frame or draw
            raise ValueError(f"viewer.SplatSource: argument 'path' expected Gaussian splats, got {self.path} "
                             f"holding none")
        self.sh_degree = int(round(self.splats["sh"].shape[1] ** 0.5)) - 1
        self.background = torch.tensor(background)
        means = self.splats["means"]
        # frame where most Gaussians are: a few far-flung ones should not shrink the model
        lo, hi = torch.quantile(means, torch.tensor([0.02, 0.98]), dim=0)
        self.framing = Framing.around(lo.tolist(), hi.tolist())

    def render(self, cameras, mode, settings, cancelled):
        from render3d.splat import rasterize

        s = self.splats
        out = rasterize(s["means"][None], s["quats"][None], s["scales"][None], s["opacities"][None], s["sh"][None],
                        cameras.cam2world, cameras.intrinsics, cameras.width, cameras.height,
                        background=self.background, sh_degree=self.sh_degree)
        return {"image": out["image"].clamp(0, 1), "depth": out["depth"], "alpha": out["alpha"]}

    def download(self, settings, progress):
        return self.path.name, self.path.read_bytes()

    def client_geometry(self) -> Splats:
        from render3d.splat.sh import SH_C0

        s = self.splats
        rotation = _quaternion_matrices(torch.nn.functional.normalize(s["quats"], dim=-1))
        scaled = rotation * s["scales"][:, None, :]                  # R S
        covariances = scaled @ scaled.transpose(1, 2)                 # R S S^T R^T
        rgbs = (0.5 + SH_C0 * s["sh"][:, 0]).clamp(0, 1)
        return Splats(s["means"].numpy(), covariances.numpy(), rgbs.numpy(), s["opacities"][:, None].numpy())


def _quaternion_matrices(q: torch.Tensor) -> torch.Tensor:
    """Unit quaternions ``[N, 4]`` (w, x, y, z) -> rotations ``[N, 3, 3]``."""
    w, x, y, z = q.unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], -1).reshape(-1, 3, 3)


class MeshSource(Source):
    """A mesh file (GLB, OBJ, PLY, ...) shaded by `render3d.mesh.render_mesh` (open3d ray
    casting); the download is the mesh as GLB. The browser can draw it too."""

    def __init__(self, path: Path) -> None:
        from render3d.mesh import load_mesh

        self.path, self.name = Path(path), Path(path).stem
        self.mesh = load_mesh(self.path)
        self.framing = Framing.around(*self.mesh.bounds.tolist())

    def render(self, cameras, mode, settings, cancelled):
        from render3d.mesh import render_mesh

        return render_mesh(self.mesh, cameras, supersample=1)

    def download(self, settings, progress):
        progress(0.5, "writing the GLB")
        return f"{self.name}.glb", mesh_glb(self.mesh)

    def client_geometry(self):
        return self.mesh


MESH_SUFFIXES = (".glb", ".gltf", ".obj", ".ply", ".stl", ".off")


def is_gaussian_ply(path: Path) -> bool:
    """Whether a PLY file's vertices carry the 3DGS properties (read from the header only)."""
    with open(path, "rb") as file:
        header = file.read(1 << 16).split(b"end_header")[0]
    return b"property float f_dc_0" in header and b"property float opacity" in header


def open_source(target: str | Path | None) -> Source:
    """The source for the command line's TARGET: None -> the shipped demo checkpoint (the
    demo scene if it is missing); a generator (a .safetensors generator file, a checkpoint
    folder or a run folder); a built-in scene name or "procedural"; a 3DGS PLY (Gaussian
    splats); a mesh file (GLB, glTF, OBJ, PLY, STL, OFF). Raises ValueError naming what was
    expected otherwise."""
    fn = "viewer.open_source"
    from .generator import GeneratorSource      # which builds on this module

    if target is None:
        return GeneratorSource(DEMO_CHECKPOINT) if DEMO_CHECKPOINT.is_file() else scene_source(DEFAULT_SCENE)
    target = str(target)
    if target in scene_names():
        return scene_source(target)
    if target == PROCEDURAL:
        return procedural_source()
    from render3d.training.checkpoint import is_generator_path, resolve_generator_file

    path = Path(target)
    if is_generator_path(path):
        return GeneratorSource(path)
    if path.is_dir():                     # a folder that is no generator: say what it lacks
        try:
            resolve_generator_file(path)
        except ValueError as error:
            said = str(error).removeprefix("load_generator: argument 'path' ")
            raise ValueError(f"{fn}: argument 'target' {said}") from None
    if not path.is_file():
        raise ValueError(f"{fn}: argument 'target' expected a scene name ({', '.join(scene_names())}, {PROCEDURAL}), "
                         f"an existing file, or a checkpoint or run folder, got {target!r}")
    suffix = path.suffix.lower()
    if suffix == ".ply" and is_gaussian_ply(path):
        return SplatSource(path)
    if suffix in MESH_SUFFIXES:
        return MeshSource(path)
    raise ValueError(f"{fn}: argument 'target' expected a generator (.safetensors), a 3DGS PLY or a mesh file "
                     f"({', '.join(MESH_SUFFIXES)}), got {path}")
