"""Checks of command-line arguments, run before any work: a bad value is reported as
``render3d <command>: --<option> ...`` on stderr with exit status 2."""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import re
import sys
from pathlib import Path

from render3d._files import exists, file_in_the_way


class UsageError(Exception):
    """A bad command-line argument; the message is printed as it is."""


def finite_float(text: str) -> float:
    """An argparse type: a finite number (``float`` alone takes 'nan' and 'inf')."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def report(error: Exception) -> int:
    print(error, file=sys.stderr)
    return 2


def restated(command: str, error: Exception, names: dict[str, str]) -> UsageError:
    """A library's ValueError as this command's one-line message: the arguments that `names`
    maps are called by the options that set them (`render3d._checks.restate`), others keep
    the library's words."""
    from render3d._checks import restate

    return UsageError(f"render3d {command}: {restate(error, names)}")


@contextlib.contextmanager
def said_as(command: str, names: dict[str, str]):
    """Inside it, a ValueError becomes `restated`'s UsageError."""
    try:
        yield
    except ValueError as error:
        raise restated(command, error, names) from None


def split_scene_options(command: str, args, scene: dict, generator: dict) -> None:
    """--scene or --checkpoint chooses what is used; options that only the other one takes are
    refused (rather than ignored), then the chosen one's defaults filled in. `scene` and
    `generator` map option names (argparse dests whose default is None) to their defaults."""
    with_checkpoint = args.checkpoint is not None
    if with_checkpoint and args.scene is not None:
        raise UsageError(f"render3d {command}: --scene and --checkpoint expected one of them, got both")
    chosen, other = (generator, scene) if with_checkpoint else (scene, generator)
    given = [f"--{name.replace('_', '-')}" for name in other if getattr(args, name) is not None]
    if given:
        verb = "applies" if len(given) == 1 else "apply"
        where = "to scenes only, not to --checkpoint" if with_checkpoint else "to --checkpoint only, not to scenes"
        raise UsageError(f"render3d {command}: {', '.join(given)} {verb} {where}")
    if not with_checkpoint and args.scene is None:
        args.scene = "demo"
    for name, default in chosen.items():
        if getattr(args, name) is None:
            setattr(args, name, default)


def check_positive(command: str, args, names) -> None:
    """Each ``args.<name>`` that is set must be > 0 (option ``--name`` with dashes)."""
    for name in names:
        value = getattr(args, name)
        if value is not None and value <= 0:
            raise UsageError(f"render3d {command}: --{name.replace('_', '-')} expected a positive number, got {value}")


def check_at_least(command: str, args, minimums: dict[str, int]) -> None:
    """Each ``args.<name>`` that is set must be >= its minimum (option ``--name`` with dashes)."""
    for name, low in minimums.items():
        value = getattr(args, name)
        if value is not None and value < low:
            raise UsageError(f"render3d {command}: --{name.replace('_', '-')} expected an integer >= {low}, "
                             f"got {value}")


def check_fps(command: str, fps: int, video_format: str) -> None:
    """--fps within what a video of `video_format` (mp4, gif) holds."""
    from render3d.visualize import check_fps as check

    try:
        check(f"render3d {command}", "fps", fps, video_format)
    except ValueError as error:
        raise UsageError(str(error).replace(" argument 'fps' ", " --fps ")) from None


def check_writable_dir(command: str, option: str, folder: Path) -> list[Path]:
    """Create `folder` and check that files can be written there. Returns the folders it made
    (`folder` and missing parents, deepest first), for `remove_made` when the command refuses
    after all; when the check fails it removes them itself. The probe file is this process's
    own: the processes of one `torchrun` check the same folder at once."""
    made = [path for path in (folder, *folder.parents) if not exists(path)]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        remove_made(made)
        blocking = file_in_the_way(folder)
        why = f"{blocking} is a file, not a folder" if blocking else exc.strerror
        raise UsageError(f"render3d {command}: cannot write to {option} {folder}: {why}") from None
    return made


def remove_made(folders: list[Path]) -> None:
    """Remove the folders `check_writable_dir` made, deepest first, where they are still empty
    (one written to meanwhile stays; torchrun's processes race here, and whoever comes first
    removes a folder)."""
    for folder in folders:
        with contextlib.suppress(OSError):
            folder.rmdir()


MAX_SEEDS = 1024   # subjects in one call: each is a row of a grid and a tile of every video frame


