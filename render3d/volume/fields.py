"""Fields: what the volume renderer samples.

A `Field` maps world points ``[..., 3]`` (world +Y up, world units) to a non-negative
density ``[...]`` (sigma, extinction per world unit) and features ``[..., C]`` (RGB in
[0, 1] for the fields here). Everything is plain torch, so it runs on CPU and CUDA, in
float32 and float64, and is differentiable w.r.t. the points: the renderer takes surface
normals as ``-grad(density)`` through autograd.

The analytic fields are defined by a signed distance ``sdf(points)`` (negative inside) and

    density = density_scale * sigmoid(-sdf / softness)

With the defaults (``density_scale=200`` per world unit, ``softness=0.005`` world units)
the inside is nearly opaque (a 0.01 step absorbs 1 - exp(-2) = 86%), the surface is a
smooth shell about 0.04 thick (density from 2% to 98% of its maximum), and
``grad(density)`` is parallel to ``-grad(sdf)`` — so normals are the SDF's own, clean and
exact on the surface. Away from the shell the sigmoid saturates and the gradient vanishes
(in float32 it is exactly 0 deeper than ~0.08 inside and farther than ~0.5 outside):
normals are meaningful only near the surface, which is where the rendering weights lie.
A renderer must resolve the shell: steps of at most ~0.01 world units near the surface.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from functools import partial

import torch
from torch import Tensor, nn

from render3d._checks import check_choice, check_positive, check_tensor

ColorSpec = Sequence[float] | Callable[[Tensor], Tensor]

DEFAULT_DENSITY_SCALE = 200.0
DEFAULT_SOFTNESS = 0.005


def check_field_inputs(
    fn: str,
    points,
    directions=None,
    *,
    like: Tensor | None = None,
    like_name: str | None = None,
) -> None:
    """Check a field's `points` ``[..., 3]`` and optional `directions` (same shape).

    `like`: a tensor (a field's parameter) whose device and dtype the points must share.
    """
    check_tensor(fn, "points", points, ("...", 3), like=like, like_name=like_name)
    if directions is not None:
        check_tensor(fn, "directions", directions, tuple(points.shape), like=points, like_name="points")


class Field(nn.Module, ABC):
    """What the volume renderer samples: density and features at world points.

    Subclasses set `feature_dim` (channels C of the features; 3 for RGB) and implement
    `forward`. `density` and `color` default to calling `forward`; override them where
    one of the two is cheaper alone.
    """

    feature_dim: int

    @abstractmethod
    def forward(self, points: Tensor, directions: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """points ``[..., 3]`` world coordinates, directions ``[..., 3]`` unit view
        directions or None -> (density ``[...]`` non-negative sigma per world unit,
        features ``[..., C]``)."""

    def density(self, points: Tensor) -> Tensor:
        """points ``[..., 3]`` -> density ``[...]`` (sigma per world unit)."""
        return self(points)[0]

    def color(self, points: Tensor) -> Tensor:
        """points ``[..., 3]`` -> features ``[..., C]``."""
        return self(points)[1]


# --- argument parsing shared by the analytic fields -------------------------------------

def _vec3(fn: str, name: str, value, *, positive: bool = False) -> tuple[float, float, float]:
    """A number or 3 numbers (sequence or tensor) -> a tuple of 3 floats."""
    if isinstance(value, Tensor):
        value = value.detach().cpu().reshape(-1).tolist()
    if isinstance(value, (int, float)):
        value = (value, value, value)
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        out = ()
    if len(out) != 3 or not all(math.isfinite(v) for v in out):
        raise ValueError(f"{fn}: argument '{name}' expected a number or 3 finite numbers, got {value!r}")
    if positive and min(out) <= 0:
        raise ValueError(f"{fn}: argument '{name}' expected positive numbers, got {out!r}")
    return out


def _parse_bounds(fn: str, bounds) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """``(lo, hi)`` with each a number (a cube) or 3 numbers -> (min_xyz, max_xyz)."""
    if isinstance(bounds, Tensor) and bounds.shape == (2, 3):
        bounds = bounds.tolist()
    if not isinstance(bounds, (tuple, list)) or len(bounds) != 2:
        raise ValueError(f"{fn}: argument 'bounds' expected (min, max) or (min_xyz, max_xyz), got {bounds!r}")
    lo, hi = _vec3(fn, "bounds", bounds[0]), _vec3(fn, "bounds", bounds[1])
    if any(top <= bottom for bottom, top in zip(lo, hi)):
        raise ValueError(f"{fn}: argument 'bounds' expected max > min on every axis, got min {lo}, max {hi}")
    return lo, hi


def _check_color(fn: str, color) -> ColorSpec:
    if callable(color):
        return color
    try:
        rgb = tuple(float(c) for c in color)
    except (TypeError, ValueError):
        rgb = ()
    if len(rgb) != 3 or not all(0.0 <= c <= 1.0 for c in rgb):
        raise ValueError(f"{fn}: argument 'color' expected an RGB triple in [0, 1] or a callable, got {color!r}")
    return rgb


def _box_sdf(p: Tensor, half_size: Tensor, rounding: float = 0.0) -> Tensor:
    """Exact SDF of a box centred at the origin (rounded edges of radius `rounding`)."""
    q = p.abs() - (half_size - rounding)
    outside = torch.linalg.vector_norm(q.clamp_min(0.0), dim=-1)
    inside = q.amax(dim=-1).clamp_max(0.0)
    return outside + inside - rounding


def _hsv_to_rgb(hue: Tensor, saturation: float, value: float) -> Tensor:
    """hue ``[...]`` in turns (period 1) -> RGB ``[..., 3]`` in [0, 1]; continuous in hue."""
    n = hue.new_tensor([5.0, 3.0, 1.0])
    k = torch.remainder(n + 6.0 * hue.unsqueeze(-1), 6.0)
    return value - value * saturation * torch.minimum(k, 4.0 - k).clamp(0.0, 1.0)


# --- analytic fields --------------------------------------------------------------------

class AnalyticField(Field):
    """A field from a signed distance: ``density = density_scale * sigmoid(-sdf / softness)``.

    Subclasses implement `_sdf` (unchecked points ``[..., 3]`` -> ``[...]``, negative inside).
    `color`: an RGB triple in [0, 1] or a callable points ``[..., 3]`` -> RGB ``[..., 3]``.
    View directions are ignored (Lambertian colour).
    """

    feature_dim = 3

    def __init__(self, color: ColorSpec, *, density_scale: float, softness: float) -> None:
        super().__init__()
        fn = type(self).__name__
        check_positive(fn, "density_scale", density_scale)
        check_positive(fn, "softness", softness)
        self._color_spec = _check_color(fn, color)
        self.density_scale = float(density_scale)
        self.softness = float(softness)

    @abstractmethod
    def _sdf(self, points: Tensor) -> Tensor:
        """points ``[..., 3]`` (already checked) -> signed distance ``[...]``."""

    def sdf(self, points: Tensor) -> Tensor:
        """points ``[..., 3]`` -> signed distance ``[...]`` in world units, negative inside."""
        check_field_inputs(f"{type(self).__name__}.sdf", points)
        return self._sdf(points)

    def density(self, points: Tensor) -> Tensor:
        check_field_inputs(f"{type(self).__name__}.density", points)
        return self._density(points)

    def color(self, points: Tensor) -> Tensor:
        check_field_inputs(f"{type(self).__name__}.color", points)
        return self._rgb(points)

    def forward(self, points: Tensor, directions: Tensor | None = None) -> tuple[Tensor, Tensor]:
        check_field_inputs(type(self).__name__, points, directions)
        return self._density(points), self._rgb(points)

    def _density(self, points: Tensor) -> Tensor:
        return self.density_scale * torch.sigmoid(-self._sdf(points) / self.softness)

    def _rgb(self, points: Tensor) -> Tensor:
        if not callable(self._color_spec):
            return points.new_tensor(self._color_spec).expand(*points.shape[:-1], 3)
        rgb = self._color_spec(points)
        check_tensor(f"{type(self).__name__}.color", "color(points)", rgb, (*points.shape[:-1], 3), like=points)
        return rgb


class SphereField(AnalyticField):
    """Solid sphere. `center` (3,) and `radius` in world units."""

    def __init__(
        self,
        center=(0.0, 0.0, 0.0),
        radius: float = 0.5,
        color: ColorSpec = (0.8, 0.8, 0.8),
        *,
        density_scale: float = DEFAULT_DENSITY_SCALE,
        softness: float = DEFAULT_SOFTNESS,
    ) -> None:
        super().__init__(color, density_scale=density_scale, softness=softness)
        check_positive("SphereField", "radius", radius)
        self.center = _vec3("SphereField", "center", center)
        self.radius = float(radius)

    def _sdf(self, points: Tensor) -> Tensor:
        return torch.linalg.vector_norm(points - points.new_tensor(self.center), dim=-1) - self.radius


class BoxField(AnalyticField):
    """Axis-aligned box, exact SDF. `half_size` (3,) in world units; `rounding` rounds its
    edges and corners with that radius while keeping the outer extent (0 <= rounding <=
    min(half_size))."""

    def __init__(
        self,
        center=(0.0, 0.0, 0.0),
        half_size=(0.5, 0.5, 0.5),
        color: ColorSpec = (0.8, 0.8, 0.8),
        *,
        rounding: float = 0.0,
        density_scale: float = DEFAULT_DENSITY_SCALE,
        softness: float = DEFAULT_SOFTNESS,
    ) -> None:
        super().__init__(color, density_scale=density_scale, softness=softness)
        self.center = _vec3("BoxField", "center", center)
        self.half_size = _vec3("BoxField", "half_size", half_size, positive=True)
        if not 0.0 <= rounding <= min(self.half_size):
            raise ValueError(
                f"BoxField: argument 'rounding' expected a number in [0, min(half_size)={min(self.half_size)}], "
                f"got {rounding!r}"
            )
        self.rounding = float(rounding)

    def _sdf(self, points: Tensor) -> Tensor:
        p = points - points.new_tensor(self.center)
        return _box_sdf(p, points.new_tensor(self.half_size), self.rounding)


# For a torus around each axis: (the two coordinates of its plane, the coordinate along it),
# the plane pair ordered so that the hue angle turns counter-clockwise seen from +axis.
_TORUS_AXES = {"x": ((1, 2), 0), "y": ((2, 0), 1), "z": ((0, 1), 2)}


class TorusField(AnalyticField):
    """Torus around `axis` through `center`: ring radius `major_radius`, tube radius
    `minor_radius` (world units, minor < major). Default colour: a rainbow whose hue turns
    once around the axis."""

    def __init__(
        self,
        center=(0.0, 0.0, 0.0),
        major_radius: float = 0.5,
        minor_radius: float = 0.15,
        axis: str = "y",
        color: ColorSpec | None = None,
        *,
        density_scale: float = DEFAULT_DENSITY_SCALE,
        softness: float = DEFAULT_SOFTNESS,
    ) -> None:
        check_choice("TorusField", "axis", axis, tuple(_TORUS_AXES))
        super().__init__(self._rainbow if color is None else color, density_scale=density_scale, softness=softness)
        check_positive("TorusField", "major_radius", major_radius)
        check_positive("TorusField", "minor_radius", minor_radius)
        if minor_radius >= major_radius:
            raise ValueError(
                f"TorusField: argument 'minor_radius' expected less than major_radius={major_radius}, "
                f"got {minor_radius!r}"
            )
        self.center = _vec3("TorusField", "center", center)
        self.major_radius = float(major_radius)
        self.minor_radius = float(minor_radius)
        self.axis = axis

    def _plane_and_axial(self, points: Tensor) -> tuple[Tensor, Tensor]:
        p = points - points.new_tensor(self.center)
        (a, b), c = _TORUS_AXES[self.axis]
        return torch.stack((p[..., a], p[..., b]), dim=-1), p[..., c]

    def _sdf(self, points: Tensor) -> Tensor:
        plane, axial = self._plane_and_axial(points)
        ring = torch.linalg.vector_norm(plane, dim=-1) - self.major_radius
        return torch.linalg.vector_norm(torch.stack((ring, axial), dim=-1), dim=-1) - self.minor_radius

    def _rainbow(self, points: Tensor) -> Tensor:
        plane, _ = self._plane_and_axial(points)
        hue = torch.atan2(plane[..., 1], plane[..., 0]) / (2 * math.pi)
        return _hsv_to_rgb(hue, 0.75, 0.95)


class GyroidField(AnalyticField):
    """A gyroid sheet clipped to a box.

    The gyroid ``g(u) = sin ux cos uy + sin uy cos uz + sin uz cos ux`` at ``u = scale * p``
    (`scale` in radians per world unit: one period every 2*pi/scale). Its sdf is an
    approximation, not exact: ``|g| / (scale * sqrt(3)) - thickness`` (`thickness`: half
    the sheet's thickness, world units), intersected with the box (max with the box SDF).
    ``|grad g| <= sqrt(3)`` everywhere, so the first term never exceeds the true distance to
    the sheet (safe for sphere tracing, ``|grad sdf| <= 1``); on the sheet ``|grad g|`` lies
    in [sqrt(2), sqrt(3)], so the rendered half-thickness varies between `thickness` and
    1.22 * `thickness`.
    `bounds`: ``(min, max)`` or ``(min_xyz, max_xyz)`` of the clipping box.
    Default colour: an RGB gradient across the box (x -> red, y -> green, z -> blue).
    """

    def __init__(
        self,
        scale: float = 6.0,
        thickness: float = 0.05,
        bounds=(-0.8, 0.8),
        color: ColorSpec | None = None,
        *,
        density_scale: float = DEFAULT_DENSITY_SCALE,
        softness: float = DEFAULT_SOFTNESS,
    ) -> None:
        super().__init__(self._gradient if color is None else color, density_scale=density_scale, softness=softness)
        check_positive("GyroidField", "scale", scale)
        check_positive("GyroidField", "thickness", thickness)
        self.scale = float(scale)
        self.thickness = float(thickness)
        self.bounds = _parse_bounds("GyroidField", bounds)

    def _sdf(self, points: Tensor) -> Tensor:
        u = points * self.scale
        g = (
            torch.sin(u[..., 0]) * torch.cos(u[..., 1])
            + torch.sin(u[..., 1]) * torch.cos(u[..., 2])
            + torch.sin(u[..., 2]) * torch.cos(u[..., 0])
        )
        sheet = g.abs() / (self.scale * math.sqrt(3.0)) - self.thickness
        lo, hi = points.new_tensor(self.bounds[0]), points.new_tensor(self.bounds[1])
        return torch.maximum(sheet, _box_sdf(points - (lo + hi) / 2, (hi - lo) / 2))

    def _gradient(self, points: Tensor) -> Tensor:
        lo, hi = points.new_tensor(self.bounds[0]), points.new_tensor(self.bounds[1])
        t = ((points - lo) / (hi - lo)).clamp(0.0, 1.0)
        return 0.15 + 0.8 * t


class UnionField(Field):
    """Several fields in one volume, as mixed media: density is the sum of the members'
    densities and the features are their density-weighted mean (where the total density
    is 0 the features are the plain mean, so they stay finite). All members must share
    `feature_dim`."""

    def __init__(self, fields: Sequence[Field]) -> None:
        super().__init__()
        fields = list(fields) if isinstance(fields, (list, tuple, nn.ModuleList)) else fields
        if not isinstance(fields, list) or not fields or not all(isinstance(f, Field) for f in fields):
            raise ValueError(f"UnionField: argument 'fields' expected a non-empty list of Field, got {fields!r}")
        dims = [f.feature_dim for f in fields]
        if len(set(dims)) != 1:
            raise ValueError(f"UnionField: argument 'fields' expected members with equal feature_dim, got {dims}")
        self.fields = nn.ModuleList(fields)
        self.feature_dim = dims[0]

    def forward(self, points: Tensor, directions: Tensor | None = None) -> tuple[Tensor, Tensor]:
        check_field_inputs("UnionField", points, directions)
        outs = [f(points, directions) for f in self.fields]
        sigmas = torch.stack([s for s, _ in outs], dim=-1)       # [..., M]
        features = torch.stack([c for _, c in outs], dim=-2)     # [..., M, C]
        total = sigmas.sum(dim=-1)
        filled = (total > 0).unsqueeze(-1)
        weights = torch.where(
            filled, sigmas / torch.where(filled, total.unsqueeze(-1), 1.0), 1.0 / len(self.fields)
        )
        return total, (weights.unsqueeze(-1) * features).sum(dim=-2)

    def density(self, points: Tensor) -> Tensor:
        check_field_inputs("UnionField.density", points)
        return torch.stack([f.density(points) for f in self.fields], dim=-1).sum(dim=-1)

    def sdf(self, points: Tensor) -> Tensor:
        """points ``[..., 3]`` -> min of the members' SDFs ``[...]``: exact outside the union;
        inside, where members overlap, it can be closer to 0 than the true value (the
        surface it sees may be buried in another member). Every member must have an `sdf`."""
        check_field_inputs("UnionField.sdf", points)
        missing = [type(f).__name__ for f in self.fields if not callable(getattr(f, "sdf", None))]
        if missing:
            raise ValueError(f"UnionField.sdf: expected every member to have an sdf, got members without: {missing}")
        return torch.stack([f.sdf(points) for f in self.fields], dim=-1).amin(dim=-1)


# --- the demo scene -----------------------------------------------------------------------

def _checker(points: Tensor, *, cell: float, color_a, color_b) -> Tensor:
    parity = torch.remainder(torch.floor(points[..., 0] / cell) + torch.floor(points[..., 2] / cell), 2.0)
    a, b = points.new_tensor(color_a), points.new_tensor(color_b)
    return a + parity.unsqueeze(-1) * (b - a)


def _shaded(points: Tensor, *, base, center, radius: float) -> Tensor:
    # Lighter towards the top, so the ball reads as round even when rendered unlit.
    height = (points[..., 1:2] - center[1]) / radius
    return (points.new_tensor(base) * (0.82 + 0.18 * height)).clamp(0.0, 1.0)


def demo_scene(*, density_scale: float = DEFAULT_DENSITY_SCALE, softness: float = DEFAULT_SOFTNESS) -> UnionField:
    """A coloured torus and sphere in a box: everything inside [-1, 1]^3.

    A checkered floor slab (top face at y = -0.2, 1.9 x 1.9 wide, 0.1 thick, 0.25 cells),
    a rainbow torus lying flat on it (axis +Y, ring radius 0.42, tube 0.13, centre
    (-0.4, -0.07, 0.15)) and an orange ball resting on it (radius 0.32, centre
    (0.45, 0.12, -0.3)); the content spans y in [-0.3, 0.44], centred near the origin.
    Framed for an orbit at radius ~3 around the origin, pitched 15-30 degrees above level,
    with a field of view of about 35 degrees (narrower crops the floor's corners).
    """
    kw = {"density_scale": density_scale, "softness": softness}
    floor = BoxField(
        (0.0, -0.25, 0.0),
        (0.95, 0.05, 0.95),
        partial(_checker, cell=0.25, color_a=(0.86, 0.86, 0.82), color_b=(0.22, 0.25, 0.32)),
        rounding=0.01,
        **kw,
    )
    torus = TorusField((-0.4, -0.07, 0.15), 0.42, 0.13, axis="y", **kw)
    ball_center = (0.45, 0.12, -0.3)
    ball = SphereField(
        ball_center, 0.32, partial(_shaded, base=(1.0, 0.52, 0.14), center=ball_center, radius=0.32), **kw
    )
    return UnionField([floor, torus, ball])
