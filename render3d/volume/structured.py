"""Structured fields: tri-planes (EG3D) and feature volumes (VolumeGAN).

Both sample features with ``F.grid_sample(mode="bilinear", align_corners=False)``: the
box ``bounds`` maps to [-1, 1] on each axis, and [-1, 1] spans the outer *edges* of the
grid, so cell i of n along an axis has its centre at ``min + (i + 0.5) / n * (max - min)``.
A point exactly on the box boundary sits half a cell beyond the last centre; with
``padding="zeros"`` it reads half the edge value. Sampling is differentiable w.r.t. the
points and the grids, twice on every torch (`_grid_sample`: torch 2.11 cannot differentiate
grid sampling's backward); interpolation is only continuous (not smooth) across
cell boundaries, so autograd normals of these fields show the grid's cells.
"""

from __future__ import annotations

from abc import abstractmethod

import torch
from torch import Tensor, nn

from render3d._checks import Sizes, check_choice, check_positive, check_tensor
from render3d.volume._grid_sample import grid_sample
from render3d.volume.composite import DENSITY_ACTIVATIONS, density_activation
from render3d.volume.fields import Field, _parse_bounds, check_field_inputs

PADDING_MODES = ("zeros", "border", "reflection")
TRIPLANE_REDUCTIONS = ("mean", "sum", "concat")


def _normalize(points: Tensor, bounds) -> Tensor:
    """World points ``[..., 3]`` -> grid coordinates, the box mapped to [-1, 1]^3."""
    lo, hi = points.new_tensor(bounds[0]), points.new_tensor(bounds[1])
    return (points - lo) * (2.0 / (hi - lo)) - 1.0


def sample_triplane(
    planes: Tensor,
    points: Tensor,
    *,
    bounds=(-0.5, 0.5),
    reduce: str = "mean",
    eg3d_axes: bool = False,
    padding: str = "zeros",
) -> Tensor:
    """Bilinear features of world points from three axis-aligned feature planes.

    planes: ``[B, 3, C, H, W]``; plane 0 = XY, 1 = XZ, 2 = YZ. In a plane spanned by axes
        (a, b), a's coordinate runs along the width W (grid x) and b's along the height H
        (grid y): ``planes[:, 0, :, h, w]`` holds the feature at x of column w, y of row h.
    points: ``[B, N, 3]`` world coordinates, same dtype and device as `planes`.
    bounds: the box the planes cover, ``(min, max)`` (a cube) or ``(min_xyz, max_xyz)``,
        world units. EG3D's ``box_warp=b`` is ``bounds=(-b/2, b/2)``.
    reduce: how the three plane features combine: "mean" (EG3D), "sum", or "concat"
        (plane-major: channels [XY | XZ | third plane]).
    eg3d_axes: reproduce EG3D's axis quirk (NVlabs/eg3d issues #30/#53/#67/#89, PR #88):
        their ``generate_planes()`` + ``project_onto_planes()`` make the third plane read
        (z, x) — grid x = z, grid y = x — instead of (y, z), so it ignores y. Planes 0 and 1
        are unchanged. Needed to load EG3D checkpoints, which were trained this way.
    padding: ``grid_sample`` padding for points outside the box: "zeros" (EG3D),
        "border" or "reflection".
    Returns ``[B, N, C]`` (``[B, N, 3C]`` for "concat").
    """
    fn = "sample_triplane"
    sizes = Sizes()
    check_tensor(fn, "planes", planes, ("B", 3, "C", "H", "W"), sizes=sizes)
    check_tensor(fn, "points", points, ("B", "N", 3), sizes=sizes, like=planes, like_name="planes")
    check_choice(fn, "reduce", reduce, TRIPLANE_REDUCTIONS)
    check_choice(fn, "padding", padding, PADDING_MODES)
    check_choice(fn, "eg3d_axes", eg3d_axes, (False, True))
    bounds = _parse_bounds(fn, bounds)

    B, _, C, H, W = planes.shape
    N = points.shape[1]
    u = _normalize(points, bounds)
    x, y, z = u.unbind(dim=-1)
    third = (z, x) if eg3d_axes else (y, z)
    grid = torch.stack(
        [torch.stack(pair, dim=-1) for pair in ((x, y), (x, z), third)], dim=1
    )                                                                   # [B, 3, N, 2]
    sampled = grid_sample(planes.reshape(B * 3, C, H, W), grid.reshape(B * 3, 1, N, 2), padding)  # [B*3, C, 1, N]
    per_plane = sampled.reshape(B, 3, C, N).permute(0, 3, 1, 2)        # [B, N, 3, C]
    if reduce == "mean":
        return per_plane.mean(dim=2)
    if reduce == "sum":
        return per_plane.sum(dim=2)
    return per_plane.reshape(B, N, 3 * C)


