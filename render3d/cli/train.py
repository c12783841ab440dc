"""``render3d train``: train a 3D-aware GAN from a YAML preset plus ``key=value`` overrides."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path

EPILOG = """examples:
  render3d train volumegan/synth64 data.path=outputs/synth64 --out runs/synth64
  render3d train volumegan/synth64 data.path=outputs/synth64 metrics.every=2500 --out runs/s64   # + shape metrics
  render3d train configs/volumegan/ffhq256.yaml data.path=ffhq256.zip batch=32 --out runs/ffhq
  render3d train volumegan/ffhq256 data.path=ffhq256.zip batch=64 batch_gpu=8 --out runs/ffhq   # 8 passes of 8
  render3d train --resume runs/synth64              # continue its newest checkpoint, with the run's own config
  render3d train --resume runs/synth64 lr_g=1e-3 lr_d=1e-3 total_kimg=8000   # the same, with lower rates, longer
  render3d train volumegan/synth64 --out runs/synth64 --resume runs/synth64   # with this config instead
  torchrun --nproc_per_node 8 -m render3d train volumegan/ffhq256 --out runs/ffhq   # DDP, one process per GPU

CONFIG: a YAML file, or a preset name under configs/ (volumegan/synth64, volumegan/ffhq256).
Overrides use dotted keys (generator.feature_dim=32, poses.source=prior); an unknown key fails
with the list of valid keys. The run folder gets config.yaml (the resolved config),
tensorboard/, stats.jsonl, metrics.jsonl (with metrics.every=N: what `render3d eval generator`
measures, every N steps; best/ keeps the generator of the best one, ranked by metrics.best),
images/ (grids and orbit videos) and checkpoints/step-N/ (generator.safetensors is the EMA
generator alone: what render, export-mesh and eval read). batch_gpu=N trains each process's
share of the batch in passes of N images whose gradients add up (less memory, same training).
Ctrl-C writes a checkpoint before exiting. Non-finite gradients are replaced as in StyleGAN2-ADA
(stats.jsonl logs how often as nonfinite/G and nonfinite/D); after 10 such steps in a row, or if
weights become NaN or inf, training stops (exit status 1) without writing a checkpoint and names
the newest good one. --resume without CONFIG continues with the config the checkpoint was
trained with (its state.json), overrides applied on top, into the resumed run's folder; with
CONFIG, that config applies, lr and betas included. Either way, the settings that differ from
the checkpoint's are listed when training starts."""


def add_train(sub) -> None:
    p = sub.add_parser("train", help="train a 3D-aware GAN (VolumeGAN) on posed images",
                       description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", nargs="?", metavar="CONFIG",
                   help="YAML file or preset name (e.g. volumegan/synth64); with --resume it may be left out: "
                        "the checkpoint's own config then applies")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides")
    p.add_argument("--out", type=Path, default=None,
                   help="run folder (created; one that holds checkpoints needs --resume); with --resume, the "
                        "resumed run's folder by default")
    p.add_argument("--resume", type=Path, default=None,
                   help="checkpoint or run folder to continue from (CONFIG's lr and betas apply, if given)")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many steps (with a checkpoint)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar: a line per log row instead (for batch jobs and log files)")
    p.set_defaults(run=run_train)


def preset_path(name: str) -> Path:
    """A config file: `name` itself if it exists, else configs/<name>.yaml of the source tree
    (or of the installed package, which ships them as render3d/_configs)."""
    path = Path(name)
    if path.is_file():
        return path
    package = Path(__file__).resolve().parents[1]
    roots = [r for r in (package.parent / "configs", package / "_configs") if r.is_dir()]
    for root in roots:
        candidate = root / (name if name.endswith(".yaml") else f"{name}.yaml")
        if candidate.is_file():
            return candidate
    presets = sorted({str(p.relative_to(r).with_suffix("")) for r in roots for p in r.rglob("*.yaml")})
    raise ValueError(f"render3d train: CONFIG expected a YAML file or a preset ({', '.join(presets) or 'none found'}), "
                     f"got {name!r}")


