"""The training config: one dataclass tree read from a YAML preset plus ``key=value``
overrides. Components are named by ``<role>_type`` and configured by ``<role>:``, checked
against the registered component's own config dataclass."""

from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from render3d._checks import said_choices
from render3d.cameras import pose_prior_problem
from render3d.config import apply_overrides, from_dict, load_yaml, to_dict
from render3d.registry import DISCRIMINATORS, GENERATORS, LOSSES

POSE_SOURCES = ("dataset", "prior")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("float32", "bfloat16")
# What metrics.best may name to rank the best generator (best/); see `best_rank`.
BEST_METRICS = ("images/fid", "images/kid", "shapes/mmd", "shapes/coverage", "shapes/one_nn_accuracy")
ROLES = {"generator": GENERATORS, "discriminator": DISCRIMINATORS, "loss": LOSSES}


@dataclass
class DataConfig:
    path: str = ""                  # EG3D dataset: folder or zip with dataset.json (made absolute)
    xflip: bool = True              # add mirrored copies (with mirrored cameras)
    workers: int = 0                # DataLoader worker processes (0: load in the training process)

    def __post_init__(self) -> None:
        # Relative to the current folder, made absolute at once: config.yaml and the checkpoints
        # keep it so, and `render3d train --resume RUN` from another folder still finds it.
        self.path = os.path.abspath(self.path) if self.path else self.path
        _expect("config.data.workers", self.workers >= 0, "a non-negative int", self.workers)


@dataclass
class PoseConfig:
    """Where generator cameras come from: "dataset" replays the dataset's labels (EG3D);
    "prior" draws yaw and pitch (radians, EG3D convention) around the means (VolumeGAN:
    Gaussian, spreads 0.3 and 0.155) at `radius`, looking at `pivot`, with a vertical FOV."""

    source: str = "dataset"
    distribution: str = "gaussian"
    yaw_mean: float = math.pi / 2
    yaw_spread: float = 0.3
    pitch_mean: float = math.pi / 2
    pitch_spread: float = 0.155
    radius: float = 1.0
    fov_degrees: float = 12.0
    pivot: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        _expect("config.poses.source", self.source in POSE_SOURCES, f"one of {said_choices(POSE_SOURCES)}", self.source)
        problem = pose_prior_problem(self)
        if problem is not None:
            name, expected, value = problem
            _expect(f"config.poses.{name}", False, expected, value)


@dataclass
class ProgressiveConfig:
    """Progressive growing (VolumeGAN): train at `start_resolution` for `stage_kimg`, then for
    each doubling fade the new block in over `fade_kimg` and train it for `stage_kimg`.
    start_resolution 0: train at full resolution from the start."""

    start_resolution: int = 0
    stage_kimg: float = 750.0
    fade_kimg: float = 750.0

    def __post_init__(self) -> None:                    # which resolutions: checked against the generator's
        _expect("config.progressive.start_resolution", self.start_resolution >= 0, "0 or one of the generator's "
                "resolutions", self.start_resolution)
        for name in ("stage_kimg", "fade_kimg"):
            value = getattr(self, name)
            _expect(f"config.progressive.{name}", value >= 0, "a non-negative number", value)


