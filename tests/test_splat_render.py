"""Gaussian-splat rasterization through the public entry: an independent dense per-pixel
reference, analytic cases, the native path against the twin with gradients, spherical
harmonics against gsplat, batching, and bad input."""

import math
import re

import pytest
import torch

from _splat import loss_weights, project_args, render, scene
from conftest import device_params
from render3d.cameras import Cameras
from render3d.ops.splat import project_torch
from render3d.splat import sh_to_color


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
