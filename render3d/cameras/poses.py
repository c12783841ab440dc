"""Where cameras stand: look-at and yaw/pitch poses, pose samplers for training, video paths.

Everything returns `Cameras` in render3d's convention (OpenCV cam2world, world +y up).
A yaw/pitch camera sits on the sphere of `radius` around `center` and looks at `pivot`, with
world +y up on screen. Both default to the world origin; EG3D's LookAtPoseSampler keeps
the sphere around the origin and moves only the look-at point (FFHQ: pivot (0, 0, 0.2),
radius 2.7, so its frontal camera is at (0, 0, 2.7)); pass center=pivot to circle the pivot.
Yaw and pitch are radians, in one of two conventions:

- "eg3d" (LookAtPoseSampler): yaw is the azimuth about +y with pi/2 frontal; pitch pi/2 is
  level and 0 looks down from +y. EG3D maps pitch to the polar angle
  arccos(1 - 2 pitch / pi), which equals pitch only at 0, pi/2 and pi, and places the camera at
  center + r (sin(polar) cos(pi - yaw), cos(polar), sin(polar) sin(pi - yaw)); so
  yaw = pitch = pi/2 puts it at center + (0, 0, r), camera x = world +x, camera y = world -y.
- "pigan" (pi-GAN's sample_camera_positions): pitch is the polar angle and the camera sits at
  center + r (sin(pitch) cos(yaw), cos(pitch), sin(pitch) sin(yaw)): yaw mirrored in x.

Both peers clamp pitch to [POLE_EPS, pi - POLE_EPS] and so does render3d: a camera asked for
at a pole sits a hair off the y axis, where "look at the pivot, +y up" still fixes its roll.
"""

from __future__ import annotations

import math

import torch

from render3d._checks import check_choice, check_finite, check_number, check_positive, check_tensor, said_choices
from render3d.cameras._validate import _broadcast, _check_size, _first_bad
from render3d.cameras.camera import Cameras, _pose, intrinsics_from_fov

POLE_EPS = 1e-5
CONVENTIONS = ("eg3d", "pigan")


def _look_at_rotation(fn: str, forward: torch.Tensor, up: torch.Tensor, scale: torch.Tensor,
                      names: tuple[str, str]) -> torch.Tensor:
    """OpenCV rotation [B, 3, 3] (columns: camera x, y, z in world) looking along `forward`
    [B, 3], rolled so that camera y points away from `up` [B, 3] (world up is up on screen).

    scale [B]: the size of the coordinates `forward` was computed from; a `forward` shorter
    than 1e-6 of it is rounding noise, not a direction. names: the caller's arguments to blame
    for a vanishing `forward` and for `forward` parallel to `up`.
    """
    length = forward.norm(dim=-1, keepdim=True)
    if (i := _first_bad(~(length[:, 0] > 1e-6 * scale))) is not None:
        raise ValueError(f"{fn}: argument '{names[0]}' expected a point apart from the camera, "
                         f"got the camera's own position in camera {i}")
    z = forward / length
    x = torch.linalg.cross(z, up / up.norm(dim=-1, keepdim=True))
    sine = x.norm(dim=-1, keepdim=True)
    if (i := _first_bad(~(sine[:, 0] > 1e-6))) is not None:
        raise ValueError(f"{fn}: argument '{names[1]}' expected a view not parallel to up {up[i].tolist()}, "
                         f"got viewing direction {z[i].tolist()} in camera {i}")
    x = x / sine
    return torch.stack([x, torch.linalg.cross(z, x), z], -1)


def _resolve_intrinsics(fn: str, fov_degrees, intrinsics, batch: int, width: int, height: int,
                        like: torch.Tensor) -> torch.Tensor:
    """[B, 3, 3] normalized intrinsics from exactly one of `fov_degrees` and `intrinsics`."""
    if (fov_degrees is None) == (intrinsics is None):
        got = "both" if intrinsics is not None else "neither"
        raise ValueError(f"{fn}: arguments 'fov_degrees', 'intrinsics' expected exactly one, got {got}")
    if intrinsics is not None:
        return _broadcast(fn, "intrinsics", intrinsics, (3, 3), batch, like)
    return intrinsics_from_fov(_broadcast(fn, "fov_degrees", fov_degrees, (), batch, like), width, height)


