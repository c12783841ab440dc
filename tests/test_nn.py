"""StyleGAN2 building blocks against independent references: per-sample convolutions for the
fused modulated convolution, a 1x1 modulated convolution for the modulated FC layer,
brute-force statistics for the minibatch stddev, and the defining properties of filtered
resampling, truncation and the registry."""

import pytest
import torch
import torch.nn.functional as F

from render3d.discriminators import minibatch_stddev
from render3d.nn import (MappingNetwork, ModulatedConv2d, ModulatedLinear, downsample2d, make_filter,
                         modulated_conv2d, upsample2d)
from render3d.registry import GENERATORS


def test_modulated_conv2d_matches_per_sample_convolution():
    torch.manual_seed(0)
    x, weight, styles = torch.randn(3, 5, 6, 6), torch.randn(4, 5, 3, 3), torch.randn(3, 5)
    fused = modulated_conv2d(x, weight, styles, padding=1)
    for b in range(3):
        w = weight * styles[b][None, :, None, None]
        w = w / w.square().sum(dim=[1, 2, 3], keepdim=True).add(1e-8).sqrt()   # StyleGAN2 eq. 3
        torch.testing.assert_close(fused[b], F.conv2d(x[b:b + 1], w, padding=1)[0], rtol=1e-5, atol=1e-5)


def test_demodulation_gives_unit_variance_outputs():
    torch.manual_seed(0)
    x = torch.randn(4, 64, 16, 16)
    y = modulated_conv2d(x, torch.randn(32, 64, 1, 1), torch.rand(4, 64) * 3 + 0.1)
    assert abs(y.std().item() - 1) < 0.1   # whatever the style's scale


def test_modulated_linear_equals_a_modulated_1x1_convolution():
    torch.manual_seed(0)
    fc = ModulatedLinear(6, 5, w_dim=7)
    conv = ModulatedConv2d(6, 5, w_dim=7, resolution=1, kernel_size=1, use_noise=False)
    conv.load_state_dict({"affine.weight": fc.affine.weight, "affine.bias": fc.affine.bias,
                          "weight": fc.weight[:, :, None, None], "bias": fc.bias}, strict=False)
    x, w = torch.randn(2, 9, 6), torch.randn(2, 7)
    expected = conv(x.transpose(1, 2)[..., None], w)[..., 0].transpose(1, 2)
    torch.testing.assert_close(fc(x, w), expected, rtol=1e-5, atol=1e-5)


def test_filtered_resampling_keeps_constants_and_shapes():
    f = make_filter()
    x = torch.full((1, 2, 8, 8), 3.0)
    up, down = upsample2d(x, f), downsample2d(x, f)
    assert up.shape == (1, 2, 16, 16) and down.shape == (1, 2, 4, 4)
    torch.testing.assert_close(up[..., 2:-2, 2:-2], torch.full_like(up[..., 2:-2, 2:-2], 3.0))
    torch.testing.assert_close(down[..., 1:-1, 1:-1], torch.full_like(down[..., 1:-1, 1:-1], 3.0))


def test_downsampling_removes_the_nyquist_pattern_that_striding_keeps():
    checker = (torch.arange(16)[:, None] + torch.arange(16)[None]) % 2 * 2.0 - 1
    x = checker[None, None].float()
    assert x[..., ::2, ::2].abs().mean() == 1                     # plain striding aliases it to a constant
    assert downsample2d(x, make_filter())[..., 1:-1, 1:-1].abs().max() < 1e-6


def test_mapping_truncation_and_w_average():
    torch.manual_seed(0)
    mapping = MappingNetwork(8, 16, num_ws=3, num_layers=2, w_avg_beta=0.0)
    z = torch.randn(5, 8)
    ws = mapping(z, update_w_avg=True)
    assert ws.shape == (5, 3, 16)
    torch.testing.assert_close(mapping.w_avg, ws[:, 0].mean(0))     # beta 0: the batch mean
    truncated = mapping(z, truncation=0.0, truncation_cutoff=2)
    torch.testing.assert_close(truncated[:, :2], mapping.w_avg.expand(5, 2, 16))
    torch.testing.assert_close(truncated[:, 2], ws[:, 2])
    torch.testing.assert_close(mapping(z, truncation=0.5), mapping.w_avg.lerp(ws, 0.5))
    torch.testing.assert_close(mapping(z, truncation=torch.tensor(0.5)), mapping.w_avg.lerp(ws, 0.5))
    assert torch.isfinite(mapping(z, truncation=1e15)).all()                # extrapolation far out still works
    torch.testing.assert_close(mapping(z, truncation=1e300, truncation_cutoff=0), ws)   # truncates nothing


@pytest.mark.parametrize("kwargs, message", [
    ({"truncation": float("nan")}, "argument 'truncation' expected a finite number, got nan"),
    ({"truncation": "0.7"}, "argument 'truncation' expected a finite number, got '0.7'"),
    ({"truncation": 1e300}, "argument 'truncation' expected a number small enough for w_avg \\+ psi \\(w - w_avg\\) "
                            "to stay finite in torch.float32, got 1e\\+300"),
    ({"truncation": 0.5, "truncation_cutoff": -1}, "argument 'truncation_cutoff' expected a non-negative int, got -1"),
    ({"truncation": 0.5, "truncation_cutoff": 1.5}, "argument 'truncation_cutoff' expected a non-negative int, got 1.5"),
])
def test_mapping_names_a_bad_truncation(kwargs, message):
    """NaN or a psi so large that w overflows gave NaN images; a string failed inside lerp."""
    torch.manual_seed(0)
    mapping = MappingNetwork(8, 16, num_ws=3, num_layers=2)
    mapping(torch.randn(64, 8), update_w_avg=True)
    with pytest.raises(ValueError, match="MappingNetwork: " + message):
        mapping(torch.randn(2, 8), **kwargs)


def test_mapping_does_not_blame_truncation_for_a_w_that_is_not_finite():
    mapping = MappingNetwork(8, 16, num_ws=3, num_layers=2)
    assert torch.isnan(mapping(torch.full((2, 8), float("nan")), truncation=1e300)).all()


def test_minibatch_stddev_groups_consecutive_samples():
    torch.manual_seed(0)
    x = torch.randn(4, 6, 2, 2)
    y = minibatch_stddev(x, group=2)
    assert y.shape == (4, 7, 2, 2)
    for g in range(2):
        expected = x[2 * g:2 * g + 2].std(dim=0, unbiased=False).mean()
        torch.testing.assert_close(y[2 * g:2 * g + 2, 6], expected.expand(2, 2, 2), rtol=1e-4, atol=1e-6)


def test_unknown_generator_lists_the_registered_ones():
    with pytest.raises(ValueError, match=r"generator_type: expected one of 'volumegan', got 'nerf'"):
        GENERATORS.get("nerf")
