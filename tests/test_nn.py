"""StyleGAN2 building blocks against independent references: per-sample convolutions for the
fused modulated convolution, a 1x1 modulated convolution for the modulated FC layer, each
layer's equations written out step by step (bias, noise, activation and gains unfused),
brute-force statistics for the minibatch stddev, and the defining properties of filtered
resampling, truncation and the registry."""

import pytest
import torch
import torch.nn.functional as F

from render3d.discriminators import minibatch_stddev
from render3d.nn import (Conv2dLayer, FullyConnected, MappingNetwork, ModulatedConv2d, ModulatedLinear, ToRGB,
                         downsample2d, make_filter, modulated_conv2d, upsample2d)
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


def _lrelu(x):
    return F.leaky_relu(x, 0.2) * 2 ** 0.5


def _modulated(weight, styles, demodulate):
    """Per-sample weights [B, out, in, ...]: StyleGAN2 eq. 1, then eq. 3."""
    w = weight[None] * styles.reshape(*styles.shape, *[1] * (weight.dim() - 2))[:, None]
    if demodulate:
        w = w / (w.square().flatten(2).sum(-1) + 1e-8).sqrt().reshape(*w.shape[:2], *[1] * (weight.dim() - 1))
    return w


def _written_out(layer, inputs):
    """What `layer` computes, step by step as the papers write it: the weight's equalized-lr
    gain, the modulation, the layer, noise, bias, activation and gain each on its own."""
    if isinstance(layer, FullyConnected):
        (x,) = inputs
        y = x @ (layer.weight * layer.weight_gain).t() + layer.bias * layer.bias_gain
        return _lrelu(y) if layer.activation == "lrelu" else y
    if isinstance(layer, Conv2dLayer):
        (x,) = inputs
        x = downsample2d(x, layer.resample_filter, layer.down) if layer.down > 1 else x
        y = F.conv2d(x, layer.weight * layer.weight_gain, padding=layer.padding)
        y = y + layer.bias[None, :, None, None] if layer.bias is not None else y
        return (_lrelu(y) if layer.activation == "lrelu" else y) * layer.gain
    x, w = inputs
    styles = layer.affine(w)
    if isinstance(layer, ModulatedLinear):
        weight = _modulated(layer.weight, styles * (1 if layer.demodulate else layer.weight_gain), layer.demodulate)
        y = torch.stack([x[b] @ weight[b].t() for b in range(len(x))]) + layer.bias
        return _lrelu(y) if layer.activation == "lrelu" else y
    if isinstance(layer, ToRGB):
        weight = _modulated(layer.weight, styles * layer.weight_gain, demodulate=False)
        return torch.cat([F.conv2d(x[b:b + 1], weight[b]) for b in range(len(x))]) + layer.bias[:, None, None]
    weight = _modulated(layer.weight, styles, demodulate=True)                     # ModulatedConv2d
    x = upsample2d(x, layer.resample_filter, layer.up) if layer.up > 1 else x
    y = torch.cat([F.conv2d(x[b:b + 1], weight[b], padding=layer.padding) for b in range(len(x))])
    y = y + layer.noise_const * layer.noise_strength
    return _lrelu(y + layer.bias[:, None, None])


@pytest.mark.parametrize("make, shapes", [
    (lambda: FullyConnected(6, 5, activation="lrelu", lr_mul=0.01, bias_init=0.3), [(3, 4, 6)]),
    (lambda: FullyConnected(6, 5), [(3, 6)]),
    (lambda: Conv2dLayer(4, 5, 3), [(2, 4, 8, 8)]),
    (lambda: Conv2dLayer(4, 5, 3, down=2, gain=0.5 ** 0.5), [(2, 4, 8, 8)]),
    (lambda: Conv2dLayer(4, 5, 1, down=2, bias=False, activation="linear", gain=0.5 ** 0.5), [(2, 4, 8, 8)]),
    (lambda: ModulatedLinear(6, 5, w_dim=7), [(2, 9, 6), (2, 7)]),
    (lambda: ModulatedLinear(6, 5, w_dim=7, activation="linear", demodulate=False), [(2, 9, 6), (2, 7)]),
    (lambda: ModulatedConv2d(4, 5, w_dim=7, resolution=6), [(2, 4, 6, 6), (2, 7)]),
    (lambda: ModulatedConv2d(4, 5, w_dim=7, resolution=6, kernel_size=1), [(2, 4, 6, 6), (2, 7)]),   # a matmul
    (lambda: ModulatedConv2d(4, 5, w_dim=7, resolution=12, kernel_size=1, up=2), [(2, 4, 6, 6), (2, 7)]),
    (lambda: ToRGB(4, w_dim=7), [(2, 4, 6, 6), (2, 7)]),
], ids=["fc-lrelu", "fc-linear", "conv", "conv-down-gain", "conv-skip", "modulated-fc", "modulated-fc-plain",
        "modulated-conv", "modulated-conv-1x1", "modulated-conv-1x1-up", "to-rgb"])
def test_each_layer_computes_its_equations_written_out(make, shapes):
    """The layers fold the activation's gain and their own into the weights and bias and add the
    bias inside the matmul or convolution; in float64 that must be the same function, values
    and gradients, as the unfused steps, with non-zero biases and noise so none goes unseen."""
    torch.manual_seed(0)
    layer = make().double()
    with torch.no_grad():
        for name, p in layer.named_parameters():
            if name.endswith("bias") or name == "noise_strength":
                p.copy_(torch.randn_like(p))
    inputs = [torch.randn(*shape, dtype=torch.float64, requires_grad=True) for shape in shapes]
    kwargs = {"noise_mode": "const"} if isinstance(layer, ModulatedConv2d) else {}
    got, expected = layer(*inputs, **kwargs), _written_out(layer, inputs)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    probe = torch.randn_like(got)
    params = [p for p in layer.parameters() if p.requires_grad]
    grads = torch.autograd.grad((got * probe).sum(), [*inputs, *params])
    expected_grads = torch.autograd.grad((expected * probe).sum(), [*inputs, *params])
    for grad, reference in zip(grads, expected_grads):
        torch.testing.assert_close(grad, reference, rtol=1e-10, atol=1e-12)


def test_a_conv_layer_refuses_a_gain_it_cannot_fold_through_its_activation():
    with pytest.raises(ValueError, match="Conv2dLayer: argument 'gain' expected a positive number, got -1.0"):
        Conv2dLayer(4, 5, 3, gain=-1.0)


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
    ({"truncation": 0.5, "truncation_cutoff": 1.5}, "argument 'truncation_cutoff' expected a non-negative int, "
                                                    "got 1.5"),
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
