"""StyleGAN2's residual discriminator (Karras et al. 2020, fig. 7c) with minibatch standard
deviation, optional camera conditioning by projection (EG3D), and progressive growing.

Layout: from-RGB at the input resolution, then one residual block per resolution down to 4x4
(two 3x3 convolutions, the second down-sampling, plus a 1x1 down-sampling skip, summed times
sqrt(1/2)), then the epilogue: minibatch stddev, a 3x3 convolution, a fully-connected layer,
and the output layer. With ``c_dim > 0`` the camera label c (EG3D's 25 floats) goes through a
small mapping network to an embedding ``cmap`` and the score is the projection
``<out, cmap> / sqrt(cmap_dim)`` (Miyato and Koyama 2018). EG3D's optional label noise
(`c_noise`, in the batch's standard deviation per label entry) blurs the pose conditioning in
training.

`trunk` (image -> 4x4 features) and `head` (features, c -> score) are separate so that a
method can add heads on the same features (GeoD's geometry heads).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from render3d._checks import check_tensor
from render3d.nn import Conv2dLayer, FullyConnected, MappingNetwork
from render3d.nn.resample import downsample2d, make_filter
from render3d.registry import DISCRIMINATORS


@dataclass
class StyleGAN2DiscriminatorConfig:
    resolution: int = 256           # largest input size (smaller powers of two down to 4 are accepted too)
    channel_base: int = 32768       # channels at resolution r: min(channel_base / r, channel_max)
    channel_max: int = 512
    mbstd_group: int = 4            # minibatch-stddev group size (consecutive samples; min with the batch)
    mbstd_channels: int = 1         # feature groups of the minibatch stddev (0: no minibatch stddev)
    c_dim: int = 0                  # camera label size for projection conditioning (0: unconditional; EG3D: 25)
    cmap_dim: int = 0               # projection embedding size (0: channels at 4x4)
    mapping_layers: int = 2         # layers of the label's mapping network
    c_noise: float = 0.0            # EG3D's disc_c_noise: in training, Gaussian noise on the labels, in batch stds

    def __post_init__(self) -> None:
        if self.resolution < 8 or self.resolution & (self.resolution - 1):
            raise ValueError(f"StyleGAN2DiscriminatorConfig: argument 'resolution' expected a power of two >= 8, "
                             f"got {self.resolution}")
        if not self.c_noise >= 0:
            raise ValueError(f"StyleGAN2DiscriminatorConfig: argument 'c_noise' expected a number >= 0, "
                             f"got {self.c_noise}")
        fn = "StyleGAN2DiscriminatorConfig"
        for name, least in (("channel_max", 1), ("mbstd_group", 1), ("mbstd_channels", 0), ("cmap_dim", 0),
                            ("mapping_layers", 1 if self.c_dim > 0 else 0)):
            if getattr(self, name) < least:
                raise ValueError(f"{fn}: argument '{name}' expected an int >= {least}, got {getattr(self, name)}")
        if self.channel_base < self.resolution:         # channels at the input size, base // resolution, are 0
            raise ValueError(f"{fn}: argument 'channel_base' expected at least resolution={self.resolution} (the "
                             f"channels at size r are min(channel_base // r, channel_max)), got {self.channel_base}")
        c4 = min(self.channel_base // 4, self.channel_max)
        if self.mbstd_channels and c4 % self.mbstd_channels:
            raise ValueError(f"{fn}: argument 'mbstd_channels' expected a divisor of the {c4} channels at 4 x 4, "
                             f"got {self.mbstd_channels}")


def minibatch_stddev(x: torch.Tensor, group: int, channels: int = 1) -> torch.Tensor:
    """Append the stddev over groups of `group` consecutive samples as `channels` extra
    feature maps: ``[B, C, H, W] -> [B, C + channels, H, W]`` (B divisible by the group size)."""
    B, C, H, W = x.shape
    g = min(group, B)
    if B % g:
        raise ValueError(f"minibatch_stddev: argument 'x' expected a batch divisible by the group size {g}, got {B}")
    y = x.reshape(B // g, g, channels, C // channels, H, W)
    y = (y.var(dim=1, unbiased=False) + 1e-8).sqrt()                   # [B/g, channels, C/channels, H, W]
    y = y.mean(dim=[2, 3, 4])                                          # [B/g, channels]
    y = y.repeat_interleave(g, dim=0)[:, :, None, None].expand(B, channels, H, W)
    return torch.cat([x, y], dim=1)


class ResidualBlock(nn.Module):
    """``[B, in, r, r] -> [B, out, r/2, r/2]``."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv0 = Conv2dLayer(in_channels, in_channels, 3)
        self.conv1 = Conv2dLayer(in_channels, out_channels, 3, down=2, gain=math.sqrt(0.5))
        self.skip = Conv2dLayer(in_channels, out_channels, 1, down=2, bias=False, activation="linear",
                                gain=math.sqrt(0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.conv1(self.conv0(x))


@DISCRIMINATORS.register("stylegan2", StyleGAN2DiscriminatorConfig)
class StyleGAN2Discriminator(nn.Module):
    """``image [B, 3, r, r]`` (r a power of two, 8 <= r <= resolution) and camera labels
    ``c [B, c_dim]`` -> scores ``[B]`` (real: high)."""

    def __init__(self, config: StyleGAN2DiscriminatorConfig) -> None:
        super().__init__()
        self.config = cfg = config
        self.resolutions = [cfg.resolution // 2 ** i for i in range(int(math.log2(cfg.resolution)) - 1)]  # ..., 8, 4

        def ch(res):
            return min(cfg.channel_base // res, cfg.channel_max)

        self.from_rgb = nn.ModuleDict({str(r): Conv2dLayer(3, ch(r), 1) for r in self.resolutions[:-1]})
        self.blocks = nn.ModuleDict({str(r): ResidualBlock(ch(r), ch(r // 2)) for r in self.resolutions[:-1]})
        c4 = ch(4)
        self.epilogue_conv = Conv2dLayer(c4 + cfg.mbstd_channels, c4, 3)
        self.epilogue_fc = FullyConnected(c4 * 16, c4, activation="lrelu")
        self.cmap_dim = (cfg.cmap_dim or c4) if cfg.c_dim > 0 else 0
        self.out = FullyConnected(c4, self.cmap_dim or 1)
        self.label_mapping = (MappingNetwork(0, self.cmap_dim, 1, c_dim=cfg.c_dim, num_layers=cfg.mapping_layers,
                                             lr_mul=1.0)
                              if cfg.c_dim > 0 else None)
        self.register_buffer("resample_filter", make_filter(), persistent=False)

    def check_batch(self, batch: int) -> None:
        """ValueError unless batches of `batch` images form whole minibatch-stddev groups."""
        group = self.config.mbstd_group
        if self.config.mbstd_channels and batch % min(group, batch):
            raise ValueError(f"discriminator.mbstd_group expected a divisor of the {batch} images that each process "
                             f"scores at once (its share of batch, or batch_gpu), or a number above it, got {group}")

    def trunk(self, image: torch.Tensor, *, blend: float = 1.0) -> torch.Tensor:
        """``image [B, 3, r, r]`` -> features ``[B, C, 4, 4]`` after the last residual block.

        blend < 1 fades in the block of resolution r (progressive growing): its output is mixed
        with the from-RGB features of the image down-sampled to r/2."""
        fn = "StyleGAN2Discriminator"
        check_tensor(fn, "image", image, (None, 3, None, None))
        r = image.shape[-1]
        if image.shape[-2] != r or r not in self.resolutions[:-1]:
            raise ValueError(f"{fn}: argument 'image' expected a square size in {self.resolutions[:-1]}, "
                             f"got {list(image.shape[-2:])}")
        x = self.blocks[str(r)](self.from_rgb[str(r)](image))
        if blend < 1 and r // 2 > 4:
            skip = self.from_rgb[str(r // 2)](downsample2d(image, self.resample_filter))
            x = skip.lerp(x, blend)
        for res in self.resolutions[self.resolutions.index(r) + 1:-1]:
            x = self.blocks[str(res)](x)
        return x

    def head(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """Trunk features ``[B, C, 4, 4]`` (and labels ``c [B, c_dim]``) -> scores ``[B]``."""
        if self.config.mbstd_channels:
            x = minibatch_stddev(x, self.config.mbstd_group, self.config.mbstd_channels)
        x = self.epilogue_fc(self.epilogue_conv(x).flatten(1))
        out = self.out(x)
        if self.label_mapping is None:
            return out[:, 0]
        if c is None:
            raise ValueError(f"StyleGAN2Discriminator: argument 'c' expected [B, {self.config.c_dim}] camera labels "
                             f"(c_dim > 0), got None")
        if self.training and self.config.c_noise > 0 and c.shape[0] > 1:
            c = c + torch.randn_like(c) * c.std(0) * self.config.c_noise   # out of place: c is the caller's
        cmap = self.label_mapping(None, c)[:, 0]
        return (out * cmap).sum(dim=1) / math.sqrt(self.cmap_dim)

    def forward(self, image: torch.Tensor, c: torch.Tensor | None = None, *, blend: float = 1.0) -> torch.Tensor:
        return self.head(self.trunk(image, blend=blend), c)
