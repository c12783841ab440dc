"""The viewer's source for a trained generator: seed, truncation and latent interpolation as
parameters, normals from its density, a coloured mesh as the download, and a run folder's newest
checkpoint taken up while training writes it."""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F

from render3d.cameras import Cameras, intrinsics_from_fov
from render3d.volume import VolumeRenderer

from .loop import RenderCancelled
from .sources import Parameter, Source, mesh_glb


class GeneratorSource(Source):
    """A trained generator (`render3d.training.load_generator`: a generator file, checkpoint
    or run folder). Parameters: the seed, the truncation, and a latent interpolation in w
    space towards a second seed (mix 0: the first seed alone, 1: the second). The download is
    `extract_generator_mesh` (marching cubes on its density, coloured by its own renders).

    Opened on a run folder, it follows the run (`follow`): the newest checkpoint that training
    writes replaces the generator shown. The swap is one attribute (`G`); a render or download
    takes the generator once and uses it throughout, and styles are cached per generator.

    A generator renders square images of a fixed size (its last resolution; depth and alpha
    at its neural resolution): a camera of any other shape is rendered as the square camera
    with the same pose and focal length spanning the longer side, resized to that side and
    cropped to the camera's shape, so nothing is stretched. Normals are the gradients of its
    density (`G.density`, the generator interface) composited by the volume renderer inside
    its box `G.bbox`, at up to `NORMALS_RESOLUTION` pixels.
    """

    NORMALS_RESOLUTION = 128
    NORMALS_SAMPLES = 24  # coarse and importance samples per ray

    def __init__(self, path: str | Path, *, device: str | torch.device | None = None,
                 mesh_resolution: int = 128) -> None:
        from render3d.generators.sampling import view_framing
        from render3d.training.checkpoint import generator_name, resolve_generator_file

        self.path, self.mesh_resolution = Path(path), mesh_resolution
        self.file = resolve_generator_file(self.path)
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.G, self.meta = self._load(self.file, device, self.path)
        self.device = torch.device(device)
        self.name = generator_name(self.file)
        self.follows = (self.path / "checkpoints").is_dir()    # a run folder: its newest checkpoint
        self._refused: set[Path] = set()                       # newer checkpoints that could not be shown
        self.framing = view_framing(self.meta["view"])
        # samples only inside the generator's box (the rays' segment is clipped to it)
        self.normals_renderer = VolumeRenderer(n_coarse=self.NORMALS_SAMPLES, n_fine=self.NORMALS_SAMPLES, near=0.0,
                                               far=1e6, bbox=self.G.bbox, check_values=False)
        self.parameters = (
            Parameter("seed", "Seed", 0, 0, 9999),
            Parameter("truncation", "Truncation", 0.7, 0.0, 1.0, 0.05, integer=False),
            Parameter("seed_b", "Interpolate to seed", 1, 0, 9999),
            Parameter("mix", "Interpolation", 0.0, 0.0, 1.0, 0.05, integer=False),
        )
        self._ws = functools.lru_cache(maxsize=32)(self._styles)

    @staticmethod
    def _load(file: Path, device, named: Path):
        """(generator, metadata) of a generator file; a ValueError naming `named` for one whose
        densities are not finite (a diverged one failed in every render, the page blank)."""
        from render3d.generators.sampling import nonfinite_density, styles_from_seeds
        from render3d.training import load_generator

        G, meta = load_generator(file, device)               # which checks the device
        bad = nonfinite_density(G, styles_from_seeds(G, [0], meta["view"]), meta["view"])
        if bad is not None:
            raise ValueError(f"viewer.GeneratorSource: argument 'path' expected a generator whose densities are "
                             f"finite, got {named}, whose density at the centre of seed 0's subject is "
                             f"{bad[1]} (did its training diverge?)")
        return G, meta

    def follow(self) -> str | None:
        """On a run folder: show its newest checkpoint if it is not the one shown (returns its
        name, "step-N"); None when there is none newer. A newest checkpoint that cannot be shown
        (diverged, or rotated away while being read) raises ValueError once and stays unshown."""
        from render3d.training import latest_checkpoint
        from render3d.training.checkpoint import GENERATOR_FILE, generator_name

        newest = latest_checkpoint(self.path) if self.follows else None
        if newest is None or newest / GENERATOR_FILE == self.file or newest in self._refused:
            return None
        try:
            G, meta = self._load(newest / GENERATOR_FILE, self.device, newest)
        except (ValueError, OSError) as error:
            self._refused.add(newest)
            raise ValueError(f"{newest.name} of {self.path} is not shown, {self.file.parent.name} stays: "
                             f"{error}") from None
        self.meta, self.file, self.name = meta, newest / GENERATOR_FILE, generator_name(newest / GENERATOR_FILE)
        self.G = G                                           # the swap: renders take it once
        self._ws.cache_clear()
        return newest.name

    @property
    def state(self) -> str:
        """A checkpoint from early in a progressive run (`VolumeGAN.set_stage`): which stage its
        pictures are, up-sampled to its full size."""
        stage = getattr(self.G, "stage", None)
        if stage is None:
            return ""
        fading = f", fading in at {stage[1]:.2f}" if stage[1] < 1 else ""
        return f"still growing: its {stage[0]} px stage{fading}, up-sampled"

    def _styles(self, G, seed: int, truncation: float, seed_b: int, mix: float) -> torch.Tensor:
        from render3d.generators.sampling import styles_from_seeds

        with torch.no_grad():
            w = styles_from_seeds(G, [seed, seed_b], self.meta["view"], truncation=truncation, device=self.device)
        return torch.lerp(w[:1], w[1:], mix)

    def ws(self, settings: Mapping[str, float], G=None) -> torch.Tensor:
        """``[1, num_ws, w_dim]``: the styles of `settings` (defaults for missing names) for
        generator `G` (the one shown by default), cached per generator."""
        s = self.resolve(settings)
        G = self.G if G is None else G
        return self._ws(G, int(s["seed"]), float(s["truncation"]), int(s["seed_b"]), float(s["mix"]))

    def render(self, cameras, mode, settings, cancelled):
        if cancelled():
            raise RenderCancelled
        G = self.G                                          # one generator for the whole frame
        ws = self.ws(settings, G)
        width, height = cameras.width, cameras.height
        side = max(width, height)
        focal = float(cameras.intrinsics[0, 1, 1]) * height          # pixels (square pixels)
        fov = math.degrees(2 * math.atan(side / (2 * focal)))
        square = Cameras(cameras.cam2world.to(self.device, torch.float32),
                         intrinsics_from_fov(fov, side, side, device=self.device), side, side)
        with torch.no_grad():
            out = G.synthesis(ws, square, noise_mode="const")
        top, left = (side - height) // 2, (side - width) // 2

        def fitted(image):
            image = F.interpolate(image.float(), size=(side, side), mode="bilinear", align_corners=False,
                                  antialias=image.shape[-1] > side)
            return image[..., top:top + height, left:left + width].cpu()

        views = {"image": fitted((out["image"] + 1) / 2).clamp(0, 1), "depth": fitted(out["depth"]),
                 "alpha": fitted(out["alpha"]).clamp(0, 1)}
        if mode == "normals":
            if cancelled():
                raise RenderCancelled
            n = min(side, self.NORMALS_RESOLUTION)

            def density(points, directions):
                sigma = G.density(points, ws)
                return sigma, sigma[..., None]  # no features needed: the renderer composites the normals

            with torch.no_grad():  # the renderer differentiates the density itself
                normals = self.normals_renderer(density, square.resized(n, n), normals=True, jitter=False)["normals"]
            views["normals"] = F.normalize(fitted(normals), dim=1)
        return views

    def download(self, settings, progress):
        from render3d.generators.sampling import extract_generator_mesh

        s = self.resolve(settings)
        n = self.mesh_resolution
        G, name = self.G, self.name                         # one generator for the whole download
        progress(0.1, f"sampling the generator's density on a {n}^3 grid, marching cubes, colours")
        mesh = extract_generator_mesh(G, self.ws(s, G), resolution=n, view=self.meta["view"])
        progress(0.9, "writing the GLB")
        name = f"{name}_seed{int(s['seed'])}"
        if float(s["mix"]) > 0:
            name += f"-seed{int(s['seed_b'])}_mix{float(s['mix']):g}"
        return f"{name}.glb", mesh_glb(mesh)
