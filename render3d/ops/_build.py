"""Building and loading render3d's native kernels.

Importing never compiles. The first native call (or `render3d build`) JIT-builds the sources
in ``cuda/`` (shipped in the wheel as ``render3d/_csrc``) with ninja into a cache directory
keyed by the sources (their place and content), the compile flags, the torch install and
version and whether CUDA is built, then loads the library so that its ops appear under
``torch.ops.render3d``.

Builds are serialised per key by an OS file lock, which the kernel releases when its owner
dies; a build killed half-way therefore never blocks the next one: torch's own ``lock`` file
left in the build directory is removed while we hold ours.

Each finished build records where its sources and torch are, and each load marks it used, for
``_cache``: a new build removes the older builds of the same sources folder and torch.

Environment: ``RENDER3D_CACHE_DIR`` (default ``$XDG_CACHE_HOME/render3d`` or
``~/.cache/render3d``), ``RENDER3D_NATIVE=0`` (never build; use the PyTorch twins),
``RENDER3D_FORCE_CUDA=1`` (build the CUDA kernels even where no GPU is visible),
``MAX_JOBS`` (parallel compile jobs, as for torch extensions).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

LIBRARY = "render3d"
_CPU_FLAGS = ["-O3", "-fopenmp", "-ffp-contract=off", "-DNDEBUG"]
_CUDA_FLAGS = ["-O3", "-DNDEBUG", "--expt-relaxed-constexpr"]
_LINK_FLAGS = ["-fopenmp"]


def source_root() -> Path:
    """The kernel sources: ``render3d/_csrc`` when installed, ``cuda/`` in a checkout."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "_csrc", package.parent / "cuda"):
        if (candidate / "schema.cpp").is_file():
            return candidate
    raise FileNotFoundError(f"render3d kernel sources not found next to {package} (looked for _csrc/ and ../cuda/)")


def sources(with_cuda: bool) -> list[Path]:
    """Translation units of the extension: the schema, every op's CPU file, and in CUDA builds
    every op's CUDA registration and kernel file."""
    root = source_root()
    files = [root / "schema.cpp", *sorted(root.glob("*/*_cpu.cpp"))]
    if with_cuda:
        files += sorted(root.glob("*/*_cuda.cpp")) + sorted(root.glob("*/*_kernel.cu"))
    return files


def _all_source_files() -> list[Path]:
    root = source_root()
    return sorted(p for p in root.rglob("*") if p.suffix in {".h", ".cpp", ".cu"})


def cuda_wanted() -> bool:
    """Whether a build should include the CUDA kernels."""
    if torch.version.cuda is None:
        return False
    from torch.utils.cpp_extension import CUDA_HOME

    if CUDA_HOME is None:
        return False
    return os.environ.get("RENDER3D_FORCE_CUDA") == "1" or torch.cuda.is_available()


def find_nvcc() -> Path | None:
    """nvcc from CUDA_HOME / CUDA_PATH, the PATH, or /usr/local/cuda (a CPU-only torch does not
    look for one, but the CUDA sources can still be compile-checked with it)."""
    for env in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(env) and (Path(os.environ[env]) / "bin" / "nvcc").exists():
            return Path(os.environ[env]) / "bin" / "nvcc"
    found = shutil.which("nvcc")
    if found:
        return Path(found)
    default = Path("/usr/local/cuda/bin/nvcc")
    return default if default.exists() else None


def cuda_include_dir() -> Path | None:
    """The CUDA toolkit's include directory (holding cuda_runtime_api.h), next to nvcc."""
    nvcc = find_nvcc()
    if nvcc is None:
        return None
    for candidate in (nvcc.resolve().parent.parent / "include", Path("/usr/local/cuda/include")):
        if (candidate / "cuda_runtime_api.h").exists():
            return candidate
    return None


