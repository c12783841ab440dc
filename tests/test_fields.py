"""Fields: analytic SDFs against hand-computed distances, autograd normals against the
analytic normal, and tri-plane / feature-volume sampling against linear functions (which
bilinear and trilinear interpolation reproduce exactly between the cell centres)."""

import math

import pytest
import torch
import torch.nn.functional as F

from render3d.volume.fields import (
    BoxField,
    Field,
    GyroidField,
    SphereField,
    TorusField,
    UnionField,
    demo_scene,
)
from render3d.volume.structured import (
    FeatureVolumeField,
    OSGDecoder,
    TriPlaneField,
    sample_feature_volume,
    sample_triplane,
)

f64 = torch.float64


def _t(values):
    return torch.tensor(values, dtype=f64)


# --- analytic SDFs ------------------------------------------------------------------------

def test_sphere_sdf_hand_values():
    field = SphereField((0.1, 0.2, -0.3), 0.5)
    pts = _t([[0.6, 0.2, -0.3], [0.1, 0.2, -0.3], [0.1, 0.8, 0.5], [0.1, 0.2, -0.1]])
    # on the surface, the centre, distance 1 from the centre (0, 0.6, 0.8), distance 0.2
    torch.testing.assert_close(field.sdf(pts), _t([0.0, -0.5, 0.5, -0.3]))


def test_box_sdf_hand_values():
    field = BoxField((1.0, 0.0, 0.0), (1.0, 2.0, 3.0))
    pts = _t([[1.0, 0.0, 0.0], [3.0, 0.0, 0.0], [3.0, 3.0, 0.0], [1.5, 0.0, 0.0], [2.0, 0.5, 0.0], [1, 2.5, 4]])
    expected = _t([-1.0, 1.0, math.sqrt(2.0), -0.5, 0.0, math.sqrt(1.25)])
    torch.testing.assert_close(field.sdf(pts), expected)


def test_rounded_box_sdf_hand_values():
    field = BoxField((0.0, 0.0, 0.0), (1.0, 2.0, 3.0), rounding=0.25)
    pts = _t([[1.0, 0.0, 0.0], [2.0, 3.0, 0.0], [0.0, 0.0, 0.0], [1.0, 2.0, 0.0]])
    # a face keeps its place; the edge's distance is measured to the rounded (shrunk) edge
    expected = _t([0.0, 1.25 * math.sqrt(2.0) - 0.25, -1.0, 0.25 * math.sqrt(2.0) - 0.25])
    torch.testing.assert_close(field.sdf(pts), expected)


@pytest.mark.parametrize(
    "axis, axial, radial",
    [("y", 1, 0), ("x", 0, 2), ("z", 2, 1)],
)
def test_torus_sdf_hand_values(axis, axial, radial):
    center = _t([0.3, -0.2, 0.1])
    field = TorusField(center, 1.0, 0.25, axis=axis)

    def at(r, h):
        p = center.clone()
        p[radial] += r
        p[axial] += h
        return p

    pts = torch.stack([at(1.25, 0), at(1.0, 0), at(0, 0), at(0, 0.5), at(1.0, 0.5), at(-0.75, 0)])
    expected = _t([0.0, -0.25, 0.75, math.sqrt(1.25) - 0.25, 0.25, 0.0])
    torch.testing.assert_close(field.sdf(pts), expected)


def test_gyroid_sdf_values_and_lipschitz():
    scale, thickness = 4.0, 0.05
    field = GyroidField(scale, thickness, bounds=(-1.0, 1.0))
    # g(0) = 0; g(pi/2, 0, 0) = 1; outside the box the box SDF bounds it from below
    pts = _t([[0.0, 0.0, 0.0], [math.pi / 2 / scale, 0.0, 0.0], [3.0, 0.0, 0.0]])
    sdf = field.sdf(pts)
    torch.testing.assert_close(sdf[:2], _t([-thickness, 1.0 / (scale * math.sqrt(3.0)) - thickness]))
    assert sdf[2] >= 2.0
    # the approximation never overestimates the distance: |grad sdf| <= 1 everywhere
    p = (torch.rand(4000, 3, dtype=f64, generator=torch.Generator().manual_seed(0)) * 2.4 - 1.2).requires_grad_()
    (grad,) = torch.autograd.grad(field.sdf(p).sum(), p)
    assert grad.norm(dim=-1).max() <= 1.0 + 1e-9


