"""The two phases of a training step, each over a process's share of the batch in passes of
`config.batch_gpu` images (EG3D's and StyleGAN2-ADA's --batch-gpu) whose gradients add up to
those of one pass over the share: a large batch in the memory of a small one.

Every loss term is a mean over its pass, weighted by the pass's share of the images, so the
sum is the mean over the share. G's mapping network runs once over the whole share (its w
average moves once per step, as in one pass) and is backpropagated once, after the passes,
from the gradient they left on its output. One thing differs from one pass: the running mean
of the path-length penalty moves once per pass (as StyleGAN2-ADA's does), not once per step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch

from render3d.cameras import Cameras

from .distributed import Distributed
from .logs import add_stat, grad_norm


class Drawn(NamedTuple):
    """What the generator phase renders, for one process's share of the batch: latents
    ``z``, ``z_mix`` [B, z_dim], style mixing ``mixing`` [B] bool from layer ``cutoff`` [B],
    the mapping's camera labels ``c`` [B, 25] (None without conditioning), and the cameras
    rendered with their labels ``labels`` [B, 25], which D sees."""
    z: torch.Tensor
    z_mix: torch.Tensor
    mixing: torch.Tensor
    cutoff: torch.Tensor
    c: torch.Tensor | None
    cameras: Cameras
    labels: torch.Tensor


def passes(share: int, batch_gpu: int | None) -> list[slice]:
    """The slices of a share of `share` images in passes of `batch_gpu` (None: one pass)."""
    size = batch_gpu or share
    return [slice(start, start + size) for start in range(0, share, size)]


def generator_phase(G, loss, score: Callable, drawn: Drawn, parts: list[slice], *, resolution: int,
                    blend: float, pl_due: bool, low_precision: Callable, dist: Distributed,
                    sums: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """G's gradients for the non-saturating loss (and the opacity entropy, and the path length
    when due) of the images of `drawn`, added up over `parts`; returns G's loss (the mean over
    the share, detached) and the generated images (detached), for D's phase."""
    ws = G.mapping(drawn.z, drawn.c, update_w_avg=True)
    mixed = G.mapping(drawn.z_mix, drawn.c)
    use_mixed = drawn.mixing[:, None] & (torch.arange(G.num_ws, device=ws.device)[None] >= drawn.cutoff[:, None])
    ws = torch.where(use_mixed[..., None], mixed, ws)
    leaf = ws.detach().requires_grad_(True)             # the passes' gradients gather here
    g_loss, fakes = 0.0, []
    for part in parts:
        weight = (part.stop - part.start) / len(ws)
        w, cameras = leaf[part], drawn.cameras[part]
        # Path length differentiates the images twice; the native backward would recompute
        # through the twin then, so composite with the twin from the start.
        with low_precision():                           # the 2D part only: see VolumeGAN.synthesis
            rendered = G.synthesis(w, cameras, resolution, blend=blend, impl="torch" if pl_due else None)
        fake = rendered["image"]
        term = loss.generator(score(fake, drawn.labels[part], blend))
        total = term
        if loss.config.opacity_entropy > 0:
            opacity = loss.opacity(rendered["alpha"])
            total = total + opacity
            add_stat(sums, "loss/opacity_entropy", opacity * weight)
        if pl_due:
            pl = loss.path_length(fake, w, dist.mean)
            total = total + pl
            add_stat(sums, "loss/path_length", pl * weight)
        (total * weight).backward()
        g_loss = g_loss + term.detach() * weight
        fakes.append(fake.detach())
    ws.backward(leaf.grad)                              # through the mixing and the mapping network, once
    return g_loss, torch.cat(fakes)


def discriminator_phase(loss, score: Callable, reals: torch.Tensor, real_labels: torch.Tensor,
                        fakes: torch.Tensor, fake_labels: torch.Tensor, parts: list[slice], *, blend: float,
                        r1_due: bool, sums: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """D's gradients for the logistic loss on `reals` and `fakes` (and R1 when due), added up
    over `parts`; returns D's loss (the mean over the share) and the real and fake scores, all
    detached."""
    d_loss, real_scores, fake_scores = 0.0, [], []
    for part in parts:
        weight = (part.stop - part.start) / len(reals)
        real = reals[part].detach().requires_grad_(r1_due)
        real_score = score(real, real_labels[part], blend)
        fake_score = score(fakes[part], fake_labels[part], blend)
        term = loss.discriminator(real_score, fake_score)
        total = term
        if r1_due:
            r1 = loss.r1(real_score, real)
            total = total + r1
            add_stat(sums, "loss/r1", r1 * weight)
        (total * weight).backward()
        d_loss = d_loss + term.detach() * weight
        real_scores.append(real_score.detach())
        fake_scores.append(fake_score.detach())
    return d_loss, torch.cat(real_scores), torch.cat(fake_scores)


def optimizer_step(name: str, module: torch.nn.Module, optimizer: torch.optim.Optimizer, dist: Distributed,
                   sums: dict) -> bool:
    """The gradients of a phase averaged over processes, then one optimizer step. Non-finite
    gradients are replaced as StyleGAN2-ADA and EG3D do (NaN -> 0, +-inf -> +-1e5), so that one
    bad batch cannot put NaN into the weights. Logs ``grad_norm/<name>`` (after that) and
    ``nonfinite/<name>`` (1 for such a step); returns whether the gradients were finite. The
    averaged gradients are the same in every process, so every process takes the same branch."""
    dist.average_gradients(module)
    norm = grad_norm(module)
    finite = math.isfinite(norm)
    if not finite:
        for p in module.parameters():
            if p.grad is not None:
                torch.nan_to_num(p.grad, nan=0.0, posinf=1e5, neginf=-1e5, out=p.grad)
        norm = grad_norm(module)
    add_stat(sums, f"grad_norm/{name}", norm)
    add_stat(sums, f"nonfinite/{name}", 0.0 if finite else 1.0)
    optimizer.step()
    return finite
