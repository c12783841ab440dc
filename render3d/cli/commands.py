"""Subcommands of ``render3d``: each ``add_*`` registers its parser and a ``run`` function.
Heavy imports happen inside ``run`` so that ``render3d --help`` stays instant."""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import shutil
import subprocess
import sys


def _formatter(prog):
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


def add_info(sub) -> None:
    p = sub.add_parser(
        "info", help="versions, devices, compilers and which native kernels are built",
        description="Print what render3d finds on this machine; builds nothing.",
        epilog="example:\n  render3d info", formatter_class=_formatter,
    )
    p.set_defaults(run=run_info)


def run_info(args) -> int:
    import torch

    import render3d
    from render3d.ops import _build, _cache

    print(f"render3d      {render3d.__version__} ({os.path.dirname(render3d.__file__)})")
    print(f"python        {platform.python_version()} ({sys.executable})")
    print(f"torch         {torch.__version__} (CUDA build: {torch.version.cuda or 'no'})")
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            major, minor = torch.cuda.get_device_capability(i)
            print(f"device cuda:{i}  {torch.cuda.get_device_name(i)} (sm_{major}{minor})")
    else:
        print("device        cpu only (torch.cuda.is_available() is False)")
    print(f"cpu threads   {torch.get_num_threads()}")
    compiler = os.environ.get("CXX", "c++")
    print(f"c++ compiler  {_version_line([compiler, '--version']) if shutil.which(compiler) else 'not found'}")
    print(f"ninja         {_version_line(['ninja', '--version']) if shutil.which('ninja') else 'not found'}")
    nvcc = _build.find_nvcc()
    print(f"nvcc          {_version_line([str(nvcc), '--version'], last=True) + f' ({nvcc})' if nvcc else 'not found'}")
    print(f"sources       {_build.source_root()}")
    print(f"cache         {_build.cache_root()}")
    others = _cache.other_builds()
    if others:
        removable = [b for b in others if b.reason is not None]
        print(f"other builds  {len(others)} ({_megabytes(b.size for b in others)}), "
              + (f"{len(removable)} of them removable ({_megabytes(b.size for b in removable)}): "
                 "`render3d build --prune`" if removable else "all in use by other checkouts or environments"))
    wanted = _build.cuda_wanted()
    for with_cuda in (False, True) if wanted else (False,):
        label = "CPU+CUDA" if with_cuda else "CPU"
        built = "built" if _build.is_built(with_cuda) else "not built (builds on first use or `render3d build`)"
        print(f"kernels {label:<8} {built}\n  dir         {_build.build_dir(with_cuda)}")
        for key, flags in _build.compile_flags(with_cuda).items():
            print(f"  {key + ' flags':<11} {' '.join(flags)}")
    print(f"this process  would build {'CPU+CUDA' if wanted else 'CPU'} kernels; "
          f"RENDER3D_NATIVE={os.environ.get('RENDER3D_NATIVE', '1')}")
    return 0


def _megabytes(sizes) -> str:
    return f"{sum(sizes) / 1e6:.1f} MB"


def _version_line(cmd, last: bool = False) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout.strip().splitlines()
    except (OSError, subprocess.SubprocessError):
        return "error"
    return (out[-1] if last else out[0]) if out else "unknown"


def add_build(sub) -> None:
    p = sub.add_parser(
        "build", help="prebuild the native kernels for this torch (CPU, plus CUDA where available)",
        description="Build the native kernels now (they are otherwise built on first use) and report where.",
        epilog="examples:\n  render3d build\n  render3d build --verbose          # show the compiler commands\n"
               "  render3d build --require-cuda     # fail unless the CUDA kernels are built\n"
               "  render3d build --prune            # also remove the builds that nothing uses any more\n\n"
               "A new build replaces the older builds of the same sources folder and torch, but for the two\n"
               "used last. --prune removes those too, and the builds whose sources folder or torch is gone,\n"
               "unfinished ones and those of render3d versions that did not record their sources; it keeps\n"
               "the builds of other checkouts and environments that still exist.",
        formatter_class=_formatter,
    )
    p.add_argument("--verbose", action="store_true", help="show the compiler commands and output")
    p.add_argument("--require-cuda", action="store_true", help="fail unless the CUDA kernels can be built")
    p.add_argument("--prune", action="store_true",
                   help="first remove the cached builds that nothing uses any more (see below)")
    p.set_defaults(run=run_build)


def run_build(args) -> int:
    import time

    from render3d.ops import _build

    if args.require_cuda and not _build.cuda_wanted():
        import torch

        print(
            "render3d build: --require-cuda, but the CUDA kernels cannot be built here "
            f"(torch CUDA build: {torch.version.cuda or 'no'}, GPU visible: {torch.cuda.is_available()}, "
            "nvcc from CUDA_HOME; set RENDER3D_FORCE_CUDA=1 to build without a visible GPU)",
            file=sys.stderr,
        )
        return 1
    if args.prune:
        _prune()
    started = time.perf_counter()
    if not _build.load_native(verbose=args.verbose):
        print(f"render3d build: failed: {_build.state().error}", file=sys.stderr)
        return 1
    state = _build.state()
    flavour = "CPU+CUDA" if state.with_cuda else "CPU"
    print(f"render3d: native {flavour} kernels ready in {time.perf_counter() - started:.1f} s: {state.path}")
    return 0


def _prune() -> None:
    """Removes the cached builds that can go, one line each, and says what it kept."""
    from render3d.ops import _cache

    removed, kept = [], []
    for build in _cache.other_builds():
        problem = "in use by another checkout or environment" if build.reason is None else _cache.remove_build(build)
        if problem is None:
            removed.append(build)
            print(f"render3d build: removed {build.directory} ({_megabytes([build.size])}): {build.reason}")
        else:
            kept.append(build)
            print(f"render3d build: kept {build.directory} ({_megabytes([build.size])}): {problem}")
    _cache.remove_orphan_locks()
    print(f"render3d build: pruned {len(removed)} build{'' if len(removed) == 1 else 's'} "
          f"({_megabytes(b.size for b in removed)}), kept {len(kept)} other{'' if len(kept) == 1 else 's'}")


def _registrar(module: str, name: str):
    """The parser registrar `name` of the subcommand module `module` (render3d.cli.<module>),
    imported when the parser is built."""

    def register(sub) -> None:
        getattr(importlib.import_module(f"{__package__}.{module}"), name)(sub)

    register.__name__ = name
    return register


REGISTRY = [
    _registrar("demo", "add_demo"),
    _registrar("render", "add_render"),
    _registrar("mesh", "add_export_mesh"),
    _registrar("mesh", "add_preview_mesh"),
    _registrar("splat", "add_export_splat"),
    _registrar("dataset", "add_dataset"),
    _registrar("train", "add_train"),
    _registrar("evaluate", "add_eval"),
    _registrar("view", "add_view"),
    add_info,
    add_build,
]