def _look_at(fn: str, eye, target, up, *, width: int, height: int, fov_degrees, intrinsics) -> Cameras:
    """`Cameras.look_at`, naming `fn` in its errors."""
    check_tensor(fn, "eye", eye, (None, 3))
    b = len(eye)
    target = _broadcast(fn, "target", target, (3,), b, eye)
    up = _broadcast(fn, "up", up, (3,), b, eye)
    intrinsics = _resolve_intrinsics(fn, fov_degrees, intrinsics, b, width, height, eye)
    scale = eye.norm(dim=-1) + target.norm(dim=-1)
    rotation = _look_at_rotation(fn, target - eye, up, scale, ("target", "up"))
    return Cameras(_pose(rotation, eye), intrinsics, width, height)


def _from_yaw_pitch(fn: str, yaw, pitch, radius, *, width: int, height: int, pivot, center, fov_degrees,
                    intrinsics, convention: str) -> Cameras:
    """`Cameras.from_yaw_pitch`, naming `fn` in its errors."""
    check_choice(fn, "convention", convention, CONVENTIONS)
    if not isinstance(yaw, torch.Tensor):
        yaw = torch.tensor([float(yaw)])
    check_tensor(fn, "yaw", yaw, (None,))
    b = len(yaw)
    pitch = _broadcast(fn, "pitch", pitch, (), b, yaw)
    check_finite(fn, "yaw", yaw)
    check_finite(fn, "pitch", pitch)                  # NaN was blamed on 'pivot' by the look-at frame
    pitch = pitch.clamp(POLE_EPS, math.pi - POLE_EPS)
    radius = _broadcast(fn, "radius", radius, (), b, yaw)
    if (i := _first_bad(~((radius > 0) & torch.isfinite(radius)))) is not None:
        raise ValueError(f"{fn}: argument 'radius' expected positive finite values, got {radius[i].item()} at "
                         f"index {i}")
    pivot = _broadcast(fn, "pivot", pivot, (3,), b, yaw)
    center = _broadcast(fn, "center", center, (3,), b, yaw)
    if convention == "eg3d":
        polar, azimuth = torch.arccos(1 - 2 * pitch / math.pi), math.pi - yaw
    else:
        polar, azimuth = pitch, yaw
    offset = radius[:, None] * torch.stack([polar.sin() * azimuth.cos(), polar.cos(), polar.sin() * azimuth.sin()], -1)
    # pivot - position, grouped so that it is exactly -offset when center == pivot: no digits
    # cancel near a pole, where the look-at frame needs them.
    forward = (pivot - center) - offset
    up = offset.new_tensor([0.0, 1.0, 0.0]).expand(b, 3)
    rotation = _look_at_rotation(fn, forward, up, radius + (pivot - center).norm(dim=-1), ("pivot", "pitch"))
    intrinsics = _resolve_intrinsics(fn, fov_degrees, intrinsics, b, width, height, yaw)
    return Cameras(_pose(rotation, center + offset), intrinsics, width, height)


def _to_yaw_pitch(fn: str, cameras: Cameras, center, convention: str) -> tuple[torch.Tensor, ...]:
    """`Cameras.to_yaw_pitch`, naming `fn` in its errors."""
    check_choice(fn, "convention", convention, CONVENTIONS)
    offset = cameras.centers - _broadcast(fn, "center", center, (3,), len(cameras), cameras.cam2world)
    radius = offset.norm(dim=-1)
    cos_polar = (offset[:, 1] / radius).clamp(-1, 1)
    if convention == "eg3d":
        return torch.atan2(offset[:, 2], -offset[:, 0]), math.pi * (1 - cos_polar) / 2, radius
    return torch.atan2(offset[:, 2], offset[:, 0]), torch.arccos(cos_polar), radius


POSE_DISTRIBUTIONS = ("gaussian", "uniform")


