"""The GAN training loop: one function, `training_loop`.

Per step, over a global batch of `config.batch` images split between processes, each share
in passes of `config.batch_gpu` images whose gradients add up (`step.py`):

1. generator phase: z (with style mixing) and cameras -> G -> D -> non-saturating loss, plus
   the lazy path-length term when due; gradients averaged over processes; Adam step. A
   camera-conditioned G's mapping sees the cameras' labels, some swapped between samples
   (EG3D's pose conditioning regularization, `loss.gpc_swap`);
2. discriminator phase: D on the same fakes (detached) and on real images (x-flipped copies
   with mirrored cameras when enabled, resized and faded to the current progressive
   resolution) -> logistic loss, plus lazy R1 when due; Adam step;
3. the EMA generator follows G with a half-life of `ema_kimg` thousand images.

Randomness that decides *what* is trained on (data order, z, style mixing, cameras, label
swaps) is drawn for the whole global batch from one seeded generator shared by all
processes, each process taking its slice; randomness inside the models (render jitter,
noise) comes from each process's own torch RNG. Both are saved in checkpoints, so
`--resume` continues bit-exactly.
"""

from __future__ import annotations

import copy
import random
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch

from render3d._checks import restate
from render3d.datasets import EG3DDataset
from render3d.registry import DISCRIMINATORS, GENERATORS, LOSSES

from .checks import (DataError, SetupError, check_fit, check_precision, check_run_folder, earlier_checkpoints,
                     nonfinite_tensors, original_message, precision_note, refused_together)
from .checkpoint import (STATE_FILE, DamagedCheckpoint, generator_metadata, load_checkpoint, resolve_checkpoint_folder,
                         save_checkpoint)
from .config import TrainConfig, changes_said, config_changes, config_dict
from .data import (GlobalBatchSampler, PoseSampler, conditioning_labels, gpc_swap_probability, progressive_said,
                   progressive_stage, resize_reals)
from .distributed import Distributed, cuda_math
from .evaluation import RunMetrics
from .logs import RunLog, add_stat, bar_summary, log_line, progress_bar, reduce_stats, say
from .step import Drawn, discriminator_phase, generator_phase, optimizer_step, passes

NONFINITE_PATIENCE = 10            # steps in a row with NaN/inf gradients that stop training as diverged


def training_loop(run_dir: str | Path, config: TrainConfig, *, resume: str | Path | None = None,
                  max_steps: int | None = None, progress: bool = True) -> Path:
    """Train `config` into `run_dir`; returns the last checkpoint folder (the resumed one,
    untouched, when it is already where the run ends).

    resume: a checkpoint folder or a run folder (its newest checkpoint) to continue from;
    weights, Adam moments, counters and RNG states come from it, everything else (lr and
    betas included) from `config`.
    max_steps: stop (with a checkpoint) after this many steps in total, before total_kimg.
    Ctrl-C finishes the current step, writes a checkpoint (so resuming from it is bit-exact)
    and raises KeyboardInterrupt; a second Ctrl-C stops at once, still writing a checkpoint.
    Non-finite gradients are replaced and counted (`step.optimizer_step`); NONFINITE_PATIENCE
    such steps in a row, or non-finite weights at a checkpoint, raise FloatingPointError
    naming the newest checkpoint; a step with non-finite gradients writes no periodic checkpoint.
    Inputs that cannot be trained on raise SetupError before the first step (`check_fit`,
    `resolve_checkpoint_folder`, `RunMetrics`, and the dataset's and checkpoint's own checks), and so does a `run_dir`
    that holds checkpoints when `resume` is None, or checkpoints of another run or past the resumed
    one. Under torchrun a process that refuses makes them all refuse (`refused_together`).
    An image that cannot be loaded when its batch comes raises DataError. Any error inside a
    step carries a note naming the step and the newest checkpoint.
    """
    dist = Distributed.setup(config.device)
    with cuda_math(dist.device, cudnn_benchmark=config.cudnn_benchmark, tf32=config.tf32):
        return _train(Path(run_dir), config, dist, resume, max_steps, progress)