# --- density and normals -----------------------------------------------------------------

def test_density_is_decreasing_in_sdf_and_half_scale_on_surface():
    field = SphereField((0.0, 0.0, 0.0), 0.5, density_scale=200.0, softness=0.005)
    radii = torch.linspace(0.0, 1.0, 201, dtype=f64)
    pts = radii[:, None] * _t([0.6, 0.0, 0.8])
    sigma = field.density(pts)
    assert (sigma[1:] < sigma[:-1]).sum() > 0 and (sigma[1:] <= sigma[:-1]).all()
    assert (sigma >= 0).all()
    torch.testing.assert_close(field.density(_t([[0.0, 0.5, 0.0]])), _t([100.0]))
    assert sigma[0] > 199.0 and sigma[-1] < 1e-30


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sphere_autograd_normals_match_analytic(dtype):
    center = torch.tensor([0.2, -0.1, 0.3], dtype=dtype)
    field = SphereField(center, 0.7)
    dirs = torch.randn(64, 3, dtype=dtype, generator=torch.Generator().manual_seed(1))
    dirs = dirs / dirs.norm(dim=-1, keepdim=True)
    pts = (center + 0.7 * dirs).requires_grad_()
    (grad,) = torch.autograd.grad(field.density(pts).sum(), pts)
    normal = -grad / grad.norm(dim=-1, keepdim=True)  # the renderer's normal: -grad(density)
    torch.testing.assert_close(normal, dirs, atol=1e-3, rtol=0)


def test_gradients_are_finite_at_singular_points():
    # the sphere's centre, the box's inside, the torus axis: norms (and atan2) of zero vectors
    fields = [SphereField(), BoxField(), TorusField(), demo_scene()]
    pts = _t([[0.0, 0.0, 0.0], [0.0, 0.3, 0.0], [-0.4, 0.0, 0.15]]).requires_grad_()
    for field in fields:
        sigma, rgb = field(pts)
        (grad,) = torch.autograd.grad(sigma.sum() + rgb.sum(), pts)
        assert torch.isfinite(grad).all(), type(field).__name__


def test_fields_keep_dtype_and_leading_shape():
    for dtype in (torch.float32, torch.float64):
        pts = torch.rand(2, 5, 7, 3, dtype=dtype) * 2 - 1
        sigma, rgb = demo_scene()(pts, torch.randn(2, 5, 7, 3, dtype=dtype))
        assert sigma.shape == (2, 5, 7) and rgb.shape == (2, 5, 7, 3)
        assert sigma.dtype == dtype and rgb.dtype == dtype
        assert (rgb >= 0).all() and (rgb <= 1).all()


def test_torus_hue_varies_around_its_axis():
    field = TorusField((0.0, 0.0, 0.0), 1.0, 0.2, axis="y")
    angles = torch.linspace(0, 2 * math.pi, 7, dtype=f64)[:-1]
    pts = torch.stack([angles.cos(), torch.zeros_like(angles), angles.sin()], dim=-1)
    rgb = field.color(pts)
    assert torch.cdist(rgb, rgb).add(torch.eye(6, dtype=f64)).min() > 0.3  # six distinct hues


# --- union -------------------------------------------------------------------------------

def test_union_is_density_sum_and_density_weighted_color():
    a = SphereField((0.0, 0.0, 0.0), 0.5, (1.0, 0.0, 0.0))
    b = SphereField((0.3, 0.0, 0.0), 0.5, (0.0, 0.0, 1.0))
    union = UnionField([a, b])
    pts = _t([[0.55, 0.0, 0.0], [-0.2, 0.0, 0.0], [0.1, 0.4, 0.0], [50.0, 0.0, 0.0]])
    sigma, rgb = union(pts)
    sa, sb = a.density(pts), b.density(pts)
    torch.testing.assert_close(sigma, sa + sb)
    expected = (sa[:3, None] * _t([1.0, 0.0, 0.0]) + sb[:3, None] * _t([0.0, 0.0, 1.0])) / (sa + sb)[:3, None]
    torch.testing.assert_close(rgb[:3], expected)
    # empty space (both densities underflow to 0): the plain mean, not NaN
    assert sigma[3] == 0
    torch.testing.assert_close(rgb[3], _t([0.5, 0.0, 0.5]))
    torch.testing.assert_close(union.sdf(pts), torch.minimum(a.sdf(pts), b.sdf(pts)))


