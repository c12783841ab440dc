"""Gaussian-splat rasterization: every native op against its PyTorch twin (values and
gradients), float64 gradcheck on the C++ code, gsplat's projection reference, an independent
dense per-pixel reference, analytic cases, batching, and bad input."""

import math
import re

import pytest
import torch

from conftest import device_params
from render3d.cameras import Cameras
from render3d.ops import _build
from render3d.ops.splat import covariance, isect_tiles_torch, project_torch, raster_torch
from render3d.splat import rasterize, sh_to_color


def scene(B=2, N=60, seed=0, dtype=torch.float64, spread=0.8, size=(40, 30)):
    """Random Gaussians in front of B look-at cameras, including some behind, off-screen and
    near the clamp (so every branch runs)."""
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(B, N, 3, generator=g, dtype=dtype) * spread
    means[:, :3] = torch.tensor([[0.0, 0.0, 5.0], [4.0, 0.0, 0.0], [0.0, 0.0, -9.0]], dtype=dtype)  # behind / aside
    quats = torch.randn(B, N, 4, generator=g, dtype=dtype)
    scales = torch.rand(B, N, 3, generator=g, dtype=dtype) * 0.15 + 0.01
    opacities = torch.rand(B, N, generator=g, dtype=dtype) * 0.9 + 0.05
    features = torch.rand(B, N, 3, generator=g, dtype=dtype)
    eyes = torch.tensor([[0.3, 0.2, -3.0], [-2.5, 0.8, -1.5], [1.0, -1.0, 2.5]], dtype=dtype)[:B]
    cameras = Cameras.look_at(eyes, torch.zeros(B, 3, dtype=dtype), width=size[0], height=size[1], fov_degrees=55)
    return means, quats, scales, opacities, features, cameras


def render(means, quats, scales, opacities, features, cameras, **kwargs):
    return rasterize(means, quats, scales, opacities, features, cameras.cam2world, cameras.intrinsics, cameras.width,
                     cameras.height, **kwargs)


def project_args(means, quats, scales, opacities, cameras, antialiased=False, covars=None, opacity_radius=False):
    viewmats = cameras.world2cam
    k = cameras.intrinsics
    pixel_k = torch.stack([k[:, 0, 0] * cameras.width, k[:, 1, 1] * cameras.height, k[:, 0, 2] * cameras.width,
                           k[:, 1, 2] * cameras.height], -1)
    return (means, None if covars is not None else quats, None if covars is not None else scales, covars,
            opacities if opacity_radius else None, viewmats.contiguous(), pixel_k.contiguous(), cameras.width,
            cameras.height, 0.01, 1e10, 0.3, 1 / 255, antialiased)


def loss_weights(outputs, seed=3):
    g = torch.Generator().manual_seed(seed)
    total = 0
    for out in outputs:
        if out.is_floating_point():
            total = total + (out * torch.rand(out.shape, generator=g, dtype=out.dtype).to(out.device)).sum()
    return total


def native():
    _build.load_native(raise_errors=True)
    return torch.ops.render3d


# --- projection -----------------------------------------------------------------------------