def run_train(args) -> int:
    from render3d.training import DataError, SetupError, training_loop
    from render3d.training.distributed import Distributed

    from ._args import UsageError, check_writable_dir, remove_made

    if args.max_steps is not None and args.max_steps <= 0:
        return _refuse(UsageError(f"render3d train: --max-steps expected a positive number, got {args.max_steps}"))
    dist = Distributed.join()                           # under torchrun: first, so that every refusal is said
    # Checked by every process on its own machine, refused by all if one refuses (a config or
    # checkpoint on one machine only), before --out is made where --resume is wrong.
    failure, resumed, made = None, None, []
    try:
        config, checkpoint = _config(args)
        dist = Distributed.setup(config.device)         # this process's device
        if args.resume is not None:                     # named as the option
            resumed = (checkpoint or _resumed_folder(args)).resolve()
        made = check_writable_dir("train", "--out", args.out)
    except (UsageError, ValueError) as error:
        failure = error
    message = dist.first_failure(failure)
    if message is not None:
        dist.close()
        remove_made(made)
        return _refuse(UsageError(message))
    # After an error or a second Ctrl-C the process group is left to the process's exit, on
    # purpose: the others may be inside a collective, and NCCL's destroy_process_group waits
    # for those to finish (pytorch#141510, torch 2.6 on), which they never would; torchrun
    # stops them.
    try:
        last = training_loop(args.out, config, resume=args.resume, max_steps=args.max_steps,
                             progress=not args.no_progress)
    except SetupError as error:                         # before the first step: nothing was written
        remove_made(made)
        return _refuse(f"{error}{_changes_note(resumed, config)}")
    except KeyboardInterrupt:
        return 130
    except FloatingPointError as error:                 # diverged: the message names the newest checkpoint
        print(f"render3d {error}", file=sys.stderr)
        return 1
    except DataError as error:                          # a damaged image: its note names the newest checkpoint
        print("\n".join([f"render3d {error}", *getattr(error, "__notes__", ())]), file=sys.stderr)
        return 1
    if dist.main:                                       # under torchrun, once (the others hold no paths)
        unchanged = last.resolve() == resumed           # already where the run ends
        print(f"render3d train: {'nothing written; the checkpoint is' if unchanged else 'wrote'} {last.resolve()}")
        print(f"  generator {(last / 'generator.safetensors').resolve()}")
    return 0


def _resumed_folder(args) -> Path:
    """The checkpoint folder `--resume` names (a run folder's newest checkpoint)."""
    from render3d.training.checkpoint import resolve_checkpoint_folder

    return resolve_checkpoint_folder(args.resume, argument="--resume")


def _config(args):
    """(the TrainConfig to train, the resumed checkpoint folder when it was needed to find it).
    CONFIG and the overrides, or without CONFIG the --resume checkpoint's own config with the
    overrides on top; `args.out` defaults to the resumed run's folder. A first word with "="
    that is not a file is an override: CONFIG was left out."""
    from render3d.config import apply_overrides
    from render3d.training import load_config, resolve_config
    from render3d.training.checkpoint import DamagedCheckpoint, checkpoint_config

    from ._args import UsageError

    overrides = list(args.overrides)
    name = args.config
    if name is not None and "=" in name and not Path(name).is_file():
        name, overrides = None, [name, *overrides]
    if name is None and args.resume is None:
        raise UsageError("render3d train: CONFIG expected a YAML file or a preset (e.g. volumegan/synth64), got none; "
                         "only --resume, which continues with the checkpoint's own config, goes without one")
    if name is not None and args.resume is None and Path(name).is_dir():   # `render3d train RUN`
        from render3d.training.checkpoint import resolve_checkpoint_folder

        with contextlib.suppress(ValueError):
            what = "a checkpoint" if resolve_checkpoint_folder(name) == Path(name) else "a run folder with checkpoints"
            raise UsageError(f"render3d train: CONFIG expected a YAML file or a preset (e.g. volumegan/synth64), got "
                             f"{name!r}, {what}: to continue training it, pass --resume {name}")
    checkpoint = None
    if name is None or args.out is None:
        checkpoint = _resumed_folder(args) if args.resume is not None else None
    if args.out is None:
        if checkpoint is None:
            raise UsageError("render3d train: --out expected the run folder to train into, got none (only --resume "
                             "has a default: the resumed run's folder)")
        if checkpoint.parent.name != "checkpoints":
            raise UsageError(f"render3d train: --out expected the run folder to train into, got none, and --resume "
                             f"{args.resume} is not in a run's checkpoints/ folder to take it from: pass --out")
        args.out = checkpoint.parent.parent
    if name is not None:
        return load_config(preset_path(name), overrides), checkpoint
    try:
        saved = checkpoint_config(checkpoint)
    except DamagedCheckpoint as error:
        raise UsageError(f"render3d train: --resume: {error}; without CONFIG the config comes from it: pass the "
                         f"config to train with as CONFIG (the run's config.yaml), or resume an earlier "
                         f"checkpoint") from None
    return resolve_config(apply_overrides(saved, overrides)), checkpoint


def _changes_note(folder: Path | None, config) -> str:
    """For a refusal of a resumed run: the settings `config` changes from checkpoint
    `folder`'s, often the reason ("" when none, or when its state.json cannot be read)."""
    from render3d.training import config_dict
    from render3d.training.checkpoint import DamagedCheckpoint, checkpoint_config
    from render3d.training.config import changes_said, config_changes

    if folder is None:
        return ""
    try:
        changes = config_changes(checkpoint_config(folder), config_dict(config))
    except DamagedCheckpoint:
        return ""
    return f" (resumed with settings changed from the config it was trained with: {changes_said(changes)})" \
        if changes else ""


def _refuse(error: Exception | str) -> int:
    """Exit status 2 with the error's message as ``render3d train: ...`` on stderr, said once
    under torchrun: the processes agree on a refusal (`Distributed.first_failure`), process 0
    reports it."""
    from ._args import UsageError, report

    message = str(error)
    if not message.startswith("render3d"):
        message = f"render3d {message}" if message.startswith("train:") else f"render3d train: {message}"
    if os.environ.get("RANK", "0") != "0":
        return 2
    return report(UsageError(message))