def test_union_rejects_feature_dim_mismatch():
    four = TriPlaneField(resolution=4, channels=2, out_features=4)
    with pytest.raises(ValueError, match="UnionField: argument 'fields'.*feature_dim.*\\[3, 4\\]"):
        UnionField([SphereField(), four])
    with pytest.raises(ValueError, match="'fields'"):
        UnionField([])


def test_demo_scene_is_inside_the_unit_box_and_not_empty():
    scene = demo_scene()
    assert isinstance(scene, Field) and scene.feature_dim == 3
    g = torch.linspace(-1.2, 1.2, 49, dtype=f64)
    pts = torch.stack(torch.meshgrid(g, g, g, indexing="ij"), dim=-1)
    sdf = scene.sdf(pts)
    inside = sdf < 0
    assert inside.any() and not inside[pts.abs().amax(dim=-1) > 1.0].any()
    # three separate objects of distinct colours: floor (checker), torus, ball
    rgb = scene.color(_t([[0.45, 0.44 - 0.05, -0.3], [0.02, -0.07, 0.15], [-0.4, -0.25, 0.72]]))
    assert torch.cdist(rgb, rgb).add(torch.eye(3, dtype=f64)).min() > 0.2


# --- tri-plane sampling ------------------------------------------------------------------

LO, HI = (-1.0, -0.5, -2.0), (1.0, 0.5, 0.0)


def _axis_centers(axis: int, n: int) -> torch.Tensor:
    """World coordinates of the n cell centres along `axis` (align_corners=False)."""
    return LO[axis] + (torch.arange(n, dtype=f64) + 0.5) / n * (HI[axis] - LO[axis])


# plane k spans world axes (first -> width, second -> height); each holds f(s, t) = a s + b t + c
PLANE_AXES = ((0, 1), (0, 2), (1, 2))
COEFFS = ((0.7, -1.3, 0.2), (-0.4, 2.1, 0.5), (1.9, 0.6, -0.8))


def _linear_planes(H: int = 6, W: int = 9) -> torch.Tensor:
    planes = torch.empty(1, 3, 1, H, W, dtype=f64)
    for k, ((ax_s, ax_t), (a, b, c)) in enumerate(zip(PLANE_AXES, COEFFS)):
        s, t = _axis_centers(ax_s, W), _axis_centers(ax_t, H)
        planes[0, k, 0] = a * s[None, :] + b * t[:, None] + c
    return planes


def _interior_points(n: int, margin: float = 0.25) -> torch.Tensor:
    """Points inside the box but more than a cell from its faces, where interpolating a
    linear function is exact."""
    u = torch.rand(1, n, 3, dtype=f64, generator=torch.Generator().manual_seed(2)) * (1 - 2 * margin) + margin
    return _t(LO) + u * (_t(HI) - _t(LO))


@pytest.mark.parametrize("eg3d_axes", [False, True])
def test_sample_triplane_reproduces_linear_functions(eg3d_axes):
    planes, pts = _linear_planes(), _interior_points(50)
    out = sample_triplane(planes, pts, bounds=(LO, HI), reduce="concat", eg3d_axes=eg3d_axes)
    assert out.shape == (1, 50, 3)
    x, y, z = pts[0].unbind(-1)
    f = [a * s + b * t + c for (a, b, c), (s, t) in zip(COEFFS, ((x, y), (x, z), (y, z)))]
    torch.testing.assert_close(out[0, :, 0], f[0])
    torch.testing.assert_close(out[0, :, 1], f[1])
    if not eg3d_axes:
        torch.testing.assert_close(out[0, :, 2], f[2])
    else:
        # EG3D's third plane reads (z, x): the width position is z's normalised coordinate,
        # the height position x's, so the plane built as f(y, z) returns f(y', z') where y'
        # is y's world value at z's relative position and z' is z's at x's.
        rel = (pts[0] - _t(LO)) / (_t(HI) - _t(LO))
        y_at_z = LO[1] + rel[:, 2] * (HI[1] - LO[1])
        z_at_x = LO[2] + rel[:, 0] * (HI[2] - LO[2])
        a, b, c = COEFFS[2]
        torch.testing.assert_close(out[0, :, 2], a * y_at_z + b * z_at_x + c)
        assert (out[0, :, 2] - f[2]).abs().max() > 0.1