@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("variant", ["quats", "covars", "antialiased", "opacity_radius"])
def test_projection_matches_twin(device, variant):
    means, quats, scales, opacities, _, cameras = scene()
    covars = None
    if variant == "covars":
        cov = covariance(quats, scales, None)
        covars = torch.stack([cov[..., 0, 0], cov[..., 0, 1], cov[..., 0, 2], cov[..., 1, 1], cov[..., 1, 2],
                              cov[..., 2, 2]], -1)
    tensors = [t.to(device).requires_grad_() for t in (means, quats, scales)]
    covars = covars.to(device).requires_grad_() if covars is not None else None
    args = project_args(*tensors, opacities.to(device), cameras.to(device), antialiased=variant == "antialiased",
                        covars=covars, opacity_radius=variant == "opacity_radius")
    ours = native().project_fwd(*args)
    twin = project_torch(*args)
    assert torch.equal(ours[0], twin[0])
    assert int((ours[0][..., 0] > 0).sum()) > 20 and int((ours[0][..., 0] == 0).sum()) >= 3
    for a, b in zip(ours[1:], twin[1:]):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    inputs = [covars] if covars is not None else tensors[1:]
    inputs = [tensors[0], *inputs]
    for a, b in zip(torch.autograd.grad(loss_weights(ours), inputs), torch.autograd.grad(loss_weights(twin), inputs)):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_gaussian_wider_than_int32_pixels_is_drawn(device, dtype):
    """A radius of 2**31 pixels or more was cast to int32 as INT32_MIN on the CPU (undefined;
    CUDA saturates), so a huge Gaussian in front of the camera vanished. Radii stop at MAX_RADIUS."""
    from render3d.ops.splat import MAX_RADIUS

    means, quats, scales, opacities, colors, cameras = (t.to(device) for t in scene(B=1, N=4, dtype=dtype))
    scales = scales.clone()
    scales[0, 3] = 1e8                                       # all over the picture, alpha = its opacity
    args = project_args(means, quats, scales, opacities, cameras)
    ours, twin = native().project_fwd(*args), project_torch(*args)
    assert torch.equal(ours[0], twin[0]) and ours[0][0, 3].tolist() == [MAX_RADIUS, MAX_RADIUS]
    out = render(means, quats, scales, opacities, colors, cameras, background=0.0, impl="native")
    expected = torch.full_like(out["alpha"], float(opacities[0, 3]))  # the small ones are drawn over it
    assert float((out["alpha"] - expected).abs().lt(1e-5).float().mean()) > 0.5


def test_projection_op_takes_quats_and_scales_or_covars():
    """quats with covars (and no scales) passed the op's check, then the op read the scales."""
    means, quats, scales, opacities, _, cameras = scene(B=1, N=5)
    args = list(project_args(means, quats, scales, opacities, cameras))
    covars = torch.rand(1, 5, 6, dtype=means.dtype)
    for given in ((quats, None, covars), (quats, scales, covars), (None, scales, None), (None, None, None)):
        args[1:4] = given
        with pytest.raises(RuntimeError, match="give either quats and scales or covars"):
            native().project_fwd(*args)


@pytest.mark.parametrize("bad", ["radii", "conics", "compensations", "v_means2d", "v_depths", "v_conics",
                                 "v_compensations"])
def test_projection_backward_op_names_a_tensor_of_the_wrong_shape(bad):
    """project_bwd checked only the dtype and device of the forward's outputs and of the incoming
    gradients (and the element count of radii): one Gaussian short, it read past their end."""
    means, quats, scales, opacities, _, cameras = scene(B=2, N=5)
    args = project_args(means, quats, scales, opacities, cameras)
    radii, means2d, depths, conics, compensations = native().project_fwd(*args)
    given = {"radii": radii, "conics": conics, "compensations": compensations, "v_means2d": torch.ones_like(means2d),
             "v_depths": torch.ones_like(depths), "v_conics": torch.ones_like(conics),
             "v_compensations": torch.ones_like(compensations)}
    # radii [B, 2N] has the right element count, which was all that was checked
    given[bad] = radii.reshape(2, 10) if bad == "radii" else given[bad][:, :-1].contiguous()
    with pytest.raises(RuntimeError, match=f"render3d::project_bwd: argument '{bad}' expected"):
        native().project_bwd(*args, *given.values())


@pytest.mark.parametrize("tiles", [(-1, 2), (3, -2)])
def test_tile_binning_op_refuses_negative_tile_counts(tiles):
    means, quats, scales, opacities, _, cameras = scene(B=1, N=5)
    radii, means2d, depths, _, _ = native().project_fwd(*project_args(means, quats, scales, opacities, cameras))
    with pytest.raises(RuntimeError, match="render3d::isect_tiles: arguments 'tiles_x', 'tiles_y' expected >= 0"):
        native().isect_tiles(means2d, radii, depths, *tiles)


