"""Shared pieces of the GAN tests: a tiny posed dataset on disk and a tiny VolumeGAN config
(16 px images, 8 px feature maps, a few channels), so that a training step takes milliseconds."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import torch
import yaml
from _cli import run_cli
from PIL import Image

from render3d.cameras import sample_yaw_pitch
from render3d.datasets import SynthConfig, generate_synthetic, write_labels
from render3d.training import resolve_config

SIZE = 16


def tiny_generator(**overrides) -> dict:
    return {"z_dim": 8, "w_dim": 16, "mapping_layers": 1, "resolution": SIZE, "neural_resolution": 8,
            "volume_channels": [8, 4], "bounds": [[-0.5, -0.5, -0.5], [0.5, 0.5, 0.5]], "mlp_width": 16,
            "mlp_layers": 2, "pe_frequencies": 2, "feature_dim": 8, "n_coarse": 4, "n_fine": 4, "near": 1.0,
            "far": 4.0, "renderer_fmap_base": 64, "renderer_fmap_max": 16, **overrides}


def tiny_config(data: Path, **overrides) -> dict:
    """A TrainConfig mapping for the tiny dataset (`overrides` replace top-level keys)."""
    return {
        "generator": tiny_generator(),
        "discriminator": {"resolution": SIZE, "channel_base": 128, "channel_max": 16, "mbstd_group": 2},
        "loss": {"r1_gamma": 1.0, "r1_interval": 2, "style_mixing": 0.5},
        "data": {"path": str(data), "xflip": True},
        "batch": 4, "total_kimg": 0.032, "lr_g": 0.002, "lr_d": 0.002, "ema_kimg": 0.01, "log_every": 2,
        "image_every": 0, "video_every": 0, "checkpoint_every": 1000, "device": "cpu", **overrides,
    }


def tiny_train_config(data: Path, **overrides):
    return resolve_config(tiny_config(data, **overrides))


def write_tiny_dataset(folder: Path, count: int = 12, seed: int = 0) -> Path:
    """`count` 16 px images of a coloured disc on white, with EG3D labels of cameras around
    the origin (radius 2.4, FOV 32 degrees)."""
    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    names = []
    for i in range(count):
        cx, cy, r = rng.uniform(5, 11), rng.uniform(5, 11), rng.uniform(3, 6)
        image = np.full((SIZE, SIZE, 3), 255, np.uint8)
        image[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = rng.integers(0, 200, 3)
        name = f"images/{i:04d}.png"
        Image.fromarray(image).save(folder / name)
        names.append(name)
    cameras = sample_yaw_pitch(count, yaw_spread=1.0, pitch_spread=0.2, radius=2.4, width=SIZE, height=SIZE,
                               fov_degrees=32.0, generator=torch.Generator().manual_seed(seed))
    write_labels(folder, names, cameras.to_eg3d_label())
    return folder


class _Colours(torch.nn.Module):
    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        pixels = x.float().flatten(2) / 255
        width = torch.full((len(x), 1), float(x.shape[-1]), device=x.device)
        return torch.cat([pixels.mean(-1), pixels.std(-1), width], dim=1)


def stand_in_inception(path: Path) -> Path:
    """A stand-in for the Inception file with its TorchScript interface (uint8 images of any
    size -> features): colour statistics and the image width as features."""
    torch.jit.script(_Colours()).save(str(path))
    return path


def nan_after_update(monkeypatch, update: int, tensor) -> None:
    """Make the training loop's `update`-th optimizer step (counted from 1; G's and D's
    alternate, so 3 is G's in step 2 and 4 is D's) fill `tensor(module)` with NaN after it,
    behind the gradient guard's back, as weights that diverge do."""
    from render3d.training import loop

    step = loop.optimizer_step
    count = [0]

    def corrupting(name, module, *args):
        finite = step(name, module, *args)
        count[0] += 1
        if count[0] == update:
            with torch.no_grad():
                tensor(module).fill_(float("nan"))
        return finite

    monkeypatch.setattr(loop, "optimizer_step", corrupting)