def cache_root() -> Path:
    if os.environ.get("RENDER3D_CACHE_DIR"):
        return Path(os.environ["RENDER3D_CACHE_DIR"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "render3d"


def build_key(with_cuda: bool) -> str:
    """Names a build by what goes into it. The build files that torch writes hold absolute paths
    (the sources, torch's headers and libraries), and ninja rebuilds everything when those change;
    so two checkouts or two environments with the same sources get a build each, rather than
    taking turns rebuilding one."""
    digest = hashlib.sha256()
    root = source_root()
    digest.update(f"{root}\0{torch_dir()}\0".encode())
    for path in _all_source_files():
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    digest.update(json.dumps([_CPU_FLAGS, _CUDA_FLAGS, _LINK_FLAGS, sys.version_info[:2]]).encode())
    torch_version = torch.__version__.replace("+", "_")
    return f"torch{torch_version}-{_flavour(with_cuda)}-{digest.hexdigest()[:16]}"


def torch_dir() -> str:
    return str(Path(torch.__file__).resolve().parent)


def _flavour(with_cuda: bool) -> str:
    return f"cu{torch.version.cuda.replace('.', '')}" if with_cuda else "cpu"


def build_dir(with_cuda: bool) -> Path:
    return cache_root() / "ext" / build_key(with_cuda)


def build_lock(with_cuda: bool) -> Path:
    """The file whose lock serialises the builds of one key (beside its folder)."""
    directory = build_dir(with_cuda)
    return directory.parent / f"{directory.name}.lock"


def compile_flags(with_cuda: bool) -> dict[str, list[str]]:
    flags = {"cxx": list(_CPU_FLAGS), "ld": list(_LINK_FLAGS)}
    if with_cuda:
        flags["nvcc"] = list(_CUDA_FLAGS)
        flags["cxx"] = flags["cxx"] + ["-DRENDER3D_WITH_CUDA"]
    return flags


class BuildUnavailable(RuntimeError):
    """A known reason not to build (no compiler, no ninja, no nvcc); its message says which."""


@dataclass
class NativeState:
    """What the process knows about the native library."""

    attempted: bool = False
    loaded: bool = False
    with_cuda: bool = False
    path: Path | None = None
    error: str | None = None
    warned: set = field(default_factory=set)


_state = NativeState()
_lock = threading.Lock()


def state() -> NativeState:
    return _state


@contextlib.contextmanager
def _file_lock(path: Path, waiting: str | None = None, patience: float = 2.0):
    """Holds an exclusive lock on `path`; prints `waiting` when another process holds it for
    longer than `patience` seconds (a build of a minute, not a load of a finished one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        deadline = time.monotonic() + patience
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                if waiting:
                    print(waiting, file=sys.stderr, flush=True)
                fcntl.flock(handle, fcntl.LOCK_EX)
                break
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _compiler_problem(with_cuda: bool) -> str | None:
    compiler = os.environ.get("CXX", "c++")
    if shutil.which(compiler) is None:
        return f"no C++ compiler found (looked for '{compiler}'; set CXX to choose one)"
    from torch.utils.cpp_extension import is_ninja_available

    if not is_ninja_available():
        return "ninja is not installed (pip install ninja)"
    if with_cuda:
        from torch.utils.cpp_extension import CUDA_HOME

        # torch takes the architectures from the visible GPU; with none it failed with an IndexError
        if not torch.cuda.is_available() and not os.environ.get("TORCH_CUDA_ARCH_LIST", "").strip():
            return ("RENDER3D_FORCE_CUDA=1 with no GPU visible: set TORCH_CUDA_ARCH_LIST to the GPUs to build for "
                    "(for example '8.0;9.0')")
        if CUDA_HOME is None or not (Path(CUDA_HOME) / "bin" / "nvcc").exists():
            return "nvcc not found (set CUDA_HOME)"
    return None


@contextlib.contextmanager
def _installed_ninja_first():
    """torch runs the first ``ninja`` on PATH, and ninja versions do not read each other's build
    logs: a process with the virtual environment activated (pip's ninja) and one without (the
    system's) rebuilt the kernels in turn, half a minute each time. While building, the ninja
    installed with render3d (the ``ninja`` package, a dependency) comes first."""
    try:
        import ninja

        folder = str(ninja.BIN_DIR)
    except (ImportError, AttributeError):
        folder = None
    previous = os.environ.get("PATH")
    if folder is not None:
        os.environ["PATH"] = os.pathsep.join([folder, previous] if previous else [folder])
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("PATH", None)
        else:
            os.environ["PATH"] = previous


def _build_and_load(with_cuda: bool, verbose: bool) -> Path:
    from torch.utils.cpp_extension import load

    problem = _compiler_problem(with_cuda)
    if problem:
        raise BuildUnavailable(problem)
    directory = build_dir(with_cuda)
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise BuildUnavailable(f"cannot create the kernel cache folder {directory.parent} ({error.strerror}); "
                               f"set RENDER3D_CACHE_DIR to a folder you can write to") from None
    name = f"{LIBRARY}_native"
    library = directory / f"{name}.so"
    marker = directory / "BUILD_OK"
    waiting = f"render3d: waiting for another process to finish building the native kernels in {directory}..."
    with _file_lock(build_lock(with_cuda), waiting):
        directory.mkdir(parents=True, exist_ok=True)
        # We hold the per-key lock, so nobody else is building here: a 'lock' file left by
        # torch's own baton belongs to a killed build. Without the marker the library may be
        # half-written by a killed link step.
        (directory / "lock").unlink(missing_ok=True)
        if not marker.exists():
            library.unlink(missing_ok=True)
            print(
                f"render3d: building the native {'CPU+CUDA' if with_cuda else 'CPU'} kernels into {directory} "
                "(first use only, about a minute)...",
                file=sys.stderr,
                flush=True,
            )
        started = time.perf_counter()
        flags = compile_flags(with_cuda)
        load(
            name=name,
            sources=[str(p) for p in sources(with_cuda)],
            extra_include_paths=[str(source_root() / "include"), str(source_root())],
            extra_cflags=flags["cxx"],
            extra_cuda_cflags=flags.get("nvcc"),
            extra_ldflags=flags["ld"],
            build_directory=str(directory),
            is_python_module=False,
            verbose=verbose,
        )
        fresh = not marker.exists()
        if fresh:
            marker.write_text(
                json.dumps(
                    {
                        "key": directory.name,
                        "torch": torch.__version__,
                        "cuda": torch.version.cuda if with_cuda else None,
                        "flavour": _flavour(with_cuda),
                        "sources": str(source_root()),
                        "torch_dir": torch_dir(),
                        "flags": flags,
                        "seconds": round(time.perf_counter() - started, 1),
                    },
                    indent=2,
                )
            )
        else:
            with contextlib.suppress(OSError):   # a read-only cache still loads
                os.utime(marker)   # used now: the superseded builds used last are kept
    if fresh:
        from ._cache import remove_superseded

        remove_superseded()
    return library


def load_native(*, verbose: bool = False, raise_errors: bool = False) -> bool:
    """Build (if needed) and load the native library once per process.

    Returns whether the ops are available. A failure is remembered: later calls return False
    at once (or raise, with `raise_errors`) instead of rebuilding.
    """
    with _lock:
        if not _state.attempted:
            _state.attempted = True
            if os.environ.get("RENDER3D_NATIVE", "1") == "0":
                _state.error = "disabled by RENDER3D_NATIVE=0"
            else:
                with_cuda = cuda_wanted()
                try:
                    with _installed_ninja_first():
                        _state.path = _build_and_load(with_cuda, verbose)
                    _state.with_cuda = with_cuda
                    _state.loaded = True
                    from . import _registry

                    _registry.register_all()
                except Exception as exc:  # a failed build must never take the caller down
                    _state.error = _summarise(exc)
        if raise_errors and not _state.loaded:
            raise RuntimeError(f"render3d native kernels are unavailable: {_state.error}")
        return _state.loaded


def _summarise(exc: Exception) -> str:
    if isinstance(exc, BuildUnavailable):
        return str(exc)
    text = str(exc).strip()
    lines = [line for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    picked = errors[:5] if errors else lines[-5:]
    return f"{type(exc).__name__}: " + " | ".join(picked)[:2000]


def warn_once(key: str, message: str) -> None:
    if key in _state.warned:
        return
    _state.warned.add(key)
    import warnings

    warnings.warn(message, RuntimeWarning, stacklevel=4)


def is_built(with_cuda: bool | None = None) -> bool:
    """Whether a finished build for this torch and these sources is in the cache (no build)."""
    if with_cuda is None:
        with_cuda = cuda_wanted()
    return (build_dir(with_cuda) / "BUILD_OK").exists()
