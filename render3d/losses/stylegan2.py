"""StyleGAN2's losses: the non-saturating logistic GAN loss, lazy R1 on real images, and
path-length regularization (Karras et al. 2020, sec. 3.2), with lazy intervals; and, for
3D generators, an optional opacity entropy that pushes rendered opacity towards 0 or 1."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from render3d._checks import check_positive
from render3d.registry import LOSSES


def ns_generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """Non-saturating G loss per sample ``[B]``: softplus(-D(G(z))) = -log sigmoid(D(G(z)))."""
    return F.softplus(-fake_scores)


def ns_discriminator_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """Logistic D loss per sample ``[B]``: softplus(D(G(z))) + softplus(-D(x))."""
    return F.softplus(fake_scores) + F.softplus(-real_scores)


def r1_penalty(real_scores: torch.Tensor, real_images: torch.Tensor) -> torch.Tensor:
    """R1 (Mescheder et al. 2018, eq. 9 without gamma/2): ``|grad_x D(x)|^2`` per sample ``[B]``;
    `real_images` must require grad and `real_scores` depend on them."""
    (grad,) = torch.autograd.grad(real_scores.sum(), real_images, create_graph=True)
    return grad.square().flatten(1).sum(1)


def path_lengths(images: torch.Tensor, ws: torch.Tensor) -> torch.Tensor:
    """StyleGAN2's path length per sample ``[B]``: |J_w^T y| for y ~ N(0, I) / sqrt(H W), the
    Jacobian of the images w.r.t. ``ws [B, num_ws, w_dim]`` (averaged over the ws)."""
    noise = torch.randn_like(images) / (images.shape[2] * images.shape[3]) ** 0.5
    (grad,) = torch.autograd.grad((images * noise).sum(), ws, create_graph=True)
    return grad.square().sum(2).mean(1).sqrt()


def opacity_entropy(alpha: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """Binary entropy of rendered opacity per sample ``[B]`` (mean over pixels, nats, in
    [0, ln 2]): -a log a - (1 - a) log(1 - a), a clamped to [eps, 1 - eps]. Zero for pixels that
    are empty or opaque, largest for half-transparent fog; its gradient moves a pixel's opacity
    away from 1/2, towards the nearer of 0 and 1."""
    a = alpha.clamp(eps, 1 - eps).flatten(1)
    return -(a * a.log() + (1 - a) * (1 - a).log()).mean(1)


@dataclass
class StyleGAN2LossConfig:
    r1_gamma: float = 10.0          # R1 weight (VolumeGAN 10, EG3D FFHQ 1)
    r1_interval: int = 16           # lazy R1: every this many D steps (0: never)
    pl_weight: float = 0.0          # path-length weight (VolumeGAN: 2; 0: off)
    pl_interval: int = 4            # lazy path length: every this many G steps
    pl_decay: float = 0.01          # decay of the running mean path length
    style_mixing: float = 0.9       # probability of mixing two latents' styles in a generator batch
    opacity_entropy: float = 0.0    # weight of the rendered opacity's binary entropy in G's loss (0: off)
    # EG3D's generator pose conditioning regularization, for camera-conditioned generators
    # (generator.c_dim > 0): the mapping network sees another sample's camera label with
    # probability gpc_swap, which starts at 1 and falls linearly to gpc_swap over gpc_fade_kimg.
    gpc_swap: float = 0.5           # EG3D's --gpc_reg_prob (FFHQ 0.5, AFHQ 0.8)
    gpc_fade_kimg: float = 1000.0   # thousands of images (0: gpc_swap from the start)

    def __post_init__(self) -> None:
        fn = "StyleGAN2LossConfig"
        for name in ("r1_gamma", "r1_interval", "pl_weight", "opacity_entropy", "gpc_fade_kimg"):
            check_positive(fn, name, getattr(self, name), allow_zero=True)
        check_positive(fn, "pl_interval", self.pl_interval, integer=True)
        for name in ("pl_decay", "style_mixing", "gpc_swap"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{fn}: argument '{name}' expected a number in [0, 1], got {getattr(self, name)!r}")


@LOSSES.register("stylegan2", StyleGAN2LossConfig)
class StyleGAN2Loss(nn.Module):
    """The terms the training loop adds up. Lazy terms come already scaled by their interval
    (StyleGAN2's lazy regularization), so the loop adds them on the steps they are due."""

    def __init__(self, config: StyleGAN2LossConfig) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("pl_mean", torch.zeros([]))

    def r1_due(self, step: int) -> bool:
        return self.config.r1_interval > 0 and self.config.r1_gamma > 0 and step % self.config.r1_interval == 0

    def pl_due(self, step: int) -> bool:
        return self.config.pl_weight > 0 and step % self.config.pl_interval == 0

    def generator(self, fake_scores: torch.Tensor) -> torch.Tensor:
        return ns_generator_loss(fake_scores).mean()

    def discriminator(self, real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
        return ns_discriminator_loss(real_scores, fake_scores).mean()

    def r1(self, real_scores: torch.Tensor, real_images: torch.Tensor) -> torch.Tensor:
        """gamma / 2 * E[R1] * r1_interval."""
        c = self.config
        return r1_penalty(real_scores, real_images).mean() * (c.r1_gamma / 2 * c.r1_interval)

    def path_length(self, images: torch.Tensor, ws: torch.Tensor,
                    reduce_mean: Callable[[torch.Tensor], torch.Tensor] = lambda x: x) -> torch.Tensor:
        """pl_weight * E[(|J^T y| - a)^2] * pl_interval, a the running mean of path lengths
        (`reduce_mean` averages a batch mean over processes, so that all keep the same a)."""
        c = self.config
        lengths = path_lengths(images, ws)
        with torch.no_grad():
            self.pl_mean.copy_(self.pl_mean.lerp(reduce_mean(lengths.detach().mean()), c.pl_decay))
        return (lengths - self.pl_mean).square().mean() * (c.pl_weight * c.pl_interval)

    def opacity(self, alpha: torch.Tensor) -> torch.Tensor:
        """opacity_entropy * E[binary entropy of the opacity ``alpha [B, 1, h, w]``]: solid
        surfaces instead of fog that the 2D renderer paints over."""
        return opacity_entropy(alpha).mean() * self.config.opacity_entropy

    def lazy_factor(self, role: str) -> float:
        """StyleGAN2's correction of lr and Adam betas for a lazily regularized network:
        interval / (interval + 1), or 1 without lazy regularization."""
        c = self.config
        if role == "D":
            interval = c.r1_interval if c.r1_gamma > 0 else 0
        else:
            interval = c.pl_interval if c.pl_weight > 0 else 0
        return interval / (interval + 1) if interval > 0 else 1.0
