"""VolumeGAN (Xu et al., CVPR 2022; genforce/volumegan): a structural feature volume plus a
neural renderer.

- mapping: z -> w (8 FC layers, lr multiplier 0.01), broadcast to `num_ws` ws: the point MLP's
  layers first (ws[:, 0] also styles the feature volume), then the neural renderer's;
- feature volume: a learned constant 4^3 grown by 3D convolutions, each followed by instance
  norm whose scale and shift come from one linear map of w, and leaky ReLU; nearest x2
  up-sampling before every stage but the first: 4^3 -> 32^3 with 256 -> 32 channels;
- point MLP: the volume's trilinear feature of a point concatenated with its positional
  encoding (10 frequencies plus the input: 63 numbers), `mlp_layers` modulated FC layers,
  a density head (ReLU density) and a feature head; no view direction;
- rendering: `n_coarse` stratified + `n_fine` importance samples per ray inside `bounds`,
  composited by `render3d.volume` (native kernels) into a feature map at `neural_resolution`;
- neural renderer: StyleGAN2 synthesis blocks of modulated 1x1 convolutions (an up-sampling
  layer and a refining layer per resolution, noise, to-RGB skips) up to `resolution`.

`image_raw` is the renderer's RGB at the neural resolution (its first skip output), so that
a low-resolution view exists for dual discrimination and previews.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from render3d._checks import check_choice, check_number, check_tensor
from render3d.cameras import Cameras
from render3d.nn import FullyConnected, MappingNetwork, ModulatedConv2d, ModulatedLinear, NOISE_MODES, ToRGB
from render3d.nn.layers import LRELU_GAIN, activate
from render3d.nn.resample import make_filter, upsample2d
from render3d.registry import GENERATORS
from render3d.volume import DENSITY_ACTIVATIONS, VolumeRenderer, density_activation, sample_feature_volume


@dataclass
class VolumeGANConfig:
    """VolumeGAN's settings; the defaults are the official FFHQ-256 ones (methods.md §1)."""

    z_dim: int = 512                    # latent size
    w_dim: int = 512                    # style size
    c_dim: int = 0                      # camera label fed to the mapping network (0: none, as VolumeGAN)
    mapping_layers: int = 8             # FC layers of the mapping network
    mapping_lr_mul: float = 0.01        # their learning-rate multiplier
    resolution: int = 256               # output image size
    neural_resolution: int = 32         # size of the volume-rendered feature map
    volume_channels: tuple[int, ...] = (256, 128, 64, 32)  # per 3D stage: 4^3 -> 32^3
    bounds: tuple[tuple[float, float, float], tuple[float, float, float]] = (
        (-0.19, -0.17, -0.20), (0.19, 0.17, 0.19))  # the feature volume's box (VolumeGAN's FFHQ box), world units
    mlp_width: int = 256                # point MLP width
    mlp_layers: int = 4                 # modulated FC layers of the point MLP
    pe_frequencies: int = 10            # positional-encoding octaves
    feature_dim: int = 512              # channels of the rendered feature map
    density_activation: str = "relu"    # raw density -> sigma (VolumeGAN: ReLU)
    n_coarse: int = 12                  # stratified samples per ray
    n_fine: int = 12                    # importance samples per ray
    near: float = 0.8                   # ray segment (further clipped to `bounds`)
    far: float = 1.2
    jitter: bool = True                 # jitter the stratified samples in training mode
    renderer_fmap_base: int = 32768     # neural renderer channels: min(base / res, max)
    renderer_fmap_max: int = 512
    use_noise: bool = True              # noise inputs in the neural renderer
    impl: str = "auto"                  # compositing kernels: "auto" | "native" | "torch"

    def __post_init__(self) -> None:
        fn = "VolumeGANConfig"
        check_choice(fn, "density_activation", self.density_activation, DENSITY_ACTIVATIONS)
        check_choice(fn, "impl", self.impl, ("auto", "native", "torch"))
        for name in ("resolution", "neural_resolution"):
            value = getattr(self, name)
            if value < 4 or value & (value - 1):
                raise ValueError(f"{fn}: argument '{name}' expected a power of two >= 4, got {value}")
        if self.resolution < self.neural_resolution:
            raise ValueError(f"{fn}: argument 'resolution' expected >= neural_resolution={self.neural_resolution}, "
                             f"got {self.resolution}")
        if not self.volume_channels or self.mlp_layers < 1:
            raise ValueError(f"{fn}: arguments 'volume_channels', 'mlp_layers' expected at least one stage and "
                             f"one layer, got {self.volume_channels!r}, {self.mlp_layers}")
        if self.pe_frequencies < 0:
            raise ValueError(f"{fn}: argument 'pe_frequencies' expected a non-negative int, got {self.pe_frequencies}")
        for name in ("w_dim", "mapping_layers", "mlp_width", "feature_dim", "renderer_fmap_max"):
            if getattr(self, name) < 1:
                raise ValueError(f"{fn}: argument '{name}' expected a positive int, got {getattr(self, name)}")
        if min(self.volume_channels) < 1:
            raise ValueError(f"{fn}: argument 'volume_channels' expected positive ints, got {self.volume_channels!r}")
        if self.n_fine < 0 or not self.mapping_lr_mul > 0:
            raise ValueError(f"{fn}: arguments 'n_fine', 'mapping_lr_mul' expected a non-negative int and a positive "
                             f"number, got {self.n_fine}, {self.mapping_lr_mul}")
        if self.renderer_fmap_base < self.resolution:   # the output layer's channels, base // resolution, are 0
            raise ValueError(f"{fn}: argument 'renderer_fmap_base' expected at least resolution={self.resolution} "
                             f"(the neural renderer has min(base // res, max) channels at res), "
                             f"got {self.renderer_fmap_base}")
        lo, hi = self.bounds
        if not all(a < b for a, b in zip(lo, hi)):
            raise ValueError(f"{fn}: argument 'bounds' expected [min corner, max corner] with min < max on every "
                             f"axis, got {[list(lo), list(hi)]}")