def pose_prior_problem(prior, unit: str = "radians") -> tuple[str, str, object] | None:
    """The first setting of a yaw/pitch camera prior (as `sample_yaw_pitch` draws it, EG3D's
    convention) that cannot work, as (name, what was expected, value); None when all can.
    `prior`: anything with distribution, yaw_mean, yaw_spread, pitch_mean, pitch_spread,
    radius and fov_degrees attributes, its angles in `unit` ("radians" or "degrees", for
    a command line that takes degrees); the configs that hold one raise in their own words."""
    p = prior
    half_turn, half_turn_said = {"radians": (math.pi, "pi"), "degrees": (180.0, "180")}[unit]
    checks = (
        ("distribution", p.distribution in POSE_DISTRIBUTIONS, f"one of {said_choices(POSE_DISTRIBUTIONS)}"),
        ("yaw_mean", math.isfinite(p.yaw_mean), f"a finite number ({unit})"),
        ("yaw_spread", math.isfinite(p.yaw_spread) and p.yaw_spread >= 0, f"a finite non-negative number ({unit})"),
        ("pitch_mean", 0 <= p.pitch_mean <= half_turn,
         f"{unit} in [0, {half_turn_said}] (0 looks down from +y, {half_turn_said} up from below)"),
        ("pitch_spread", math.isfinite(p.pitch_spread) and p.pitch_spread >= 0,
         f"a finite non-negative number ({unit})"),
        ("radius", math.isfinite(p.radius) and p.radius > 0, "a positive finite number"),
        ("fov_degrees", 0 < p.fov_degrees < 180, "degrees in (0, 180)"),
    )
    return next(((name, expected, getattr(p, name)) for name, ok, expected in checks if not ok), None)


def sample_yaw_pitch(batch: int, *, yaw_spread: float, pitch_spread: float, radius: float, width: int,
                     height: int, yaw_mean: float = math.pi / 2, pitch_mean: float = math.pi / 2,
                     distribution: str = "gaussian", pivot=(0.0, 0.0, 0.0), center=(0.0, 0.0, 0.0),
                     fov_degrees=None, intrinsics: torch.Tensor | None = None, convention: str = "eg3d",
                     generator: torch.Generator | None = None, device=None,
                     dtype: torch.dtype = torch.float32) -> Cameras:
    """`batch` random cameras on the sphere around `center`, looking at `pivot`, as EG3D's
    Gaussian/UniformCameraPoseSampler and pi-GAN's sample_camera_positions draw them.

    distribution "gaussian": yaw ~ N(yaw_mean, yaw_spread^2), pitch likewise; "uniform": yaw
    uniform in yaw_mean +- yaw_spread, pitch likewise. Radians; `convention` as in the module
    docstring. Noise is drawn on `generator`'s device (reproducible for a seeded generator),
    then moved to `device` if given. Give exactly one of `fov_degrees` and `intrinsics`.
    """
    fn = "sample_yaw_pitch"
    _check_size(fn, "batch", batch)
    check_positive(fn, "yaw_spread", yaw_spread, allow_zero=True)
    check_positive(fn, "pitch_spread", pitch_spread, allow_zero=True)
    _check_numbers(fn, yaw_mean=yaw_mean, pitch_mean=pitch_mean)
    check_choice(fn, "distribution", distribution, POSE_DISTRIBUTIONS)
    noise_device = generator.device if generator is not None else device
    if distribution == "gaussian":
        noise = torch.randn(2, batch, generator=generator, device=noise_device, dtype=dtype)
    else:
        noise = torch.rand(2, batch, generator=generator, device=noise_device, dtype=dtype) * 2 - 1
    noise = noise.to(device)
    return _from_yaw_pitch(fn, yaw_mean + yaw_spread * noise[0], pitch_mean + pitch_spread * noise[1], radius,
                           width=width, height=height, pivot=pivot, center=center, fov_degrees=fov_degrees,
                           intrinsics=intrinsics, convention=convention)


class DatasetPoseSampler:
    """Replays a dataset's camera labels, as EG3D draws generator poses during training.

    labels: [M, 25] EG3D labels (all checked once, here); width, height: the image size.
    """

    def __init__(self, labels: torch.Tensor, width: int, height: int) -> None:
        check_tensor("DatasetPoseSampler", "labels", labels, (None, 25))
        if len(labels) == 0:
            raise ValueError("DatasetPoseSampler: argument 'labels' expected at least one label, got shape [0, 25]")
        self.cameras = Cameras.from_eg3d_label(labels, width, height)

    def __len__(self) -> int:
        return len(self.cameras)

    def sample(self, batch: int, generator: torch.Generator | None = None) -> Cameras:
        """`batch` labels drawn uniformly with replacement (reproducible for a seeded
        `generator`, drawn on its device), as Cameras on the labels' device."""
        _check_size("DatasetPoseSampler.sample", "batch", batch)
        device = generator.device if generator is not None else "cpu"
        index = torch.randint(len(self.cameras), (batch,), generator=generator, device=device)
        return self.cameras[index.to(self.cameras.device)]


