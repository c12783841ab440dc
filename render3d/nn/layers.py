"""Layers with StyleGAN2's equalized learning rate: weights are stored as N(0, 1) / lr_mul
and scaled at run time by lr_mul / sqrt(fan_in), so every layer learns at the same pace under
Adam whatever its fan-in (Karras et al. 2018, sec. 4.1); `lr_mul` slows a layer down (the
mapping network uses 0.01)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from render3d._checks import said_choices

from .resample import DEFAULT_FILTER, downsample2d, make_filter

ACTIVATIONS = ("linear", "lrelu")
LRELU_GAIN = math.sqrt(2)  # keeps the activations' second moment through a leaky ReLU


def activation_gain(activation: str) -> float:
    """The constant an activation's output is scaled by: LRELU_GAIN for "lrelu", 1 for "linear"."""
    return LRELU_GAIN if activation == "lrelu" else 1.0


def activate(x: torch.Tensor, activation: str) -> torch.Tensor:
    """The activation without its gain. Layers fold the gain, and any gain of their own, into
    their weights and bias (lrelu(g a) = g lrelu(a) for g > 0), so that a layer is one matmul or
    convolution with its bias and one elementwise pass, instead of four passes over its output
    (bias, activation, two gains); StyleGAN2 fuses them in a CUDA kernel (bias_act) instead."""
    return F.leaky_relu(x, 0.2) if activation == "lrelu" else x


class FullyConnected(nn.Module):
    """Equalized-lr linear layer: ``[..., in] -> [..., out]``."""

    def __init__(self, in_features: int, out_features: int, *, activation: str = "linear", lr_mul: float = 1.0,
                 bias: bool = True, bias_init: float = 0.0) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"FullyConnected: argument 'activation' expected one of {said_choices(ACTIVATIONS)}, "
                             f"got {activation!r}")
        self.activation = activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init) / lr_mul)) if bias else None
        self.weight_gain = lr_mul / math.sqrt(in_features)
        self.bias_gain = lr_mul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gain = activation_gain(self.activation)
        bias = self.bias * (self.bias_gain * gain) if self.bias is not None else None
        return activate(F.linear(x, self.weight * (self.weight_gain * gain), bias), self.activation)


class Conv2dLayer(nn.Module):
    """Equalized-lr 2D convolution ``[B, in, H, W] -> [B, out, H / down, W / down]``;
    down-sampling low-pass filters before striding (StyleGAN2's discriminator layers)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, activation: str = "lrelu",
                 down: int = 1, bias: bool = True, gain: float = 1.0, resample_filter=DEFAULT_FILTER) -> None:
        super().__init__()
        if not gain > 0:                                # folded through the activation: lrelu(g a) = g lrelu(a)
            raise ValueError(f"Conv2dLayer: argument 'gain' expected a positive number, got {gain!r}")
        self.activation, self.down, self.gain = activation, down, gain
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size ** 2)
        self.padding = kernel_size // 2
        self.register_buffer("resample_filter", make_filter(resample_filter), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.down > 1:
            x = downsample2d(x, self.resample_filter, self.down)
        gain = activation_gain(self.activation) * self.gain
        bias = self.bias * gain if self.bias is not None else None
        return activate(F.conv2d(x, self.weight * (self.weight_gain * gain), bias, padding=self.padding),
                        self.activation)