def positional_encoding(x: torch.Tensor, frequencies: int) -> torch.Tensor:
    """NeRF's encoding ``[..., 3] -> [..., 3 + 6 F]``: x, then sin and cos of 2^k pi x, k < F."""
    scales = (2.0 ** torch.arange(frequencies, device=x.device, dtype=x.dtype)) * math.pi
    angles = (x[..., None, :] * scales[:, None]).flatten(-2)
    return torch.cat([x, angles.sin(), angles.cos()], dim=-1)


class FeatureVolume(nn.Module):
    """``w [B, w_dim]`` -> feature volume ``[B, C, D, H, W]`` (D along z, H along y, W along x,
    as `render3d.volume.sample_feature_volume` reads it)."""

    def __init__(self, w_dim: int, channels: tuple[int, ...], base: int = 4) -> None:
        super().__init__()
        self.const = nn.Parameter(torch.randn(1, channels[0], base, base, base))
        ins = (channels[0], *channels[:-1])
        # No convolution bias: the instance norm right after it would cancel it (its gradient
        # is zero up to rounding, which Adam would blow up into lr-sized random steps).
        self.weights = nn.ParameterList(nn.Parameter(torch.randn(o, i, 3, 3, 3)) for i, o in zip(ins, channels))
        self.gains = [1 / math.sqrt(i * 27) for i in ins]
        self.style = FullyConnected(w_dim, 2 * sum(channels))  # per stage: instance-norm scale and shift
        self.channels = channels

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        scales_shifts = self.style(w).split([2 * c for c in self.channels], dim=1)
        x = self.const.expand(len(w), *self.const.shape[1:])
        for stage, (weight, gain, ss) in enumerate(zip(self.weights, self.gains, scales_shifts)):
            if stage > 0:
                x = F.interpolate(x, scale_factor=2, mode="nearest")
            x = F.conv3d(x, weight * gain, padding=1)
            # lrelu(norm (1 + scale) + shift), times the activation's gain, folded in as the layers do
            scale, shift = (ss[:, :, None, None, None] * LRELU_GAIN).chunk(2, dim=1)
            x = activate(torch.addcmul(shift, F.instance_norm(x), scale + LRELU_GAIN), "lrelu")
        return x