def sample_feature_volume(
    volume: Tensor,
    points: Tensor,
    *,
    bounds=(-0.5, 0.5),
    padding: str = "zeros",
) -> Tensor:
    """Trilinear features of world points from a feature volume.

    volume: ``[B, C, D, H, W]`` with W along world x, H along world y, D along world z
        (5-D ``grid_sample``: grid x <-> W, grid y <-> H, grid z <-> D), so
        ``volume[:, :, d, h, w]`` holds the feature at (x of w, y of h, z of d).
    points: ``[B, N, 3]`` world coordinates, same dtype and device as `volume`.
    bounds: the box the volume covers, ``(min, max)`` or ``(min_xyz, max_xyz)``, world
        units (VolumeGAN's FFHQ box is not a cube).
    padding: "zeros", "border" or "reflection" for points outside the box.
    Returns ``[B, N, C]``.
    """
    fn = "sample_feature_volume"
    sizes = Sizes()
    check_tensor(fn, "volume", volume, ("B", "C", "D", "H", "W"), sizes=sizes)
    check_tensor(fn, "points", points, ("B", "N", 3), sizes=sizes, like=volume, like_name="volume")
    check_choice(fn, "padding", padding, PADDING_MODES)
    bounds = _parse_bounds(fn, bounds)

    B, N = points.shape[:2]
    grid = _normalize(points, bounds).reshape(B, 1, 1, N, 3)
    sampled = grid_sample(volume, grid, padding)
    return sampled.reshape(B, volume.shape[1], N).transpose(1, 2)      # [B, N, C]


class OSGDecoder(nn.Module):
    """EG3D's point decoder: FC in->hidden, Softplus, FC hidden->1+out.

    The first output channel is raw density, activated here (`density_activation`, one of
    `render3d.volume.DENSITY_ACTIVATIONS`) so the field returns a non-negative sigma; the
    default "shifted_softplus" = ``softplus(raw - 1)`` is what EG3D's MipRayMarcher2 applies
    (the -1 starts density low), "relu" is VolumeGAN's clamp. The other channels
    become features through ``sigmoid * 1.002 - 0.001`` (EG3D: lets a sigmoid reach 0 and 1
    exactly), range [-0.001, 1.001].
    """

    def __init__(
        self, in_features: int, out_features: int = 3, *, hidden: int = 64, density_activation: str = "shifted_softplus"
    ) -> None:
        super().__init__()
        for name, value in (("in_features", in_features), ("out_features", out_features), ("hidden", hidden)):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"OSGDecoder: argument '{name}' expected a positive int, got {value!r}")
        check_choice("OSGDecoder", "density_activation", density_activation, DENSITY_ACTIVATIONS)
        self.net = nn.Sequential(nn.Linear(in_features, hidden), nn.Softplus(), nn.Linear(hidden, 1 + out_features))
        self.density_activation = density_activation
        self.in_features = in_features
        self.out_features = out_features

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """features ``[..., in_features]`` -> (density ``[...]``, features ``[..., out_features]``)."""
        check_tensor("OSGDecoder", "features", features, ("...", self.in_features))
        out = self.net(features)
        return density_activation(out[..., 0], self.density_activation), torch.sigmoid(out[..., 1:]) * 1.002 - 0.001


def _resolution(fn: str, resolution, ndim: int) -> tuple[int, ...]:
    res = (resolution,) * ndim if isinstance(resolution, int) else resolution
    if not isinstance(res, (tuple, list)) or len(res) != ndim or not all(isinstance(r, int) and r > 0 for r in res):
        raise ValueError(
            f"{fn}: argument 'resolution' expected a positive int or {ndim} positive ints, got {resolution!r}"
        )
    return tuple(res)


class _DecodedGridField(Field):
    """A single scene's learnable grid plus an OSGDecoder; subclasses sample the grid."""

    decoder: OSGDecoder

    def forward(self, points: Tensor, directions: Tensor | None = None) -> tuple[Tensor, Tensor]:
        name = type(self).__name__
        weight = self.decoder.net[0].weight
        check_field_inputs(name, points, directions, like=weight, like_name=f"{name}'s parameters")
        lead = points.shape[:-1]
        sigma, features = self.decoder(self._sample(points.reshape(1, -1, 3))[0])
        return sigma.reshape(lead), features.reshape(*lead, self.feature_dim)

    @abstractmethod
    def _sample(self, points: Tensor) -> Tensor:
        """points ``[1, M, 3]`` -> grid features ``[1, M, decoder.in_features]``."""