def test_sample_triplane_third_plane_ignores_y_only_with_eg3d_axes():
    planes = torch.randn(2, 3, 4, 8, 8, dtype=f64, generator=torch.Generator().manual_seed(3))
    pts = torch.rand(2, 30, 3, dtype=f64, generator=torch.Generator().manual_seed(4)) - 0.5
    moved = pts.clone()
    moved[..., 1] = torch.rand(2, 30, dtype=f64, generator=torch.Generator().manual_seed(5)) - 0.5
    quirk = [sample_triplane(planes, p, reduce="concat", eg3d_axes=True)[..., 8:] for p in (pts, moved)]
    fixed = [sample_triplane(planes, p, reduce="concat", eg3d_axes=False)[..., 8:] for p in (pts, moved)]
    torch.testing.assert_close(quirk[0], quirk[1])
    assert (fixed[0] - fixed[1]).abs().max() > 1e-3
    # and the first two planes are the same either way
    torch.testing.assert_close(
        sample_triplane(planes, pts, reduce="concat", eg3d_axes=True)[..., :8],
        sample_triplane(planes, pts, reduce="concat", eg3d_axes=False)[..., :8],
    )


def test_sample_triplane_reductions():
    planes, pts = _linear_planes(), _interior_points(10)
    concat = sample_triplane(planes, pts, bounds=(LO, HI), reduce="concat")
    mean = sample_triplane(planes, pts, bounds=(LO, HI))
    total = sample_triplane(planes, pts, bounds=(LO, HI), reduce="sum")
    torch.testing.assert_close(mean, concat.mean(-1, keepdim=True))
    torch.testing.assert_close(total, concat.sum(-1, keepdim=True))


def test_sample_triplane_bounds_map_corner_cells():
    H, W = 5, 7
    planes = torch.randn(1, 3, 2, H, W, dtype=f64, generator=torch.Generator().manual_seed(6))
    half_cell = (_t(HI) - _t(LO)) / _t([W, H, H]) / 2  # in the XY plane x spans W, y spans H
    corner_lo = (_t(LO) + _t([1, 1, 0]) * half_cell)[None, None]
    corner_hi = (_t(HI) - _t([1, 1, 0]) * half_cell)[None, None]
    # XY plane: the lowest (x, y) cell centre reads pixel [0, 0], the highest [H-1, W-1]
    lo = sample_triplane(planes, corner_lo, bounds=(LO, HI), reduce="concat")[0, 0, :2]
    hi = sample_triplane(planes, corner_hi, bounds=(LO, HI), reduce="concat")[0, 0, :2]
    torch.testing.assert_close(lo, planes[0, 0, :, 0, 0])
    torch.testing.assert_close(hi, planes[0, 0, :, H - 1, W - 1])
    # exactly on the box minimum: half a cell beyond the centre -> zero padding halves it
    # (bilinear weights 1/2 * 1/2 for the one in-range texel), border padding keeps it
    at_min = _t(LO)[None, None]
    zeros = sample_triplane(planes, at_min, bounds=(LO, HI), reduce="concat")[0, 0, :2]
    border = sample_triplane(planes, at_min, bounds=(LO, HI), reduce="concat", padding="border")[0, 0, :2]
    torch.testing.assert_close(zeros, planes[0, 0, :, 0, 0] / 4)
    torch.testing.assert_close(border, planes[0, 0, :, 0, 0])