def _train(run_dir: Path, config: TrainConfig, dist: Distributed, resume, max_steps, progress) -> Path:
    device = dist.device
    bf16 = config.precision == "bfloat16"
    torch.manual_seed(config.seed + dist.rank)       # in-model randomness, per process
    np.random.seed(config.seed)
    random.seed(config.seed)
    latents = torch.Generator().manual_seed(config.seed)  # what is trained on, same in every process
    local = config.batch // dist.world
    parts = passes(local, config.batch_gpu)        # this process's passes over its share (checked below)
    step, nimg, seconds = 0, 0, 0.0
    resumed, changed = None, []     # the checkpoint resumed, and the settings this config changes from its
    # Every check below is local to the process, with no collective operation: under torchrun one
    # process's refusal becomes every process's (`refused_together`) instead of leaving the others
    # waiting in the first broadcast, as when a dataset or checkpoint is missing on one machine.
    with refused_together(dist):
        if local * dist.world != config.batch:
            raise SetupError(f"train: config.batch expected a multiple of the {dist.world} processes, "
                             f"got {config.batch}")
        if config.batch_gpu is not None and local % config.batch_gpu:
            raise SetupError(f"train: config.batch_gpu expected a divisor of each process's {local} images "
                             f"(config.batch {config.batch} over {dist.world} process{'es' if dist.world > 1 else ''})"
                             f", got {config.batch_gpu}")

        folder = None                                   # the checkpoint to resume
        if resume is not None:
            try:
                folder = resolve_checkpoint_folder(resume)
            except ValueError as error:
                raise SetupError(str(error)) from None
        check_run_folder(run_dir, folder)
        if not config.data.path or not Path(config.data.path).exists():   # absolute (DataConfig makes it so)
            got = f"{config.data.path!r} (nothing there)" if config.data.path else "none"
            raise SetupError(f"train: data.path expected an EG3D dataset (a folder or zip with dataset.json), got "
                             f"{got}: pass data.path=PATH, or write a synthetic one with `render3d dataset synth "
                             f"{config.data.path or 'DATA'}`")
        try:
            dataset = EG3DDataset(config.data.path, xflip=config.data.xflip)
        except ValueError as error:
            said = restate(error, {"path": "data.path"})
            raise SetupError(f"train: {said}" if said != str(error) else f"train: data.path: {said}") from None
        poses = PoseSampler(config.poses, dataset)
        run_metrics = (RunMetrics(config.metrics, config.data.path, dataset, dist, device)
                       if config.metrics.every else None)
        try:                                            # settings that only the components themselves check
            G = GENERATORS.build(config.generator_type, config.generator).to(device).train()
            D = DISCRIMINATORS.build(config.discriminator_type, config.discriminator).to(device).train()
            loss = LOSSES.build(config.loss_type, config.loss).to(device)
            if hasattr(D, "check_batch"):               # e.g. minibatch-stddev groups
                D.check_batch(config.batch_gpu or local)
        except ValueError as error:
            raise SetupError(f"train: {error}") from None
        check_fit(dataset, G, D, config.progressive.start_resolution)
        check_precision(config.precision, device)
        G_ema = copy.deepcopy(G).eval().requires_grad_(False)
        optimizers = {}
        for name, net, lr in (("G", G, config.lr_g), ("D", D, config.lr_d)):
            factor = loss.lazy_factor(name)                 # StyleGAN2's lazy-regularization correction
            betas = tuple(b ** factor for b in config.betas)
            optimizers[name] = torch.optim.Adam(net.parameters(), lr=lr * factor, betas=betas, eps=1e-8)
        modules = {"G": G, "D": D, "G_ema": G_ema, "loss": loss}

        if folder is not None:
            configured = {name: [{k: group[k] for k in ("lr", "betas")} for group in opt.param_groups]
                          for name, opt in optimizers.items()}
            try:
                state, rng = load_checkpoint(folder, modules=modules, optimizers=optimizers)
            except DamagedCheckpoint as error:
                raise SetupError(f"train: resume: {error}. {earlier_checkpoints(folder)}") from None
            except (RuntimeError, ValueError, KeyError) as error:   # another architecture or optimizer layout
                detail = str(error).strip().splitlines()
                raise SetupError(f"train: resume: the checkpoint {folder} does not fit this config's networks "
                                 f"(resume with the config it was trained with, which {folder / STATE_FILE} holds: "
                                 f"`render3d train --resume` without CONFIG does): "
                                 f"{' '.join(line.strip() for line in detail[:3])}") from None
            resumed = folder
            for name, opt in optimizers.items():           # Adam's moments from the checkpoint, lr and betas
                for group, values in zip(opt.param_groups, configured[name]):
                    group.update(values)
            step, nimg, seconds = state["step"], state["nimg"], state["seconds"]
            changed = config_changes(state.get("config") or {}, config_dict(config))
            latents.set_state(rng["torch"]["latents"])
            if not dist.restore_rng(rng["torch"]["processes"]):
                torch.manual_seed(config.seed + dist.rank + 1_000_003 * step)
                print(f"train: resumed with {dist.world} processes from a checkpoint of "
                      f"{len(rng['torch']['processes']['cpu'])}: in-model randomness reseeded, not bit-exact",
                      file=sys.stderr)
            np.random.set_state(rng["numpy"])
            random.setstate(rng["python"])

    total = int(config.total_kimg * 1000)
    if resumed is not None and (nimg >= total or (max_steps is not None and step >= max_steps)):
        if dist.main:                                   # nothing is written: the checkpoint stays as it is
            if max_steps is not None and step >= max_steps:
                end, more = f"--max-steps {max_steps}", "a larger --max-steps"
            else:
                end, more = f"total_kimg={config.total_kimg:g}", "a larger total_kimg (an override: total_kimg=N)"
            print(f"train: nothing to train: {resumed} is at step {step} ({nimg / 1000:g} kimg), where the run ends "
                  f"({end}); pass {more} to train on", file=sys.stderr)
        dist.close()
        return resumed
    for module in (G, D, G_ema):                       # one starting point, rank 0's (the same on resume)
        dist.broadcast_module(module)

    sampler = GlobalBatchSampler(len(dataset), config.batch, seed=config.seed, rank=dist.rank, world=dist.world,
                                 start_step=step)
    # The loader gets its own generator: creating its iterator must not draw from the global RNG.
    loader = iter(torch.utils.data.DataLoader(dataset, batch_size=local, sampler=sampler,
                                              num_workers=config.data.workers, drop_last=True,
                                              generator=torch.Generator().manual_seed(config.seed)))
    view = poses.view_defaults()
    meta = generator_metadata(config.generator_type, config.generator, {"view": view})
    writer = RunLog(run_dir, config, step, nimg, seconds, resumed=resumed is not None) if dist.main else None
    z_dim, c_g = G.z_dim, G.config.c_dim
    mix_lo, mix_hi = G.style_mixing_range
    if dist.main:
        where = f"from step {step} ({nimg / 1000:g} kimg) " if step else ""
        processes = f"{dist.world} {device.type.upper()} process{'es' if dist.world > 1 else ''}"
        processes += f" in passes of {config.batch_gpu}" if len(parts) > 1 else ""
        processes += " (bf16 autocast)" if bf16 else ""
        processes += " (TF32 allowed)" if config.tf32 and device.type == "cuda" else ""
        print(f"train: {config.generator_type} at {G.resolutions[-1]} px, batch {config.batch} on {processes}, "
              f"{where}to {config.total_kimg:g} kimg, into {run_dir}", file=sys.stderr)
        if (note := precision_note(config.precision, device)) is not None:
            print(note, file=sys.stderr)
        if resumed is not None and changed:             # on purpose (a lower lr) or not (a forgotten override)
            print(f"train: {len(changed)} setting{'s' if len(changed) > 1 else ''} changed from the config "
                  f"{resumed.name} was trained with: {changes_said(changed)}", file=sys.stderr)
        flips = f" ({len(dataset):,} with x-flips)" if dataset.xflip else ""
        cameras = "its labels" if config.poses.source == "dataset" else "the yaw/pitch prior (poses.*)"
        filtered = f", box-filtered to {G.resolutions[-1]} px" if dataset.width != G.resolutions[-1] else ""
        images = f"{len(dataset.names):,} image{'s' if len(dataset.names) > 1 else ''}"
        print(f"train: data: {images}{flips} of {dataset.width} px in {dataset.storage.path}"
              f"{filtered}; cameras from {cameras}", file=sys.stderr)
        growing = progressive_said(G.resolutions, config.progressive.start_resolution,
                                   config.progressive.stage_kimg, config.progressive.fade_kimg)
        if growing:
            print(f"train: {growing}", file=sys.stderr)
        if run_metrics:
            print(run_metrics.said(), file=sys.stderr)
        if writer.tensorboard:
            print(f"train: watch it with `tensorboard --logdir {run_dir / 'tensorboard'}`", file=sys.stderr)
    part = slice(dist.rank * local, (dist.rank + 1) * local)

    def low_precision() -> torch.autocast:
        """bf16 autocast for a forward pass when config.precision asks for it (a no-op else)."""
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)

    def score(images: torch.Tensor, labels: torch.Tensor, blend: float) -> torch.Tensor:
        """D's scores as float32, whatever precision D ran in."""
        with low_precision():
            return D(images, labels, blend=blend).float()

    sums: dict[str, float] = {}
    interrupted, saved = False, None

    def check_finite(instead: str) -> None:
        broken = nonfinite_tensors(modules)
        if broken:
            more = f" and {len(broken) - 3} more" if len(broken) > 3 else ""
            raise FloatingPointError(f"train: at step {step} weights are not finite (NaN or inf): "
                                     f"{', '.join(broken[:3])}{more}; {instead}. {resume_hint()}")

    def trained() -> dict:
        """How far training is: the "training" entry of a generator file's metadata."""
        return {"step": step, "nimg": nimg, "seconds": seconds, "world": dist.world}

    def checkpoint() -> Path:
        nonlocal saved
        check_finite("no checkpoint written")           # never rotate good checkpoints out for this
        rng = {"torch": {"latents": latents.get_state(),
                         "processes": dist.gather_rng(local=interrupted)},
               "numpy": np.random.get_state(), "python": random.getstate()}
        if not dist.main:
            return run_dir
        if saved is not None and saved.name == f"step-{step:07d}":
            return saved                                # already written at this step
        training = trained()
        saved = save_checkpoint(run_dir, step, modules=modules, optimizers=optimizers, rng=rng,
                                state={**training, "config": config_dict(config)},
                                generator_meta={**meta, "training": training}, keep=config.keep_checkpoints)
        return saved

    def resume_hint(diverged: bool = True) -> str:
        good = saved or resumed
        if good is None:
            return "No checkpoint was written" + (": lower lr_g/lr_d or raise loss.r1_gamma." if diverged else ".")
        how = "with a lower lr_g/lr_d or a higher loss.r1_gamma" if diverged else f"(--resume {good})"
        return f"The newest checkpoint is {good}: resume from it {how}."

    def note_failure(error: Exception) -> None:
        if not isinstance(error, FloatingPointError):  # those name the checkpoint already
            error.add_note(f"train: failed after step {step}. {resume_hint(diverged=False)}")

    streaks = {"G": 0, "D": 0}                          # steps in a row with non-finite gradients
    warned: set[str] = set()

    def count_nonfinite(name: str, finite: bool) -> None:
        streaks[name] = 0 if finite else streaks[name] + 1
        if streaks[name] >= NONFINITE_PATIENCE:
            raise FloatingPointError(
                f"train: {name}'s gradients were not finite (NaN or inf) in every step from "
                f"{step + 2 - streaks[name]} to {step + 1}: training has diverged. {resume_hint()}")
        if streaks[name] == 1 and dist.main and name not in warned:   # once per network; stats.jsonl counts all
            warned.add(name)
            say(f"train: step {step + 1}: non-finite {name} gradients (NaN or inf) were replaced "
                f"(NaN -> 0, inf -> 1e5) as in StyleGAN2-ADA; stats.jsonl logs the share of such steps "
                f"as nonfinite/{name}")

    def log() -> None:
        """A stats row (TensorBoard, stats.jsonl, the bar) for the steps since the last one:
        every log_every steps, and for the last steps of a run or a stop (every process calls it
        then, as the means are taken over processes)."""
        nonlocal sums
        if not sums:
            return
        stats = reduce_stats(dist, sums, device)
        sums = {}
        bar.set_postfix_str(bar_summary(step, stats, resolution))
        if writer:
            logged = writer.scalars(step, nimg, seconds, stats, resolution, blend, device)
            if not progress:                            # no bar to show it: a line (batch jobs, log files)
                say(log_line(step, nimg, logged, resolution))

    def grow() -> tuple[int, float]:
        """The progressive-growing stage at nimg, also the EMA generator's: grids, videos and
        metrics show what is being trained, not the blocks above it (VolumeGAN.set_stage)."""
        stage = progressive_stage(nimg, G.resolutions, config.progressive.start_resolution,
                                  config.progressive.stage_kimg, config.progressive.fade_kimg)
        if hasattr(G_ema, "set_stage"):
            G_ema.set_stage(*stage)
        return stage

    def measure() -> None:
        """config.metrics of the EMA generator at this step (once per step; every process)."""
        if run_metrics and run_metrics.step != step:
            check_finite("no metrics measured")         # the diverged run said as such, not NaN meshes
            measured = run_metrics.measure(G_ema, view, step, progress=progress and dist.main)
            if writer:
                writer.metrics(step, nimg, *measured)
                writer.keep_best(G_ema, step, measured[0], run_metrics.best, {**meta, "training": trained()})

    bar = progress_bar(progress and dist.main, total, nimg)
    stop = _StopRequest()
    try:
        grow()
        if resumed is None:                             # the starting point, to compare with
            measure()
        while nimg < total and (max_steps is None or step < max_steps):
            started = time.perf_counter()
            resolution, blend = grow()
            try:
                real = next(loader)
            except (ValueError, OSError) as error:      # DataLoader's workers re-raise their error's type
                raise DataError(f"train: data.path: {original_message(error)}; `render3d dataset check "
                                f"{config.data.path}` finds every such image") from None
            real_images = resize_reals(real["image"].to(device), resolution, blend)
            real_labels = real["label"].to(device)
            # What the generator is trained on: drawn for the global batch, sliced per process.
            z = torch.randn(config.batch, z_dim, generator=latents)[part].to(device)
            z_mix = torch.randn(config.batch, z_dim, generator=latents)[part].to(device)
            mixing = (torch.rand(config.batch, generator=latents) < loss.config.style_mixing)[part].to(device)
            cutoff = torch.randint(mix_lo, mix_hi, (config.batch,), generator=latents)[part].to(device)
            cameras, gen_labels = poses.sample(config.batch, latents)
            c = None
            if c_g > 0:
                swap = gpc_swap_probability(nimg, loss.config.gpc_swap, loss.config.gpc_fade_kimg)
                c = conditioning_labels(gen_labels, swap, latents)[part].to(device)
            cameras, gen_labels = cameras[part].to(device), gen_labels[part].to(device)

            # Generator phase, then discriminator phase, each in passes of batch_gpu images.
            G.requires_grad_(True)
            D.requires_grad_(False)
            optimizers["G"].zero_grad(set_to_none=True)
            drawn = Drawn(z, z_mix, mixing, cutoff, c, cameras, gen_labels)
            g_loss, fake = generator_phase(G, loss, score, drawn, parts, resolution=resolution, blend=blend,
                                           pl_due=loss.pl_due(step), low_precision=low_precision, dist=dist,
                                           sums=sums)
            count_nonfinite("G", optimizer_step("G", G, optimizers["G"], dist, sums))
            dist.average_buffers(G)                     # w_avg of the global batch

            G.requires_grad_(False)
            D.requires_grad_(True)
            optimizers["D"].zero_grad(set_to_none=True)
            d_loss, real_scores, fake_scores = discriminator_phase(
                loss, score, real_images, real_labels, fake, gen_labels, parts, blend=blend,
                r1_due=loss.r1_due(step), sums=sums)
            count_nonfinite("D", optimizer_step("D", D, optimizers["D"], dist, sums))

            # EMA of the generator (half-life in images, optionally ramped up).
            ema_nimg = config.ema_kimg * 1000
            if config.ema_rampup is not None:
                ema_nimg = min(ema_nimg, (nimg + config.batch) * config.ema_rampup)
            beta = 0.5 ** (config.batch / max(ema_nimg, 1e-8))
            with torch.no_grad():
                for p_ema, p in zip(G_ema.parameters(), G.parameters()):
                    p_ema.copy_(p.lerp(p_ema, beta))
                for b_ema, b in zip(G_ema.buffers(), G.buffers()):
                    b_ema.copy_(b)

            step += 1
            nimg += config.batch
            seconds += time.perf_counter() - started
            for key, value in (("loss/G", g_loss), ("loss/D", d_loss), ("scores/real", real_scores.mean()),
                               ("scores/fake", fake_scores.mean())):
                add_stat(sums, key, value)
            sums["_count"] = sums.get("_count", 0) + 1
            bar.update(config.batch)
            if step % config.log_every == 0:
                log()
            if writer and config.image_every and step % config.image_every == 0:
                writer.images(G_ema, step, view)
            if writer and config.video_every and step % config.video_every == 0:
                writer.video(G_ema, step, view)
            if config.metrics.every and step % config.metrics.every == 0:
                measure()
            if step % config.checkpoint_every == 0:
                if any(streaks.values()):               # keep the older checkpoints from before a divergence
                    if dist.main:
                        say(f"train: step {step}: checkpoint skipped, this step's gradients were not finite")
                else:
                    checkpoint()
            if dist.any(stop.requested):               # every process stops after the same step
                log()
                written = checkpoint()
                if dist.main:
                    say(f"train: stopped after step {step}; wrote {written}")
                dist.finish()                           # all in step: leave the process group as at the end
                raise KeyboardInterrupt
        log()                                           # the steps since the last row, if any, on the bar too
    except KeyboardInterrupt:
        if not stop.requested or saved is None or saved.name != f"step-{step:07d}":
            interrupted = True                          # mid-step: this process's state only
            if dist.main:
                say(f"train: interrupted in step {step + 1}; wrote {checkpoint()}")
        if writer:
            writer.close(failing=True)                  # TensorBoard's buffered scalars too; a stop stays a stop
        raise
    except Exception as error:
        note_failure(error)
        if writer:
            writer.close(failing=True)
        raise
    finally:
        stop.close()
        bar.close()
    try:
        last = checkpoint()
        measure()                                       # every process
        if writer:
            writer.images(G_ema, step, view)
            writer.video(G_ema, step, view)
            writer.close()
    except Exception as error:                          # a full disk at the end, say
        note_failure(error)
        raise
    finally:
        if writer:
            writer.close(failing=True)                  # after an error or a Ctrl-C; a second close does nothing
    dist.finish()
    return last


class _StopRequest:
    """While training, the first Ctrl-C (SIGINT) only asks to stop after the current step; a
    second one raises KeyboardInterrupt at once. Off the main thread signals stay as they are."""

    def __init__(self) -> None:
        self.requested = False
        self.previous = None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        # print, not say: a signal handler runs between any two lines, tqdm's own drawing included
        print("\ntrain: stopping after this step (Ctrl-C again to stop at once)", file=sys.stderr)

    def close(self) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
            self.previous = None