def _initial_grid(fn: str, name: str, grid, shape: tuple) -> Tensor:
    """A user's initial grid of one scene, `shape` with or without a batch of 1 in front,
    copied and given that batch of 1."""
    check_tensor(fn, name, grid)
    check_tensor(fn, name, grid, shape if grid.dim() == len(shape) else (1, *shape))
    return grid.detach().clone().reshape(1, *grid.shape[-len(shape):])


def _check_channels(fn: str, channels) -> None:
    if not isinstance(channels, int) or channels <= 0:
        raise ValueError(f"{fn}: argument 'channels' expected a positive int, got {channels!r}")


class TriPlaneField(_DecodedGridField):
    """One scene as an EG3D tri-plane plus an OSGDecoder (no view dependence).

    planes: ``[3, C, H, W]`` or ``[1, 3, C, H, W]`` initial planes (copied into a
        parameter), or None for ``N(0, init_std^2)`` planes of `channels` x `resolution`.
    resolution: H = W (int) or (H, W); channels: C. Used only when `planes` is None.
    out_features: feature channels returned (3 for RGB); bounds, reduce, eg3d_axes: as in
    `sample_triplane`; hidden, density_activation: as in `OSGDecoder`.
    """

    def __init__(
        self,
        planes: Tensor | None = None,
        *,
        resolution: int | tuple[int, int] = 64,
        channels: int = 32,
        out_features: int = 3,
        hidden: int = 64,
        bounds=(-0.5, 0.5),
        reduce: str = "mean",
        eg3d_axes: bool = False,
        density_activation: str = "shifted_softplus",
        init_std: float = 0.1,
    ) -> None:
        super().__init__()
        fn = "TriPlaneField"
        if planes is None:
            check_positive(fn, "init_std", init_std)
            _check_channels(fn, channels)
            planes = torch.randn(1, 3, channels, *_resolution(fn, resolution, 2)) * init_std
        else:
            planes = _initial_grid(fn, "planes", planes, (3, "C", "H", "W"))
        check_choice(fn, "reduce", reduce, TRIPLANE_REDUCTIONS)
        check_choice(fn, "eg3d_axes", eg3d_axes, (False, True))
        self.bounds = _parse_bounds(fn, bounds)
        self.reduce = reduce
        self.eg3d_axes = eg3d_axes
        self.planes = nn.Parameter(planes)
        in_features = planes.shape[2] * (3 if reduce == "concat" else 1)
        decoder = OSGDecoder(in_features, out_features, hidden=hidden, density_activation=density_activation)
        self.decoder = decoder.to(planes)  # the given planes' dtype and device
        self.feature_dim = out_features

    def _sample(self, points: Tensor) -> Tensor:
        return sample_triplane(self.planes, points, bounds=self.bounds, reduce=self.reduce, eg3d_axes=self.eg3d_axes)


class FeatureVolumeField(_DecodedGridField):
    """One scene as a VolumeGAN-style feature volume plus an OSGDecoder.

    volume: ``[C, D, H, W]`` or ``[1, C, D, H, W]`` initial volume (copied into a
        parameter; W along x, H along y, D along z), or None for ``N(0, init_std^2)``.
    resolution: D = H = W (int) or (D, H, W); channels: C. Used only when `volume` is None.
    out_features, hidden, density_activation: as in `OSGDecoder`; bounds: as in
    `sample_feature_volume`.
    """

    def __init__(
        self,
        volume: Tensor | None = None,
        *,
        resolution: int | tuple[int, int, int] = 32,
        channels: int = 32,
        out_features: int = 3,
        hidden: int = 64,
        bounds=(-0.5, 0.5),
        density_activation: str = "shifted_softplus",
        init_std: float = 0.1,
    ) -> None:
        super().__init__()
        fn = "FeatureVolumeField"
        if volume is None:
            check_positive(fn, "init_std", init_std)
            _check_channels(fn, channels)
            volume = torch.randn(1, channels, *_resolution(fn, resolution, 3)) * init_std
        else:
            volume = _initial_grid(fn, "volume", volume, ("C", "D", "H", "W"))
        self.bounds = _parse_bounds(fn, bounds)
        self.volume = nn.Parameter(volume)
        decoder = OSGDecoder(volume.shape[1], out_features, hidden=hidden, density_activation=density_activation)
        self.decoder = decoder.to(volume)  # the given volume's dtype and device
        self.feature_dim = out_features

    def _sample(self, points: Tensor) -> Tensor:
        return sample_feature_volume(self.volume, points, bounds=self.bounds)
