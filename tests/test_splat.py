"""Gaussian-splat rasterization's native ops: each against its PyTorch twin (values and
gradients), float64 gradcheck on the C++ code, gsplat's projection reference, and the ops'
own checks of their arguments. The public entry is tested in test_splat_render.py."""

import pytest
import torch

from _splat import loss_weights, project_args, render, scene
from conftest import device_params
from render3d.ops import _build
from render3d.ops.splat import covariance, isect_tiles_torch, project_torch, raster_torch


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
    assert float((1 - ours[1].detach()).max()) > 0.9  # something opaque was drawn
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