class NeuralRenderer(nn.Module):
    """VolumeGAN's 2D head: feature map ``[B, C, r0, r0]`` and ``ws [B, num_ws, w_dim]`` ->
    RGB ``[B, 3, r, r]`` through modulated 1x1 convolutions with to-RGB skips."""

    def __init__(self, in_channels: int, w_dim: int, in_resolution: int, out_resolution: int, *,
                 fmap_base: int, fmap_max: int, use_noise: bool) -> None:
        super().__init__()
        self.in_resolution, self.out_resolution = in_resolution, out_resolution
        self.resolutions = [in_resolution * 2 ** i for i in range(int(math.log2(out_resolution // in_resolution)) + 1)]

        def ch(res):
            return min(fmap_base // res, fmap_max)

        self.blocks = nn.ModuleList()
        previous = in_channels
        for res in self.resolutions:
            up = 2 if res > in_resolution else 1
            self.blocks.append(nn.ModuleDict({
                "conv0": ModulatedConv2d(previous, ch(res), w_dim, res, kernel_size=1, up=up, use_noise=use_noise),
                "conv1": ModulatedConv2d(ch(res), ch(res), w_dim, res, kernel_size=1, use_noise=use_noise),
                "torgb": ToRGB(ch(res), w_dim),
            }))
            previous = ch(res)
        self.num_ws = 2 * len(self.resolutions)
        self.register_buffer("resample_filter", make_filter(), persistent=False)

    def forward(self, x: torch.Tensor, ws: torch.Tensor, *, resolution: int | None = None, blend: float = 1.0,
                noise_mode: str = "random", upsample: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (image at `resolution` [B, 3, r, r], image at the input resolution).

        blend < 1 fades the last block in (progressive growing): its to-RGB output is added
        times `blend` to the up-sampled image of the block before. upsample=False treats each
        input pixel alone (no spatial up-sampling: every block keeps the input's size).

        Under autocast the blocks run in the lower precision, and the images (the to-RGB skips
        summed over the blocks) stay in x's dtype, as StyleGAN2-ADA keeps them float32 in FP16."""
        resolution = resolution or self.out_resolution
        dtype = x.dtype
        image = first = None
        for i, (res, block) in enumerate(zip(self.resolutions, self.blocks)):
            if res > resolution:
                break
            x = block["conv0"](x, ws[:, 2 * i], noise_mode=noise_mode, upsample=upsample)
            x = block["conv1"](x, ws[:, 2 * i + 1], noise_mode=noise_mode, upsample=upsample)
            rgb = block["torgb"](x, ws[:, 2 * i + 1]).to(dtype)
            if image is None:
                image = first = rgb
                continue
            if upsample:
                with torch.autocast(image.device.type, enabled=False):
                    image = upsample2d(image, self.resample_filter)
            image = image + (blend if res == resolution else 1.0) * rgb
        return image, first


@GENERATORS.register("volumegan", VolumeGANConfig)
class VolumeGAN(nn.Module):
    """The generator interface of DESIGN.md: `mapping`, `synthesis`, `density`, `color`."""

    def __init__(self, config: VolumeGANConfig) -> None:
        super().__init__()
        self.config = c = config
        self.bbox = tuple(tuple(float(v) for v in corner) for corner in c.bounds)
        self.volume = FeatureVolume(c.w_dim, tuple(c.volume_channels))
        pe_dim = 3 + 6 * c.pe_frequencies
        widths = [c.volume_channels[-1] + pe_dim] + [c.mlp_width] * c.mlp_layers
        self.mlp = nn.ModuleList(ModulatedLinear(a, b, c.w_dim) for a, b in zip(widths[:-1], widths[1:]))
        self.density_head = FullyConnected(c.mlp_width, 1)
        self.feature_head = FullyConnected(c.mlp_width, c.feature_dim)
        self.neural_renderer = NeuralRenderer(c.feature_dim, c.w_dim, c.neural_resolution, c.resolution,
                                              fmap_base=c.renderer_fmap_base, fmap_max=c.renderer_fmap_max,
                                              use_noise=c.use_noise)
        self.num_ws = c.mlp_layers + self.neural_renderer.num_ws
        self.style_mixing_range = (c.mlp_layers, self.num_ws)  # VolumeGAN mixes styles in the 2D head only
        self.mapping_network = MappingNetwork(c.z_dim, c.w_dim, self.num_ws, c_dim=c.c_dim,
                                              num_layers=c.mapping_layers, lr_mul=c.mapping_lr_mul)
        self.renderer = self._make_renderer(c.impl)
        self._twin_renderer = None                      # made on demand (see synthesis's impl)
        self.stage: tuple[int, float] | None = None     # see set_stage

    def _make_renderer(self, impl: str) -> VolumeRenderer:
        c = self.config
        return VolumeRenderer(n_coarse=c.n_coarse, n_fine=c.n_fine, near=c.near, far=c.far, bbox=self.bbox,
                              weight_smoothing=None, check_values=False, impl=impl)

    @property
    def z_dim(self) -> int:
        return self.config.z_dim

    @property
    def c_dim(self) -> int:
        """Length of the camera label the mapping network takes (0: none)."""
        return self.config.c_dim

    @property
    def resolutions(self) -> list[int]:
        """Output sizes the generator can render (progressive growing runs through them)."""
        return self.neural_renderer.resolutions

    def set_stage(self, resolution: int, blend: float = 1.0) -> None:
        """The progressive-growing stage this generator is trained to (`render3d train` sets the
        EMA generator's; its checkpoints keep it): while it is below the largest resolution,
        `synthesis` without a `resolution` renders at this stage and up-samples the image to the
        largest size (nearest, as PGGAN and Hammer show a growing generator), instead of adding
        the untrained blocks above it. The largest resolution with blend 1 clears it."""
        check_choice("VolumeGAN.set_stage", "resolution", resolution, self.resolutions)
        check_number("VolumeGAN.set_stage", "blend", blend)
        if not 0 <= blend <= 1:
            raise ValueError(f"VolumeGAN.set_stage: argument 'blend' expected a number in [0, 1], got {blend}")
        grown = resolution == self.resolutions[-1] and blend == 1
        self.stage = None if grown else (int(resolution), float(blend))

    def mapping(self, z: torch.Tensor, c: torch.Tensor | None = None, *, truncation: float = 1.0,
                truncation_cutoff: int | None = None, update_w_avg: bool = False) -> torch.Tensor:
        """``z [B, z_dim]`` (and camera labels ``c [B, 25]`` when c_dim > 0) -> ``ws [B, num_ws, w_dim]``."""
        return self.mapping_network(z, c, truncation=truncation, truncation_cutoff=truncation_cutoff,
                                    update_w_avg=update_w_avg)

    def _check_ws(self, fn: str, ws: torch.Tensor) -> None:
        check_tensor(fn, "ws", ws, ("B", self.num_ws, self.config.w_dim))

    def _point_hidden(self, volume: torch.Tensor, points: torch.Tensor, ws: torch.Tensor) -> torch.Tensor:
        """Point MLP: ``points [B, N, 3]`` -> its last layer ``[B, N, mlp_width]``, which the
        density and feature heads read (`density` and `color` each run only the head they need)."""
        lo, hi = points.new_tensor(self.bbox[0]), points.new_tensor(self.bbox[1])
        local = (points - lo) * (2 / (hi - lo)) - 1
        x = torch.cat([sample_feature_volume(volume, points, bounds=self.bbox),
                       positional_encoding(local, self.config.pe_frequencies)], dim=-1)
        for i, layer in enumerate(self.mlp):
            x = layer(x, ws[:, i])
        return x

    def _point_features(self, volume: torch.Tensor, points: torch.Tensor, ws: torch.Tensor):
        """``points [B, N, 3]`` -> (raw density [B, N], features [B, N, feature_dim])."""
        x = self._point_hidden(volume, points, ws)
        return self.density_head(x)[..., 0], self.feature_head(x)

    def _field(self, ws: torch.Tensor):
        volume = self.volume(ws[:, 0])

        def field(points, directions):
            raw, features = self._point_features(volume, points, ws)
            return density_activation(raw, self.config.density_activation), features

        return field

    def synthesis(self, ws: torch.Tensor, cameras: Cameras, resolution: int | None = None, *, blend: float = 1.0,
                  noise_mode: str = "random", impl: str | None = None) -> dict[str, torch.Tensor]:
        """Render ``ws [B, num_ws, w_dim]`` from B `cameras` (their image size is ignored).

        resolution: output size, one of `resolutions` (default: the largest; for a generator
        still growing, its `stage` up-sampled to the largest, see `set_stage`, and `blend` is
        the stage's); blend in [0, 1] fades its last block in. impl: compositing kernels for
        this call (default: the config's). Second derivatives (path-length regularization) are
        right with either: the native backward recomputes through the twin under create_graph,
        so "torch" there only saves the native forward. Returns ``image [B, 3, r, r]``
        in [-1, 1] (not clamped), ``image_raw [B, 3, n, n]``, ``features [B, feature_dim, n, n]``,
        ``depth [B, 1, n, n]`` (distance along the ray, world units) and ``alpha [B, 1, n, n]``
        at the neural resolution n.

        Under autocast (`render3d train` with precision=bfloat16) only the neural renderer's
        layers run in the lower precision: the feature volume, the point MLP and the compositing
        stay in the dtype of `ws`, and so do the returned tensors (see NeuralRenderer.forward).
        """
        fn = "VolumeGAN.synthesis"
        self._check_ws(fn, ws)
        check_choice(fn, "noise_mode", noise_mode, NOISE_MODES)
        if resolution is not None:
            check_choice(fn, "resolution", resolution, self.resolutions)
        if len(cameras) != len(ws):
            raise ValueError(f"{fn}: argument 'cameras' expected {len(ws)} cameras (one per ws), got {len(cameras)}")
        staged = resolution is None and self.stage is not None
        if staged:
            resolution, blend = self.stage
        n = self.config.neural_resolution
        jitter = self.training and self.config.jitter
        renderer = self.renderer
        if impl is not None and impl != self.config.impl:
            check_choice(fn, "impl", impl, ("auto", "native", "torch"))
            if self._twin_renderer is None or self._twin_renderer.impl != impl:
                self._twin_renderer = self._make_renderer(impl)
            renderer = self._twin_renderer
        with torch.autocast(ws.device.type, enabled=False):  # the native kernels take float32/float64
            rendered = renderer(self._field(ws), cameras.resized(n, n), normals=False, jitter=jitter)
        features = rendered["image"]
        image, image_raw = self.neural_renderer(features, ws[:, self.config.mlp_layers:], resolution=resolution,
                                                blend=blend, noise_mode=noise_mode)
        if staged and resolution != self.resolutions[-1]:
            image = F.interpolate(image, size=self.resolutions[-1], mode="nearest")
        return {"image": image, "image_raw": image_raw, "features": features, "depth": rendered["depth"],
                "alpha": rendered["alpha"]}

    def forward(self, z: torch.Tensor, cameras: Cameras, c: torch.Tensor | None = None, *, truncation: float = 1.0,
                resolution: int | None = None, noise_mode: str = "random") -> dict[str, torch.Tensor]:
        """`mapping` then `synthesis`."""
        return self.synthesis(self.mapping(z, c, truncation=truncation), cameras, resolution, noise_mode=noise_mode)

    def density(self, points: torch.Tensor, ws: torch.Tensor) -> torch.Tensor:
        """Density sigma ``[B, N]`` (per world unit) at world ``points [B, N, 3]``."""
        self._check_ws("VolumeGAN.density", ws)
        check_tensor("VolumeGAN.density", "points", points, (len(ws), None, 3), like=ws, like_name="ws")
        raw = self.density_head(self._point_hidden(self.volume(ws[:, 0]), points, ws))[..., 0]
        return density_activation(raw, self.config.density_activation)

    def color(self, points: torch.Tensor, ws: torch.Tensor) -> torch.Tensor:
        """RGB ``[B, N, 3]`` in [0, 1] at world ``points [B, N, 3]``: the colour the neural renderer
        gives a pixel whose rendered feature is the point's feature (its 1x1 layers applied to
        the point alone, without the up-sampling filters or noise)."""
        self._check_ws("VolumeGAN.color", ws)
        check_tensor("VolumeGAN.color", "points", points, (len(ws), None, 3), like=ws, like_name="ws")
        features = self.feature_head(self._point_hidden(self.volume(ws[:, 0]), points, ws))
        image, _ = self.neural_renderer(features.transpose(1, 2)[:, :, None], ws[:, self.config.mlp_layers:],
                                        noise_mode="none", upsample=False)
        return ((image[:, :, 0].transpose(1, 2) + 1) / 2).clamp(0, 1)