@dataclass
class MetricsConfig:
    """Metrics of the EMA generator while it trains, every `every` steps and at the end (0:
    none), as `render3d eval generator` computes them for a checkpoint: COV / MMD / 1-NNA of
    the subjects of seeds 0..shapes-1 against the first `max_reference` meshes of a synthetic
    dataset, and FID / KID of `images` images against the dataset's when the Inception file is
    there."""

    every: int = 0                  # steps between measurements (0: none)
    shapes: int = 32                # generated shapes (0: no shape metrics)
    max_reference: int | None = 64  # the dataset's first meshes compared with (null: all)
    mesh_resolution: int = 64       # marching-cubes grid per side
    points: int = 2048              # points sampled per shape
    images: int = 1000              # generated and real images for FID/KID (0: none)
    inception: str = ""             # inception-2015-12-05.pt (default: $RENDER3D_INCEPTION, else the cache's)
    best: str = ""                  # the metric that ranks best/ (BEST_METRICS; "": FID, else shape MMD)

    def __post_init__(self) -> None:
        self.inception = os.path.abspath(self.inception) if self.inception else self.inception  # as data.path
        for name, least in (("every", 0), ("shapes", 0), ("mesh_resolution", 2), ("points", 1)):
            value = getattr(self, name)
            _expect(f"config.metrics.{name}", value >= least, f"an int >= {least}", value)
        _expect("config.metrics.max_reference", self.max_reference is None or self.max_reference >= 1,
                "null or an int >= 1", self.max_reference)
        _expect("config.metrics.images", self.images == 0 or self.images >= 2, "0 or an int >= 2 (FID's covariances "
                "need two images)", self.images)
        _expect("config.metrics.best", self.best in ("", *BEST_METRICS),
                f"'' or one of {said_choices(BEST_METRICS)}", self.best)
        for part, count in (("images", self.images), ("shapes", self.shapes)):
            _expect("config.metrics.best", not (self.best.startswith(f"{part}/") and count == 0),
                    f"a metric that is measured (metrics.{part}=0 measures no {part}/...)", self.best)


def best_rank(metric: str, value: float) -> float:
    """How a `metric` (one of BEST_METRICS) of `value` ranks, lower first: FID, KID and MMD
    as they are, coverage negated (higher is better), 1-NNA's distance from 50% (its ideal)."""
    if metric == "shapes/coverage":
        return -value
    if metric == "shapes/one_nn_accuracy":
        return abs(value - 0.5)
    return value