def parse_seeds(command: str, text: str) -> list[int]:
    """``"0-3"`` -> [0, 1, 2, 3]; ``"1,5,7"`` -> [1, 5, 7]; ranges and lists mix. Each part is
    ASCII digits (int() also takes '1_0' and other scripts' digits); a range runs upwards.
    At most `MAX_SEEDS` in all, counted before the list is made: a slip such as 0-100000000
    is refused at once instead of filling memory."""
    from render3d.generators.sampling import SEED_LIMIT

    ranges = []
    for part in text.split(","):
        match = re.fullmatch(r"\s*([0-9]+)\s*(?:-\s*([0-9]+)\s*)?", part)
        low, high = (int(match[1]), int(match[2] or match[1])) if match else (0, -1)
        if low > high or high >= SEED_LIMIT:
            raise UsageError(f"render3d {command}: --seeds expected ints in 0..2**64-1 like 0-3 or 1,5,7, "
                             f"got {text!r}")
        ranges.append(range(low, high + 1))
    count = sum(r.stop - r.start for r in ranges)   # len() of a range past 2**63 overflows
    if count > MAX_SEEDS:
        raise UsageError(f"render3d {command}: --seeds expected at most {MAX_SEEDS} seeds in one call, "
                         f"got {count} from {text!r}")
    return [seed for r in ranges for seed in r]


def load_checkpoint_generator(command: str, path: Path, device: str = "cpu", argument: str = "--checkpoint"):
    """(generator, metadata) from a generator file, checkpoint or run folder; UsageError,
    naming the command line's `argument`, if it is none of these."""
    from render3d.training import load_generator

    try:
        G, meta = load_generator(path, device)
    except (ValueError, OSError) as error:
        raise _checkpoint_error(command, argument, error) from None
    if getattr(G, "stage", None) is not None:          # a checkpoint from early in a progressive run
        resolution, blend = G.stage
        fading = f" (fading in at {blend:.2f})" if blend < 1 else ""
        print(f"render3d {command}: {path} was saved while progressive growing had reached {resolution} px"
              f"{fading}: its pictures are that stage's, up-sampled to {G.resolutions[-1]} px", file=sys.stderr)
    return G, meta


def checkpoint_hint(value: str) -> str:
    """What to say after refusing `value` where a command with --checkpoint expected something
    else (`render3d render RUN`): that it is a trained generator, and how to pass it; else ''."""
    from render3d.training.checkpoint import is_generator_path

    return f" ({value} is a trained generator: pass it as --checkpoint {value})" if is_generator_path(value) else ""


def checkpoint_styles(command: str, G, meta: dict, seeds: list[int], truncation: float,
                      argument: str = "--checkpoint"):
    """`styles_from_seeds` for the command line, run before folders are made. UsageErrors: a
    --truncation the mapping network refuses (w past float range); one that leaves w finite
    but not the densities (VolumeGAN's point MLP multiplies features and styles that both
    grow with psi: NaN from about psi 1e19 for the demo model), which was a traceback from
    deep in a render after the folder was made; and a generator whose densities are not
    finite even untruncated, named as `argument`. The densities are probed at each subject's
    centre (the view's pivot), one point per seed."""
    from render3d.generators.sampling import nonfinite_density, styles_from_seeds

    try:
        ws = styles_from_seeds(G, seeds, meta["view"], truncation=truncation)
    except ValueError as error:
        if "argument 'truncation'" not in str(error):
            raise
        raise restated(command, error, {"truncation": "--truncation"}) from None
    bad = nonfinite_density(G, ws, meta["view"])
    if bad is None:
        return ws
    seed, value = seeds[bad[0]], bad[1]
    if truncation != 1 and nonfinite_density(G, styles_from_seeds(G, [seed], meta["view"]), meta["view"]) is None:
        raise UsageError(f"render3d {command}: --truncation expected a number small enough for the densities to "
                         f"stay finite, got {truncation:g}, which makes seed {seed}'s density at its centre {value}")
    raise UsageError(f"render3d {command}: {argument} expected a generator whose densities are finite, got one "
                     f"whose density at the centre of seed {seed}'s subject is {value} (did its training diverge?)")


def _checkpoint_error(command: str, argument: str, error: Exception) -> UsageError:
    # load_generator names its own argument; on the command line it is `argument`
    if isinstance(error, OSError):
        return UsageError(f"render3d {command}: {argument} {error}")
    return restated(command, error, {"path": argument})