def _check_numbers(fn: str, **values) -> None:
    for name, value in values.items():
        check_number(fn, name, value)


def _phase(fn: str, n: int, device, dtype: torch.dtype) -> torch.Tensor:
    """[n] angles 2 pi i / n, i = 0 .. n - 1: frame n would repeat frame 0, so videos loop."""
    _check_size(fn, "n", n)
    return torch.arange(n, device=device, dtype=dtype) * (2 * math.pi / n)


def orbit(n: int, *, radius: float, width: int, height: int, pitch: float = math.pi / 2,
          yaw_start: float = math.pi / 2, pivot=(0.0, 0.0, 0.0), center=(0.0, 0.0, 0.0), fov_degrees=None,
          intrinsics: torch.Tensor | None = None, convention: str = "eg3d", device=None,
          dtype: torch.dtype = torch.float32) -> Cameras:
    """n frames of one full turn about the y axis through `center` at fixed `pitch`, looking at
    `pivot`: yaw_i = yaw_start + 2 pi i / n (increasing; frame n would be frame 0)."""
    _check_numbers("orbit", pitch=pitch, yaw_start=yaw_start)
    t = _phase("orbit", n, device, dtype)
    return _from_yaw_pitch("orbit", yaw_start + t, torch.full_like(t, pitch), radius, width=width, height=height,
                           pivot=pivot, center=center, fov_degrees=fov_degrees, intrinsics=intrinsics,
                           convention=convention)


def yaw_sweep(n: int, *, radius: float, width: int, height: int, yaw_range: float = 0.35,
              pitch_range: float = 0.25, yaw_mean: float = math.pi / 2, pitch_mean: float = math.pi / 2 - 0.05,
              pivot=(0.0, 0.0, 0.0), center=(0.0, 0.0, 0.0), fov_degrees=None,
              intrinsics: torch.Tensor | None = None, convention: str = "eg3d", device=None,
              dtype: torch.dtype = torch.float32) -> Cameras:
    """EG3D's gen_videos path in n frames: yaw_i = yaw_mean + yaw_range sin(2 pi i / n),
    pitch_i = pitch_mean + pitch_range cos(2 pi i / n), a loop in front of the subject."""
    _check_numbers("yaw_sweep", yaw_range=yaw_range, pitch_range=pitch_range, yaw_mean=yaw_mean, pitch_mean=pitch_mean)
    t = _phase("yaw_sweep", n, device, dtype)
    return _from_yaw_pitch("yaw_sweep", yaw_mean + yaw_range * t.sin(), pitch_mean + pitch_range * t.cos(), radius,
                           width=width, height=height, pivot=pivot, center=center, fov_degrees=fov_degrees,
                           intrinsics=intrinsics, convention=convention)


def spiral(n: int, *, radius: float, width: int, height: int, pitch_range: float = 0.25, pitch_cycles: int = 2,
           pitch_mean: float = math.pi / 2, yaw_start: float = math.pi / 2, pivot=(0.0, 0.0, 0.0),
           center=(0.0, 0.0, 0.0), fov_degrees=None, intrinsics: torch.Tensor | None = None,
           convention: str = "eg3d", device=None, dtype: torch.dtype = torch.float32) -> Cameras:
    """n frames turning once in yaw while pitch oscillates `pitch_cycles` times:
    yaw_i = yaw_start + 2 pi i / n, pitch_i = pitch_mean + pitch_range sin(pitch_cycles 2 pi i / n)."""
    _check_size("spiral", "pitch_cycles", pitch_cycles)
    _check_numbers("spiral", pitch_range=pitch_range, pitch_mean=pitch_mean, yaw_start=yaw_start)
    t = _phase("spiral", n, device, dtype)
    return _from_yaw_pitch("spiral", yaw_start + t, pitch_mean + pitch_range * (pitch_cycles * t).sin(), radius,
                           width=width, height=height, pivot=pivot, center=center, fov_degrees=fov_degrees,
                           intrinsics=intrinsics, convention=convention)