@dataclass
class TrainConfig:
    generator_type: str = "volumegan"
    generator: Any = None           # the generator's config (its registered dataclass)
    discriminator_type: str = "stylegan2"
    discriminator: Any = None
    loss_type: str = "stylegan2"
    loss: Any = None
    data: DataConfig = field(default_factory=DataConfig)
    poses: PoseConfig = field(default_factory=PoseConfig)
    progressive: ProgressiveConfig = field(default_factory=ProgressiveConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    batch: int = 64                 # images per step, over all processes
    batch_gpu: int | None = None    # images per pass in each process, gradients summed (null: its whole share)
    total_kimg: float = 25000.0     # training length in thousands of real images shown to D
    lr_g: float = 0.002             # Adam learning rates
    lr_d: float = 0.002
    betas: tuple[float, float] = (0.0, 0.99)
    ema_kimg: float = 20.0          # half-life of the generator's EMA, thousands of images
    ema_rampup: float | None = None  # limit the EMA half-life to this share of the images seen so far
    seed: int = 0
    device: str = "auto"            # "auto" (cuda if available), "cpu", "cuda"
    # "bfloat16": the forward passes of the generator's 2D part and of the discriminator run under
    # bf16 autocast (weights, gradients, Adam and the 3D rendering stay float32)
    precision: str = "float32"
    # On CUDA, as StyleGAN2-ADA and EG3D train: cuDNN times its algorithms for each new
    # convolution shape and keeps the fastest (the first steps at each shape are slower), and
    # float32 matmuls and convolutions run in full float32; tf32=true lets them round their
    # inputs to TF32 (a 10-bit mantissa) on the tensor cores. The CPU ignores both.
    cudnn_benchmark: bool = True
    tf32: bool = False
    log_every: int = 20             # steps per TensorBoard scalar and stats.jsonl line (and the last steps)
    image_every: int = 500          # steps between image grids (0: only at the end)
    video_every: int = 2000         # steps between orbit videos (0: only at the end)
    checkpoint_every: int = 1000    # steps between checkpoints
    keep_checkpoints: int = 3       # newest checkpoints kept (older ones are deleted; 0: keep all)

    def __post_init__(self) -> None:
        """Values the training loop would fail on only later (mid-run, or in torch's or numpy's
        own words) are refused here, named as their override keys."""
        _expect("config.batch", self.batch >= 1, "a positive int", self.batch)
        divides = self.batch_gpu is None or (self.batch_gpu >= 1 and self.batch % self.batch_gpu == 0)
        _expect("config.batch_gpu", divides, f"null or a divisor of config.batch ({self.batch})", self.batch_gpu)
        _expect("config.total_kimg", self.total_kimg > 0, "a positive number", self.total_kimg)
        _expect("config.total_kimg", self.batch <= int(self.total_kimg * 1000),      # else 0 steps, a step-0 checkpoint
                f"at least one batch ({self.batch} images: {self.batch / 1000:g})", self.total_kimg)
        for name in ("lr_g", "lr_d"):
            _expect(f"config.{name}", getattr(self, name) > 0, "a positive number", getattr(self, name))
        _expect("config.betas", all(0 <= b < 1 for b in self.betas), "two numbers in [0, 1)", list(self.betas))
        _expect("config.ema_kimg", self.ema_kimg >= 0, "a non-negative number", self.ema_kimg)
        _expect("config.ema_rampup", self.ema_rampup is None or self.ema_rampup > 0, "null or a positive number",
                self.ema_rampup)
        _expect("config.seed", 0 <= self.seed < 2**32, "an int in [0, 2**32)", self.seed)
        _expect("config.device", self.device in DEVICES, f"one of {said_choices(DEVICES)}", self.device)
        _expect("config.precision", self.precision in PRECISIONS, f"one of {said_choices(PRECISIONS)}", self.precision)
        for name in ("log_every", "checkpoint_every"):
            _expect(f"config.{name}", getattr(self, name) >= 1, "a positive int", getattr(self, name))
        for name in ("image_every", "video_every", "keep_checkpoints"):
            _expect(f"config.{name}", getattr(self, name) >= 0, "a non-negative int", getattr(self, name))


def _expect(key: str, ok: bool, expected: str, value) -> None:
    if not ok:
        raise ValueError(f"{key}: expected {expected}, got {value!r}")


def resolve_config(data: dict) -> TrainConfig:
    """A TrainConfig from a mapping; every section, including the components' own, checked."""
    config = from_dict(TrainConfig, data, path="config")
    for role, registry in ROLES.items():
        entry = registry.get(getattr(config, f"{role}_type"))
        value = getattr(config, role)
        if not isinstance(value, entry.config):
            setattr(config, role, from_dict(entry.config, value or {}, path=role))
    return config


def load_config(path: str | Path, overrides: list[str] = ()) -> TrainConfig:
    """Read a YAML preset and apply ``key=value`` overrides (dotted keys for sections)."""
    return resolve_config(apply_overrides(load_yaml(path), list(overrides)))


def config_dict(config: TrainConfig) -> dict:
    """The resolved config as plain data (what the run folder's config.yaml holds)."""
    return to_dict(config)


def config_changes(before: dict, after: dict) -> list[tuple[str, object, object]]:
    """(dotted key, value before, value after) for each setting that differs between two
    resolved configs as `config_dict` gives them (a checkpoint's and the one resuming it).
    A checkpoint written before a setting existed trained with its default: `before` gets
    the defaults of the settings it lacks, so that they are not listed."""
    if before:                                          # (an empty one is no config: nothing to complete)
        try:
            before = config_dict(resolve_config(copy.deepcopy(before)))
        except (ValueError, TypeError):                 # not a config of today's settings: as it is
            pass
    return _differences(before, after, "")


def _differences(before: dict, after: dict, prefix: str) -> list[tuple[str, object, object]]:
    changes = []
    for key in dict.fromkeys([*before, *after]):
        old, new = before.get(key), after.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            changes += _differences(old, new, f"{prefix}{key}.")
        elif old != new:
            changes.append((f"{prefix}{key}", old, new))
    return changes


def changes_said(changes: list[tuple[str, object, object]]) -> str:
    """`config_changes` in words: "lr_g 0.0025 -> 0.001, data.path 'a' -> 'b'"."""
    return ", ".join(f"{key} {old!r} -> {new!r}" for key, old, new in changes)