# second derivatives (gradient penalties): under create_graph the native backward recomputes
# through the twin, so they are right too
GRADCHECKS = [torch.autograd.gradcheck, torch.autograd.gradgradcheck]


@pytest.mark.parametrize("check", GRADCHECKS)
def test_projection_gradcheck_cpp(check):
    means, quats, scales, opacities, _, cameras = scene(B=2, N=10)
    args = list(project_args(means, quats, scales, opacities, cameras, antialiased=True))

    def f(m, q, s):
        args[:3] = m, q, s
        return native().project_fwd(*args)[1:]

    assert check(f, [t.clone().requires_grad_() for t in (means, quats, scales)])


def test_projection_against_gsplat_reference():
    """gsplat's own PyTorch projection, an outside oracle for 2D means, conics, depths and radii."""
    reference = pytest.importorskip("gsplat.cuda._torch_impl")
    means, quats, scales, opacities, _, cameras = scene(B=2, N=200, dtype=torch.float32, size=(64, 48))
    radii, means2d, depths, conics, _ = native().project_fwd(*project_args(means, quats, scales, opacities, cameras))
    cov = covariance(quats, scales, None)
    k = torch.zeros(2, 3, 3)
    k[:, 0, 0], k[:, 1, 1] = cameras.intrinsics[:, 0, 0] * 64, cameras.intrinsics[:, 1, 1] * 48
    k[:, 0, 2], k[:, 1, 2], k[:, 2, 2] = cameras.intrinsics[:, 0, 2] * 64, cameras.intrinsics[:, 1, 2] * 48, 1
    for b in range(2):
        r_ref, m_ref, d_ref, c_ref, _ = reference._fully_fused_projection(
            means[b], cov[b], cameras.world2cam[b:b + 1], k[b:b + 1], 64, 48, eps2d=0.3, near_plane=0.01)
        visible = radii[b, :, 0] > 0
        assert torch.equal(visible, r_ref[0, :, 0] > 0)
        assert (radii[b][visible] - r_ref[0][visible]).abs().max() <= 1
        torch.testing.assert_close(means2d[b][visible], m_ref[0][visible], rtol=1e-4, atol=1e-3)
        torch.testing.assert_close(depths[b][visible], d_ref[0][visible], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(conics[b][visible], c_ref[0][visible], rtol=1e-4, atol=1e-5)


# --- tile binning ---------------------------------------------------------------------------

@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("size", [(40, 30), (16, 16), (97, 33)])
def test_tile_binning_matches_twin_exactly(device, size):
    means, quats, scales, opacities, _, cameras = scene(B=3, N=150, dtype=torch.float32, size=size)
    radii, means2d, depths, _, _ = native().project_fwd(
        *project_args(*(t.to(device) for t in (means, quats, scales, opacities)), cameras.to(device)))
    tiles = (-(-size[0] // 16), -(-size[1] // 16))
    ours = native().isect_tiles(means2d, radii, depths, *tiles)
    twin = isect_tiles_torch(means2d, radii, depths, *tiles)
    assert ours[0].numel() > 0
    for a, b in zip(ours, twin):
        assert torch.equal(a, b)
    keys = ours[0]
    assert bool((keys[1:] >= keys[:-1]).all())
    # every Gaussian of a tile's list overlaps that tile with its pixel radius
    offsets, ids = ours[2].cpu(), ours[1].cpu().long()
    for tile in torch.randint(0, offsets.numel() - 1, (10,), generator=torch.Generator().manual_seed(0)).tolist():
        t = tile % (tiles[0] * tiles[1])
        tx, ty = t % tiles[0], t // tiles[0]
        for g in ids[offsets[tile]:offsets[tile + 1]].tolist():
            m, r = means2d.reshape(-1, 2)[g].cpu(), radii.reshape(-1, 2)[g].cpu()
            assert m[0] + r[0] > tx * 16 and m[0] - r[0] < (tx + 1) * 16
            assert m[1] + r[1] > ty * 16 and m[1] - r[1] < (ty + 1) * 16


# --- rasterization --------------------------------------------------------------------------

def raster_inputs(device="cpu", dtype=torch.float64, channels=4, size=(40, 30), seed=0):
    means, quats, scales, opacities, _, cameras = scene(dtype=dtype, size=size, seed=seed)
    radii, means2d, depths, conics, _ = native().project_fwd(
        *project_args(*(t.to(device) for t in (means, quats, scales, opacities)), cameras.to(device)))
    features = torch.rand(*means2d.shape[:2], channels, generator=torch.Generator().manual_seed(1), dtype=dtype)
    _, ids, offsets = native().isect_tiles(means2d, radii, depths, -(-size[0] // 16), -(-size[1] // 16))
    return means2d, conics, features.to(device), opacities.to(device), offsets, ids, size


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("channels", [0, 1, 4, 9, 33])   # 0: the CUDA kernels launched no block, blended nothing
def test_raster_matches_twin(device, channels):
    means2d, conics, features, opacities, offsets, ids, (W, H) = raster_inputs(device, channels=channels)
    leaves = [t.clone().requires_grad_() for t in (means2d, conics, features, opacities)]
    args = (*leaves, offsets, ids, W, H, 0.999, 1 / 255, 1e-4)
    ours, twin = native().raster_fwd(*args), raster_torch(*args)
    for a, b in zip(ours, twin):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    assert float((1 - ours[1]).max()) > 0.9  # something opaque was drawn
    for a, b in zip(torch.autograd.grad(loss_weights(ours), leaves), torch.autograd.grad(loss_weights(twin), leaves)):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("bad", ["transmittance", "last", "v_transmittance"])
def test_raster_backward_op_names_a_tensor_of_the_wrong_shape(bad):
    """raster_bwd checked v_acc's shape but not these [B, H, W] tensors: a row short, the kernel
    read past their end."""
    means2d, conics, features, opacities, offsets, ids, (W, H) = raster_inputs()
    acc, transmittance, last = native().raster_fwd(means2d, conics, features, opacities, offsets, ids, W, H, 0.999,
                                                   1 / 255, 1e-4)
    given = {"transmittance": transmittance, "last": last, "v_transmittance": torch.ones_like(transmittance)}
    given[bad] = given[bad][:, :-1].contiguous()
    with pytest.raises(RuntimeError, match=f"render3d::raster_bwd: argument '{bad}' expected shape"):
        native().raster_bwd(torch.ones_like(acc), given["v_transmittance"], means2d, conics, features, opacities,
                            offsets, ids, given["transmittance"], given["last"], W, H, 0.999, 1 / 255, 1e-4)


@pytest.mark.cuda
@pytest.mark.parametrize("op", ["raster_fwd", "project_fwd", "isect_tiles"])
def test_native_ops_name_a_tensor_on_another_device(op):
    """A CPU tensor among CUDA ones: the index tensors of raster_fwd and the radii of isect_tiles
    had no device check (the kernel read host memory as device memory), and a CPU first argument
    met the CUDA registration's CUDAGuard, an internal assert, before any check."""
    if op == "raster_fwd":
        *inputs, (W, H) = raster_inputs()
        for moved, name in enumerate(["means2d", "conics", "features", "opacities", "tile_offsets", "ids"]):
            args = [t.cuda() for t in inputs]
            args[moved] = args[moved].cpu()
            expected = "a CUDA tensor" if name == "means2d" else "device cuda"
            with pytest.raises(RuntimeError, match=f"render3d::raster_fwd: argument '{name}' expected {expected}"):
                native().raster_fwd(*args, W, H, 0.999, 1 / 255, 1e-4)
        return
    means, quats, scales, opacities, _, cameras = scene(B=1, N=5)
    args = list(project_args(*(t.cuda() for t in (means, quats, scales, opacities)), cameras.to("cuda")))
    if op == "project_fwd":
        args[0] = args[0].cpu()
        with pytest.raises(RuntimeError, match="render3d::project_fwd: argument 'means' expected a CUDA tensor"):
            native().project_fwd(*args)
    else:
        radii, means2d, depths, _, _ = native().project_fwd(*args)
        with pytest.raises(RuntimeError, match="render3d::isect_tiles: argument 'radii' expected device cuda"):
            native().isect_tiles(means2d, radii.cpu(), depths, 3, 2)


@pytest.mark.parametrize("device", device_params())
def test_raster_with_alpha_min_zero_matches_twin(device):
    """alpha_min 0 blends every pair with sigma >= 0, zero opacities too. The CPU kernel took
    log(opacity / 0) as the reach of each Gaussian, cast an infinite pixel box to int (undefined:
    it read and wrote outside its tile) and skipped zero opacities, which the twin and CUDA blend."""
    means2d, conics, features, opacities, offsets, ids, (W, H) = raster_inputs(device)
    opacities = opacities.clone()
    opacities[:, ::4] = 0
    leaves = [t.clone().requires_grad_() for t in (means2d, conics, features, opacities)]
    args = (*leaves, offsets, ids, W, H, 0.999, 0.0, 1e-4)
    ours, twin = native().raster_fwd(*args), raster_torch(*args)
    for a, b in zip(ours, twin):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    for a, b in zip(torch.autograd.grad(loss_weights(ours), leaves), torch.autograd.grad(loss_weights(twin), leaves)):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("check, size", list(zip(GRADCHECKS, [(20, 18), (12, 10)])))  # second order: few pixels
def test_raster_gradcheck_cpp(check, size):
    means2d, conics, features, opacities, offsets, ids, (W, H) = raster_inputs(size=size)

    def f(m, c, feat, o):
        return native().raster_fwd(m, c, feat, o, offsets, ids, W, H, 0.999, 1 / 255, 1e-4)[:2]

    leaves = [t.clone().requires_grad_() for t in (means2d, conics, features, opacities * 0.8)]
    assert check(f, leaves)


def dense_reference(means, quats, scales, opacities, colors, cameras, background):
    """Every pixel against every Gaussian in global depth order (no tiles, no lists): an
    independent check of binning, sorting and the blending rules."""
    radii, means2d, depths, conics, _ = project_torch(*project_args(means, quats, scales, opacities, cameras))
    B, N = depths.shape
    H, W = cameras.height, cameras.width
    ys, xs = torch.meshgrid(torch.arange(H, dtype=means.dtype) + 0.5, torch.arange(W, dtype=means.dtype) + 0.5,
                            indexing="ij")
    images, alphas = [], []
    for b in range(B):
        order = [n for n in torch.argsort(depths[b], stable=True).tolist() if radii[b, n, 0] > 0]
        image = torch.zeros(H, W, 3, dtype=means.dtype)
        transmittance = torch.ones(H, W, dtype=means.dtype)
        done = torch.zeros(H, W, dtype=torch.bool)
        for n in order:
            dx, dy = means2d[b, n, 0] - xs, means2d[b, n, 1] - ys
            a, bb, c = conics[b, n]
            sigma = 0.5 * (a * dx * dx + c * dy * dy) + bb * dx * dy
            alpha = torch.clamp(opacities[b, n] * torch.exp(-sigma), max=0.999)
            use = (sigma >= 0) & (alpha >= 1 / 255) & ~done
            stop = use & (transmittance * (1 - alpha) <= 1e-4)
            done |= stop
            use &= ~stop
            image += torch.where(use[..., None], alpha[..., None] * transmittance[..., None] * colors[b, n], 0)
            transmittance = torch.where(use, transmittance * (1 - alpha), transmittance)
        images.append(image + transmittance[..., None] * background)
        alphas.append(1 - transmittance)
    return torch.stack(images).permute(0, 3, 1, 2), torch.stack(alphas)[:, None]


@pytest.mark.parametrize("impl", ["native", "torch"])
def test_rasterize_matches_independent_dense_reference(impl):
    means, quats, scales, opacities, colors, cameras = scene(N=80, size=(36, 28))
    background = torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64)
    out = render(means, quats, scales, opacities, colors, cameras, background=background, impl=impl)
    image, alpha = dense_reference(means, quats, scales, opacities, colors, cameras, background)
    torch.testing.assert_close(out["image"], image, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(out["alpha"], alpha, rtol=1e-10, atol=1e-12)


# --- analytic cases -------------------------------------------------------------------------

@pytest.mark.parametrize("impl", ["native", "torch"])
def test_isotropic_gaussian_facing_the_camera_is_the_analytic_2d_gaussian(impl):
    """One isotropic Gaussian of std s at distance d on the optical axis renders, before the
    alpha cut-offs, as o exp(-r^2 / (2 ((f s / d)^2 + 0.3))) (the EWA projection plus the blur)."""
    size, fov, s, d, o = 64, 50.0, 0.2, 4.0, 0.8
    cameras = Cameras.look_at(torch.tensor([[0.0, 0.0, -d]], dtype=torch.float64),
                              torch.zeros(1, 3, dtype=torch.float64), width=size, height=size, fov_degrees=fov)
    out = render(torch.zeros(1, 1, 3, dtype=torch.float64), torch.tensor([[[1.0, 0, 0, 0]]], dtype=torch.float64),
                 torch.full((1, 1, 3), s, dtype=torch.float64), torch.tensor([[o]], dtype=torch.float64),
                 torch.ones(1, 1, 1, dtype=torch.float64), cameras, impl=impl)
    f = 0.5 * size / math.tan(math.radians(fov) / 2)
    variance = (f * s / d) ** 2 + 0.3
    centres = torch.arange(size, dtype=torch.float64) + 0.5
    ys, xs = torch.meshgrid(centres, centres, indexing="ij")
    r2 = (xs - size / 2) ** 2 + (ys - size / 2) ** 2
    expected = o * torch.exp(-r2 / (2 * variance))
    expected = torch.where(expected >= 1 / 255, expected, 0)
    torch.testing.assert_close(out["image"][0, 0], expected, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(out["alpha"][0, 0], expected, rtol=1e-9, atol=1e-12)
    seen = expected > 0
    torch.testing.assert_close(out["depth"][0, 0][seen], torch.full((int(seen.sum()),), d, dtype=torch.float64))


@pytest.mark.parametrize("impl", ["native", "torch"])
def test_gaussians_behind_or_outside_contribute_nothing_and_empty_renders_background(impl):
    cameras = Cameras.look_at(torch.tensor([[0.0, 0.0, -3.0]]), torch.zeros(1, 3), width=32, height=24, fov_degrees=50)
    hidden = torch.tensor([[[0.0, 0.0, -5.0], [30.0, 0.0, 0.0], [0.0, -40.0, 1.0], [0.0, 0.0, -3.0]]])
    quats = torch.tensor([1.0, 0, 0, 0]).expand(1, 4, 4)
    out = render(hidden, quats, torch.full((1, 4, 3), 0.1), torch.full((1, 4), 0.9), torch.ones(1, 4, 3), cameras,
                 background=0.25, impl=impl)
    assert out["radii"].abs().sum() == 0
    torch.testing.assert_close(out["image"], torch.full((1, 3, 24, 32), 0.25))
    assert float(out["alpha"].abs().max()) == 0 and float(out["depth"].abs().max()) == 0
    empty = render(torch.zeros(1, 0, 3), torch.zeros(1, 0, 4), torch.zeros(1, 0, 3), torch.zeros(1, 0),
                   torch.zeros(1, 0, 3), cameras, background=torch.tensor([0.1, 0.2, 0.3]), impl=impl)
    torch.testing.assert_close(empty["image"], torch.tensor([0.1, 0.2, 0.3])[None, :, None, None].expand(1, 3, 24, 32))


# --- the public entry -----------------------------------------------------------------------

@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("mode", ["classic", "antialiased"])
def test_rasterize_native_matches_twin_with_gradients(device, mode):
    means, quats, scales, opacities, colors, cameras = scene(N=70)
    leaves = [t.to(device).requires_grad_() for t in (means, quats, scales, opacities, colors)]
    cameras = cameras.to(device)
    outs = {}
    for impl in ("native", "torch"):
        out = render(*leaves, cameras, mode=mode, background=0.5, radius_mode="opacity", impl=impl)
        out["means2d"].retain_grad()
        loss = loss_weights([out["image"], out["depth"], out["alpha"]])
        grads = torch.autograd.grad(loss, leaves + [out["means2d"]])
        outs[impl] = (out, grads)
    for key in ("image", "depth", "alpha"):
        torch.testing.assert_close(outs["native"][0][key], outs["torch"][0][key], rtol=1e-9, atol=1e-11)
    for a, b in zip(outs["native"][1], outs["torch"][1]):
        torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-9)
    assert float(outs["native"][1][-1].abs().sum()) > 0  # screen-space gradients for densification


def test_rgb_to_sh_renders_as_the_colour_and_refuses_integer_colours():
    from render3d.splat import rgb_to_sh

    rgb = torch.tensor([[0.2, 0.5, 0.9]], dtype=torch.float64)
    directions = torch.tensor([[0.3, -0.2, 0.9]], dtype=torch.float64)
    torch.testing.assert_close(sh_to_color(0, rgb_to_sh(rgb)[:, None], directions), rgb)
    torch.testing.assert_close(rgb_to_sh([0.2, 0.5, 0.9]), rgb_to_sh(rgb[0]).float())   # a list as a tensor
    # 0..255 colours rendered white, and a list was a TypeError from Python's '-'
    with pytest.raises(ValueError, match=r"rgb_to_sh: argument 'rgb' expected float RGB in \[0, 1\], got dtype "
                                         r"uint8 \(divide 0..255 colours by 255\)"):
        rgb_to_sh(torch.tensor([[51, 127, 230]], dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"rgb_to_sh: argument 'rgb' expected float RGB in \[0, 1\], got 'red'"):
        rgb_to_sh("red")


def test_spherical_harmonics_against_gsplat_and_view_dependence():
    reference = pytest.importorskip("gsplat.cuda._torch_impl")
    g = torch.Generator().manual_seed(0)
    coefficients = torch.randn(50, 16, 3, generator=g)
    directions = torch.nn.functional.normalize(torch.randn(50, 3, generator=g), dim=-1)
    for degree in range(4):
        theirs = reference._spherical_harmonics(degree, directions, coefficients[:, : (degree + 1) ** 2])
        torch.testing.assert_close(sh_to_color(degree, coefficients, directions), torch.clamp_min(theirs + 0.5, 0),
                                   rtol=1e-5, atol=1e-5)
    means, quats, scales, opacities, _, cameras = scene(B=2, N=40)
    sh = torch.randn(2, 40, 16, 3, generator=g, dtype=torch.float64) * 0.3
    out = render(means, quats, scales, opacities, sh, cameras, sh_degree=3)
    out0 = render(means, quats, scales, opacities, sh, cameras, sh_degree=0)
    assert out["image"].shape == (2, 3, 30, 40)
    assert float((out["image"] - out0["image"]).abs().max()) > 1e-3  # higher bands change the colour


def test_batched_sets_and_one_set_seen_by_many_cameras():
    means, quats, scales, opacities, colors, cameras = scene(B=3, N=50)
    batched = render(means, quats, scales, opacities, colors, cameras)
    for b in range(3):
        single = render(*(t[b:b + 1] for t in (means, quats, scales, opacities, colors)), cameras[b])
        torch.testing.assert_close(batched["image"][b:b + 1], single["image"], rtol=1e-12, atol=1e-12)
    leaves = [t[:1].clone().requires_grad_() for t in (means, quats, scales, opacities, colors)]
    shared = render(*leaves, cameras)
    grads = torch.autograd.grad(shared["image"].sum(), leaves)
    per_camera = [torch.zeros_like(leaf) for leaf in leaves]
    for b in range(3):
        out = render(*leaves, cameras[b])
        assert torch.allclose(out["image"], shared["image"][b:b + 1])
        for acc, grad in zip(per_camera, torch.autograd.grad(out["image"].sum(), leaves)):
            acc += grad
    for a, b in zip(grads, per_camera):
        torch.testing.assert_close(a, b)


def test_feature_channels_up_to_256():
    means, quats, scales, opacities, _, cameras = scene(B=1, N=30, dtype=torch.float32)
    features = torch.rand(1, 30, 256)
    out = render(means, quats, scales, opacities, features, cameras)
    twin = render(means, quats, scales, opacities, features, cameras, impl="torch")
    assert out["image"].shape == (1, 256, 30, 40)
    torch.testing.assert_close(out["image"], twin["image"], rtol=1e-5, atol=1e-5)


def test_bad_input():
    means, quats, scales, opacities, colors, cameras = scene(B=2, N=5)
    args = [means, quats, scales, opacities, colors, cameras]

    def call(**changes):
        values = dict(zip(("means", "quats", "scales", "opacities", "features", "cameras"), args))
        values.update(changes)
        return render(*values.values())

    with pytest.raises(ValueError, match=r"rasterize: argument 'quats' expected shape \[G, N, 4\] with N=5"):
        call(quats=quats[:, :4])
    with pytest.raises(ValueError, match=r"argument 'means' expected a leading size of 1 or B=2"):
        call(means=means.repeat(2, 1, 1), quats=quats.repeat(2, 1, 1), scales=scales.repeat(2, 1, 1),
             opacities=opacities.repeat(2, 1), features=colors.repeat(2, 1, 1))
    zero = quats.clone()
    zero[1, 3] = 0
    with pytest.raises(ValueError, match=r"argument 'quats' expected non-zero quaternions .* at index \(1, 3\)"):
        call(quats=zero)
    nan = means.clone()
    nan[0, 2, 1] = float("nan")
    with pytest.raises(ValueError, match=r"argument 'means' expected finite values, got nan at index \(0, 2, 1\)"):
        call(means=nan)
    with pytest.raises(ValueError, match=r"argument 'scales' expected finite, non-negative values, got -0.5"):
        call(scales=scales - 0.5 - scales)
    with pytest.raises(ValueError, match=r"argument 'opacities' expected values in \[0, 1\]"):
        call(opacities=opacities + 1)
    with pytest.raises(ValueError, match=r"argument 'mode' expected one of 'classic', 'antialiased', got 'mip'"):
        render(*args[:5], cameras, mode="mip")
    with pytest.raises(ValueError, match=r"argument 'sh_degree' expected 0, 1, 2 or 3, got 4"):
        render(*args[:4], torch.zeros(2, 5, 25, 3, dtype=torch.float64), cameras, sh_degree=4)
    # no cameras failed inside the projection; alpha_max of 1 divides by a transmittance of 0 backwards
    with pytest.raises(ValueError, match=r"arguments 'cam2world', 'intrinsics' expected at least one camera"):
        render(*args[:5], cameras[:0])
    for setting, got in (({"alpha_max": 1.0}, "1.0, "), ({"alpha_min": 0.9995}, "0.999, 0.9995, "),
                         ({"transmittance_eps": 1.0}, ", 1.0, 0.3")):
        with pytest.raises(ValueError, match=r"expected 0 <= alpha_min < alpha_max < 1, transmittance_eps in \[0, 1\) "
                                             r"and eps2d >= 0, got .*" + re.escape(got)):
            render(*args[:5], cameras, **setting)
    with pytest.raises(ValueError, match=r"argument 'far_plane' expected a number greater than near_plane=0.01, got 0"):
        render(*args[:5], cameras, far_plane=0.0)