def test_sample_triplane_matches_eg3d_projection_code():
    # An independent oracle: EG3D's generate_planes() axes, projected as their
    # project_onto_planes() does (coordinates @ inverse(axes), first two columns), after
    # their (2 / box_warp) scaling; box_warp = 1.6 <-> bounds (-0.8, 0.8).
    eg3d_axes = _t([
        [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
        [[1, 0, 0], [0, 0, 1], [0, 1, 0]],
        [[0, 0, 1], [1, 0, 0], [0, 1, 0]],
    ])
    planes = torch.randn(2, 3, 4, 6, 10, dtype=f64, generator=torch.Generator().manual_seed(7))
    pts = (torch.rand(2, 20, 3, dtype=f64, generator=torch.Generator().manual_seed(8)) - 0.5) * 1.8
    coords = (2 / 1.6) * pts
    expected = []
    for k in range(3):
        grid = (coords @ torch.linalg.inv(eg3d_axes[k]))[..., :2].unsqueeze(1)
        expected.append(F.grid_sample(planes[:, k], grid, mode="bilinear", padding_mode="zeros", align_corners=False))
    expected = torch.stack(expected, dim=1)[:, :, :, 0].permute(0, 3, 1, 2)  # [B, N, 3, C]
    out = sample_triplane(planes, pts, bounds=(-0.8, 0.8), reduce="concat", eg3d_axes=True)
    torch.testing.assert_close(out, expected.reshape(2, 20, 12))
    torch.testing.assert_close(sample_triplane(planes, pts, bounds=(-0.8, 0.8), eg3d_axes=True), expected.mean(dim=2))


# --- feature volume -----------------------------------------------------------------------

def test_sample_feature_volume_reproduces_linear_function_and_axes():
    D, H, W = 4, 5, 6
    x, y, z = _axis_centers(0, W), _axis_centers(1, H), _axis_centers(2, D)
    volume = torch.empty(1, 2, D, H, W, dtype=f64)
    volume[0, 0] = 0.3 * x[None, None, :] - 1.1 * y[None, :, None] + 2.0 * z[:, None, None] + 0.4
    volume[0, 1] = x[None, None, :].expand(D, H, W)  # W follows world x
    pts = _interior_points(40, margin=0.2)
    out = sample_feature_volume(volume, pts, bounds=(LO, HI))
    assert out.shape == (1, 40, 2)
    px, py, pz = pts[0].unbind(-1)
    torch.testing.assert_close(out[0, :, 0], 0.3 * px - 1.1 * py + 2.0 * pz + 0.4)
    torch.testing.assert_close(out[0, :, 1], px)
    corner = torch.stack([x[0], y[0], z[0]])[None, None]
    torch.testing.assert_close(sample_feature_volume(volume, corner, bounds=(LO, HI))[0, 0], volume[0, :, 0, 0, 0])
    corner = torch.stack([x[-1], y[-1], z[-1]])[None, None]
    torch.testing.assert_close(sample_feature_volume(volume, corner, bounds=(LO, HI))[0, 0], volume[0, :, -1, -1, -1])


# --- decoded grid fields --------------------------------------------------------------------

def test_structured_fields_shapes_ranges_and_gradients():
    for field in (
        TriPlaneField(resolution=(8, 6), channels=4, bounds=(-1.0, 1.0)),
        TriPlaneField(torch.randn(3, 4, 8, 8), reduce="concat", eg3d_axes=True, density_activation="relu"),
        FeatureVolumeField(resolution=(4, 5, 6), channels=3, out_features=5),
        FeatureVolumeField(torch.randn(1, 3, 4, 4, 4, dtype=f64)),
    ):
        dtype = next(field.parameters()).dtype
        pts = (torch.rand(2, 7, 3, dtype=dtype) - 0.5).requires_grad_()
        sigma, feats = field(pts)
        assert sigma.shape == (2, 7) and feats.shape == (2, 7, field.feature_dim)
        assert (sigma >= 0).all() and (feats >= -0.001).all() and (feats <= 1.001).all()
        (grad,) = torch.autograd.grad(sigma.sum() + feats.sum(), pts)
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0
        torch.testing.assert_close(field.density(pts), sigma)


def test_osg_decoder_activations():
    dec = OSGDecoder(2, 3)
    with torch.no_grad():
        dec.net[2].weight.zero_()
        dec.net[2].bias.copy_(torch.tensor([1.0, -100.0, 0.0, 100.0]))
    sigma, feats = dec(torch.zeros(5, 2))
    torch.testing.assert_close(sigma, torch.full((5,), math.log(2.0)))  # softplus(1 - 1)
    torch.testing.assert_close(feats[0], torch.tensor([-0.001, 0.5, 1.001]))


# --- argument checks -----------------------------------------------------------------------

@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: sample_triplane(torch.zeros(1, 3, 2, 4), torch.zeros(1, 5, 3)), "^sample_triplane: argument 'planes'"),
        (lambda: sample_triplane(torch.zeros(1, 2, 2, 4, 4), torch.zeros(1, 5, 3)), "argument 'planes'"),
        (lambda: sample_triplane(torch.zeros(1, 3, 2, 4, 4), torch.zeros(1, 5, 2)), "argument 'points'"),
        (lambda: sample_triplane(torch.zeros(2, 3, 2, 4, 4), torch.zeros(1, 5, 3)), "argument 'points'.*B=2"),
        (lambda: sample_triplane(torch.zeros(1, 3, 2, 4, 4).long(), torch.zeros(1, 5, 3)), "'planes'.*dtype"),
        (lambda: sample_triplane(torch.zeros(1, 3, 2, 4, 4), torch.zeros(1, 5, 3, dtype=f64)), "'points'.*float32"),
        (lambda: sample_triplane(torch.zeros(1, 3, 2, 4, 4), torch.zeros(1, 5, 3), reduce="max"), "'reduce'.*'max'"),
        (lambda: sample_triplane(torch.zeros(1, 3, 2, 4, 4), torch.zeros(1, 5, 3), padding="wrap"), "'padding'"),
        (lambda: sample_triplane(torch.zeros(1, 3, 2, 4, 4), torch.zeros(1, 5, 3), bounds=(1, -1)), "'bounds'"),
        (lambda: sample_triplane(torch.zeros(1, 3, 2, 4, 4), torch.zeros(1, 5, 3), bounds=(0, 1, 2)), "'bounds'"),
        (lambda: sample_feature_volume(torch.zeros(1, 2, 4, 4), torch.zeros(1, 5, 3)), "argument 'volume'"),
        (lambda: sample_feature_volume(torch.zeros(1, 2, 3, 4, 4), torch.zeros(5, 3)), "argument 'points'"),
        (lambda: SphereField().density(torch.zeros(4, 2)), "SphereField.density: argument 'points'"),
        (lambda: SphereField()(torch.zeros(4, 3), torch.zeros(5, 3)), "argument 'directions'"),
        (lambda: SphereField()(torch.zeros(4, 3, dtype=torch.int32)), "argument 'points'.*dtype"),
        (lambda: SphereField(radius=-1.0), "SphereField: argument 'radius'"),
        (lambda: SphereField(color=(1.0, 2.0, 0.0)), "argument 'color'"),
        (lambda: SphereField(center=(0.0, 1.0)), "argument 'center'"),
        (lambda: BoxField(half_size=(1.0, 0.2, 1.0), rounding=0.5), "argument 'rounding'"),
        (lambda: TorusField(axis="w"), "TorusField: argument 'axis'"),
        (lambda: TorusField(major_radius=0.1, minor_radius=0.2), "argument 'minor_radius'"),
        (lambda: GyroidField(thickness=0.0), "GyroidField: argument 'thickness'"),
        (lambda: TriPlaneField(torch.zeros(2, 3, 4, 4, 4)), "TriPlaneField: argument 'planes'"),
        (lambda: TriPlaneField(reduce="max"), "TriPlaneField: argument 'reduce'"),
        (lambda: TriPlaneField(resolution=(4, 4, 4)), "argument 'resolution'"),
        (lambda: FeatureVolumeField(channels=0), "FeatureVolumeField: argument 'channels'"),
        (lambda: OSGDecoder(4, density_activation="exp"), "OSGDecoder: argument 'density_activation'"),
        (lambda: TriPlaneField(resolution=4)(torch.zeros(3, 3).double()), "^TriPlaneField: argument 'points'.*float32"),
    ],
)
def test_bad_arguments_raise_value_error_naming_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.cuda
def test_fields_on_cuda_match_cpu():
    pts = torch.rand(1, 100, 3, dtype=f64) * 2 - 1
    pts[0, 0] = _t([-0.4, 0.0, 0.15])  # on the torus axis
    sigma, rgb = demo_scene()(pts)
    pts_cuda = pts.cuda().requires_grad_()
    sigma_cuda, rgb_cuda = demo_scene()(pts_cuda)
    torch.testing.assert_close(sigma_cuda.cpu(), sigma)
    torch.testing.assert_close(rgb_cuda.cpu(), rgb)
    (grad,) = torch.autograd.grad(sigma_cuda.sum() + rgb_cuda.sum(), pts_cuda)
    assert torch.isfinite(grad).all()
    planes = torch.randn(1, 3, 4, 8, 8, dtype=f64)
    on_cuda = sample_triplane(planes.cuda(), pts.cuda() / 2, eg3d_axes=True)
    torch.testing.assert_close(on_cuda.cpu(), sample_triplane(planes, pts / 2, eg3d_axes=True))