def diverged_generator(path: Path) -> Path:
    """The shipped demo generator with NaN weights in its density head, as a run that diverged
    would leave it, saved to `path` (a generator file)."""
    from render3d import DEMO_CHECKPOINT
    from render3d.training import load_generator, save_generator

    G, meta = load_generator(DEMO_CHECKPOINT)
    with torch.no_grad():
        G.density_head.weight.fill_(float("nan"))
    return save_generator(path, G, meta)


def collapsed_generator(path: Path) -> Path:
    """The shipped demo generator with its density head giving 0 everywhere (a zero weight and
    a negative bias under VolumeGAN's ReLU), as a run that collapsed to empty subjects would
    leave it, saved to `path` (a generator file). Its renders are the background."""
    from render3d import DEMO_CHECKPOINT
    from render3d.training import load_generator, save_generator

    G, meta = load_generator(DEMO_CHECKPOINT)
    with torch.no_grad():
        G.density_head.weight.zero_()
        G.density_head.bias.fill_(-1.0)
    return save_generator(path, G, meta)


def partly_collapsed_generator(path: Path, seeds, resolution: int) -> tuple[Path, list[int]]:
    """The shipped demo generator with its density lowered by one constant, so that the
    subjects of about half of `seeds` have density 0 at every point of the `resolution`-per-side
    marching-cubes grid (no surface) and the others keep some above 0, as a barely trained run
    leaves a few empty subjects; saved to `path`. Returns the file and the empty seeds."""
    from render3d import DEMO_CHECKPOINT
    from render3d.generators.sampling import styles_from_seeds
    from render3d.mesh.extract import sample_grid
    from render3d.training import load_generator, save_generator

    G, meta = load_generator(DEMO_CHECKPOINT)
    peaks = {}
    with torch.no_grad():
        for seed in seeds:                              # the highest density on the grid extract_mesh samples
            ws = styles_from_seeds(G, [seed], meta["view"])
            peaks[seed] = float(sample_grid(lambda p: G.density(p[None].to(ws), ws)[0], G.bbox, resolution).max())
        ordered = sorted(peaks.values())
        cut = (ordered[len(ordered) // 2 - 1] + ordered[len(ordered) // 2]) / 2
        assert ordered[0] > 0 and ordered[len(ordered) // 2] - cut > 1e-3 * cut   # apart, not a rounding's width
        head = G.density_head
        head.bias -= cut / head.bias_gain               # ReLU density: the peak falls by `cut`
    return save_generator(path, G, meta), sorted(seed for seed, peak in peaks.items() if peak < cut)


def add_run_checkpoint(run: Path, step: int, edit=None) -> Path:
    """A checkpoint folder RUN/checkpoints/step-N holding the demo generator (its weights changed
    in place by `edit(G)`) and a state.json: what the viewer reads of a training run."""
    from render3d import DEMO_CHECKPOINT
    from render3d.training import load_generator, save_generator

    folder = run / "checkpoints" / f"step-{step:07d}"
    temp = folder.with_name(f".{folder.name}.tmp")        # renamed into place, as training does
    temp.mkdir(parents=True)
    G, meta = load_generator(DEMO_CHECKPOINT)
    if edit is not None:
        with torch.no_grad():
            edit(G)
    save_generator(temp / "generator.safetensors", G, meta)
    (temp / "state.json").write_text(json.dumps({"step": step}))
    temp.rename(folder)
    return folder


def train_tiny_run(root: Path) -> tuple[Path, Path, subprocess.CompletedProcess]:
    """(dataset, run folder, the train command's result): a synthetic dataset (32 px, 3 objects)
    in root/synth and a 2-step `render3d train` of a tiny VolumeGAN on it in root/run."""
    data = root / "synth"
    generate_synthetic(data, SynthConfig(subjects=3, views=2, resolution=32, supersample=1, mesh_resolution=24),
                       progress=False)
    config = root / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config(data, total_kimg=0.008)))
    result = run_cli("train", str(config), "--out", str(root / "run"), "--no-progress", "log_every=1")
    assert result.returncode == 0, result.stderr
    return data, root / "run", result
