"""The ``render3d`` command."""

from __future__ import annotations

import argparse
import itertools
import re
import sys

from render3d._files import STORAGE_ERRORS

from . import commands

EPILOG = """examples:
  render3d demo                      the shipped VolumeGAN: orbit video, views with depth, meshes in outputs/demo/
  render3d render --scene torus      a grid of views and an orbit video of a scene
  render3d export-mesh --scene demo  a coloured mesh of a scene: outputs/mesh/demo.glb
  render3d preview-mesh MESH.glb     pictures of a mesh file (grid and turntable), no GPU needed
  render3d export-splat IN.ply --out OUT.splat   Gaussian splats between 3DGS PLY and .splat
  render3d dataset check PATH        validate a posed-image dataset, list every malformed entry
  render3d dataset synth OUT         write a synthetic posed dataset with ground-truth geometry
  render3d train volumegan/synth64 data.path=DATA --out RUN   train a 3D-aware GAN
  render3d render --checkpoint RUN   a trained generator's views, depth and orbit video
  render3d export-mesh --checkpoint RUN --seed 3   a coloured mesh of one generated subject
  render3d eval images REAL FAKE     FID and KID between two image sets (local Inception file)
  render3d eval shapes GEN REF       COV, MMD and 1-NNA of shapes against a synthetic dataset's meshes
  render3d eval generator RUN DATA   a trained generator's shapes (and FID/KID) against a synthetic dataset
  render3d view [TARGET]             orbit a generator, scene, mesh or splats in the browser (port 8080)
  render3d info                      versions, devices, which kernels are built
  render3d build                     prebuild the native kernels (otherwise built on first use)
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="render3d",
        description="3D-aware generation and neural rendering.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from render3d import __version__

    parser.add_argument("--version", action="version", version=f"render3d {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in commands.REGISTRY:
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args, extra = parser.parse_known_args(argv)
    if extra:
        # `render3d train` takes key=value overrides before or after its options.
        if getattr(args, "overrides", None) is None or any(e.startswith("-") or "=" not in e for e in extra):
            # said by the subcommand's own parser: its usage line, not the top-level one
            chosen = _chosen(parser, args)
            hint = _checkpoint_hint(chosen, extra) or _seeds_hint(chosen, argv, extra)
            chosen.error(f"unrecognized arguments: {' '.join(extra)}{hint}")
        args.overrides = [*args.overrides, *extra]
    if args.command is None:
        parser.print_help()
        return 0
    command = _chosen(parser, args).prog                # "render3d dataset synth"
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        # Ctrl-C: one line, not a traceback (train catches its own, to write a checkpoint first).
        print(f"\n{command}: interrupted", file=sys.stderr)
        return 130
    except (MemoryError, RuntimeError) as error:
        if not _out_of_memory(error):
            raise
        # A traceback says nothing more here: name what ran out, and what to ask for instead.
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        message = re.sub(r"^\[enforce fail at [^\]]*\] err == 0\. ", "", message)   # torch's allocator
        notes = "".join(f"\n{note}" for note in getattr(error, "__notes__", ()))
        print(f"{command}: out of memory ({message}); what was asked for needs more memory than this "
              f"machine has: ask for less (smaller sizes or resolution, fewer views or frames, a smaller batch){notes}",
              file=sys.stderr)
        return 1
    except OSError as error:
        if error.errno not in STORAGE_ERRORS:
            raise
        # The disk, a quota or a size limit is full, or the folder is read-only: nothing to debug.
        where = f" {error.filename}" if error.filename else ""
        notes = "".join(f"\n{note}" for note in getattr(error, "__notes__", ()))   # train's: the checkpoint to resume
        print(f"{command}: cannot write{where}: {error.strerror}; free space or write elsewhere{notes}",
              file=sys.stderr)
        return 1


def _chosen(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The innermost parser that `args` came through (`render3d dataset synth`'s for
    `render3d dataset synth ...`), so that an error shows the usage of the command typed."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and getattr(args, action.dest, None) in action.choices:
            return _chosen(action.choices[getattr(args, action.dest)], args)
    return parser


def _checkpoint_hint(parser: argparse.ArgumentParser, extra: list[str]) -> str:
    """How to pass a trained generator, when `extra` holds one that `parser` takes otherwise:
    as --checkpoint (`render3d export-mesh RUN`), or as its first argument (`render3d view
    --checkpoint RUN`); else ''."""
    if "--checkpoint" in parser._option_string_actions:
        from ._args import checkpoint_hint

        return next((hint for hint in map(checkpoint_hint, extra) if hint), "")
    first = next((a.dest for a in parser._actions if not a.option_strings), None)
    if "--checkpoint" in extra and first in ("target", "checkpoint"):
        return f" ({parser.prog} takes the generator as its first argument, without --checkpoint)"
    return ""


def _seeds_hint(parser: argparse.ArgumentParser, argv: list[str], extra: list[str]) -> str:
    """How to give several seeds, when `extra` holds the words after `--seeds V` that look like
    seeds (`--seeds 0 1 2`: one value, `--seeds 0,1,2`); else ''."""
    if "--seeds" not in parser._option_string_actions or "--seeds" not in argv[:-1]:
        return ""
    start = argv.index("--seeds") + 1
    words = list(itertools.takewhile(lambda word: re.fullmatch(r"[0-9]+(-[0-9]+)?,?", word), argv[start:]))
    if len(words) < 2 or not set(words[1:]) & set(extra):
        return ""
    return f" (--seeds takes one value: --seeds {','.join(word.rstrip(',') for word in words)})"


def _out_of_memory(error: BaseException) -> bool:
    """Whether `error` is an allocation that failed: numpy's or Python's MemoryError, torch's
    CPU allocator refusing, or a CUDA out-of-memory error."""
    return (isinstance(error, MemoryError) or type(error).__name__ == "OutOfMemoryError"
            or "can't allocate memory" in str(error))


if __name__ == "__main__":
    sys.exit(main())
