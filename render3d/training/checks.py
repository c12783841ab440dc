"""What the training loop checks, and the errors it raises for what fails: its inputs before the
first step (`check_fit`, `check_precision`, `check_run_folder`, `refused_together`;
`precision_note` only warns), an image when its batch comes, and the weights before each
checkpoint (`nonfinite_tensors`)."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import torch

from render3d._checks import said_choices
from render3d.datasets import EG3DDataset
from render3d.datasets.eg3d import LABEL_LENGTH

from .checkpoint import checkpoint_dirs, checkpoint_step, latest_checkpoint
from .distributed import Distributed


class SetupError(ValueError):
    """`training_loop`'s inputs cannot be trained on (the dataset, the config's networks, the
    checkpoint to resume, the process count); raised before the first step, nothing written."""


class DataError(ValueError):
    """An image of the dataset cannot be trained on (damaged, truncated, or of another size),
    found when its batch is loaded; it carries a note naming the newest checkpoint."""


@contextlib.contextmanager
def refused_together(dist: Distributed):
    """Setup checks that each process makes on its own, with one verdict for all: a SetupError
    in any process is raised in every process, with the message of the lowest-ranked one that
    refused (which process, on which machine, when it is not process 0). Without it, under
    torchrun, the processes that passed would wait for the one that refused in their first
    collective operation until the timeout. The block must not use collective operations."""
    refusal = None
    try:
        yield
    except SetupError as error:
        refusal = error
    message = dist.first_failure(refusal)
    if message is not None:
        dist.close()
        raise SetupError(message) from None


def check_run_folder(run_dir: Path, resumed: Path | None) -> None:
    """SetupError when the checkpoints already in `run_dir` would be lost or mixed up: a fresh
    run (`resumed` None) would overwrite and rotate them out, and so would a run resumed from
    another run's checkpoint; new checkpoints of a run resumed from an earlier one than its
    newest would interleave with the later ones."""
    if resumed is None:
        existing = latest_checkpoint(run_dir)
        if existing is not None:
            raise SetupError(f"train: the run folder {run_dir} already holds checkpoints (newest: {existing.name}): "
                             f"continue that run with --resume {run_dir}, or train into another folder")
        return
    foreign = latest_checkpoint(run_dir) if resumed.resolve().parent.parent != run_dir.resolve() else None
    if foreign is not None:
        raise SetupError(f"train: the run folder {run_dir} holds checkpoints of another run (newest: "
                         f"{foreign.name}) than the one resumed ({resumed}): resume into that run's folder "
                         f"(--out {resumed.parent.parent}) or into a folder without checkpoints")
    later = [p.name for p in checkpoint_dirs(run_dir) if checkpoint_step(p) > checkpoint_step(resumed)]
    if later:
        raise SetupError(f"train: the run folder {run_dir} holds checkpoints past the one resumed "
                         f"({resumed.name}): {', '.join(later)}; move them out of {run_dir / 'checkpoints'} "
                         f"or resume into another folder")


def original_message(error: Exception) -> str:
    """The message of an error raised in a DataLoader worker, without the traceback that the
    main process's copy carries: its last line, less the type."""
    last = (str(error).strip().splitlines() or [""])[-1]
    return re.sub(r"^\w+(Error|Exception): ", "", last)


def earlier_checkpoints(folder: Path) -> str:
    """What to resume from instead of the damaged checkpoint `folder`: its run's earlier ones."""
    earlier = [p.name for p in checkpoint_dirs(folder.parent.parent) if p.name < folder.name] \
        if folder.parent.name == "checkpoints" else []
    if not earlier:
        return "No earlier checkpoint of this run remains"
    return (f"Earlier checkpoints of this run: {', '.join(earlier)}; move {folder.name} out of {folder.parent} "
            f"and resume again to continue from {earlier[-1]}")


def check_precision(precision: str, device: torch.device) -> None:
    """SetupError when `device` cannot run `precision` (config.precision): bf16 on a CUDA GPU
    without bf16 arithmetic (compute capability below 8.0), which torch would emulate slowly."""
    if precision == "bfloat16" and device.type == "cuda" and not torch.cuda.is_bf16_supported(
            including_emulation=False):
        capability = ".".join(map(str, torch.cuda.get_device_capability(device)))
        raise SetupError(f"train: config.precision 'bfloat16' expected a GPU with bf16 arithmetic (compute "
                         f"capability 8.0 or newer), got {torch.cuda.get_device_name(device)} ({capability}): "
                         f"use precision=float32")


def precision_note(precision: str, device: torch.device) -> str | None:
    """A line for the run's header when `precision` may be slower than float32 on `device`: bf16
    on a CPU without bf16 instructions (AVX-512 BF16 or AMX), where oneDNN emulates them. (Timed
    only on a CPU with AVX-512 BF16, where bf16 trains 1.37x as fast: README, "Lower precision".)"""
    if precision != "bfloat16" or device.type != "cpu":
        return None
    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    if any(probe is None for probe in probes) or any(probe() for probe in probes):
        return None                                     # (a torch without the probes: nothing said)
    return ("train: this CPU has no bf16 instructions (AVX-512 BF16 or AMX), so bf16 autocast is emulated here and "
            "may train slower than float32: `python bench/train.py --bf16-sizes 64` times both")


def check_fit(dataset: EG3DDataset, G: torch.nn.Module, D: torch.nn.Module, start_resolution: int) -> None:
    """The images, G's output and D's input must agree: reals larger than G's output are
    box-filtered down to it, smaller ones would be up-sampled, so they are refused. Progressive
    growing starts at one of G's resolutions; camera conditioning takes the whole label."""
    for role, net in (("generator", G), ("discriminator", D)):
        c_dim = net.config.c_dim
        if c_dim not in (0, LABEL_LENGTH):
            raise SetupError(f"train: {role}.c_dim expected 0 (no camera conditioning) or {LABEL_LENGTH} (the "
                             f"camera labels' length, as EG3D), got {c_dim}")
    size = G.resolutions[-1]
    if 0 < start_resolution < size and start_resolution not in G.resolutions:
        raise SetupError(f"train: progressive.start_resolution expected 0 or one of {said_choices(G.resolutions)} "
                         f"(the generator's resolutions), got {start_resolution}")
    if D.resolutions[0] != size:
        raise SetupError(f"train: discriminator.resolution expected the generator's output size {size}, "
                         f"got {D.resolutions[0]}")
    width, height, where = dataset.width, dataset.height, dataset.storage.path
    if width != height:
        raise SetupError(f"train: data.path expected square images, got {width} x {height} in {where}")
    if width < size:
        raise SetupError(f"train: data.path expected images of at least the generator's {size} px (smaller ones "
                         f"would be up-sampled), got {width} x {height} in {where}: train at their size "
                         f"(generator.resolution={width} discriminator.resolution={width}) or use a larger dataset")


def nonfinite_tensors(modules: dict[str, torch.nn.Module]) -> list[str]:
    """Names (``<module>.<tensor>``) of the floating-point weights and buffers holding NaN or inf."""
    return [f"{prefix}.{name}" for prefix, module in modules.items()
            for name, tensor in module.state_dict().items()
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())]
