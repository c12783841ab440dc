"""The native-kernel machinery: lazy builds, the cache and its locks, the fallback without a
compiler, the CLI, and compiling every CUDA source for sm_80 and sm_90 (no GPU needed)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from _cli import run_cli

from render3d.ops import _build, _cache

REPO = Path(__file__).resolve().parents[1]
PROBE = (
    "import torch, render3d.volume as v;"
    "d = torch.rand(1, 2, 3, dtype=torch.float64); x = torch.rand(1, 2, 3, 2, dtype=torch.float64);"
    "t = torch.arange(3, dtype=torch.float64).expand(1, 2, 3);"
    "a = v.composite(d, x, t, t + 1, impl='auto')['values']; b = v.composite(d, x, t, t + 1, impl='auto')['values'];"
    "c = v.composite(d, x, t, t + 1, impl='torch')['values'];"
    "assert torch.allclose(a, c) and torch.allclose(b, c); print('OK')"
)


def run_python(code, env=None, timeout=600):
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full_env, timeout=timeout)


def test_import_never_compiles(tmp_path):
    """Importing every module of the package builds nothing and loads no kernels."""
    code = (
        "import importlib, pkgutil, torch, render3d;"
        "[importlib.import_module(m.name) for m in pkgutil.walk_packages(render3d.__path__, 'render3d.')"
        " if m.name != 'render3d.__main__'];"
        "print(hasattr(torch.ops.render3d, 'composite_fwd'))"
    )
    result = run_python(code, {"RENDER3D_CACHE_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
    assert not any(tmp_path.iterdir())  # nothing was built or even created


def test_no_compiler_warns_once_and_uses_twins(tmp_path):
    result = run_python(PROBE, {"RENDER3D_CACHE_DIR": str(tmp_path), "CXX": "/nonexistent/c++"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "OK"
    warnings = [line for line in result.stderr.splitlines() if "RuntimeWarning" in line]
    assert len(warnings) == 1, result.stderr
    assert "native kernels unavailable (no C++ compiler found (looked for '/nonexistent/c++'" in warnings[0]
    assert "using the PyTorch twins" in warnings[0]


def test_impl_native_without_compiler_raises(tmp_path):
    code = PROBE.replace("impl='auto'", "impl='native'")
    result = run_python(code, {"RENDER3D_CACHE_DIR": str(tmp_path), "CXX": "/nonexistent/c++"})
    assert result.returncode != 0
    assert "RuntimeError: render3d native kernels are unavailable: no C++ compiler found" in result.stderr


def test_an_unwritable_cache_folder_is_named(tmp_path):
    """RENDER3D_CACHE_DIR where no folder can be made (here: below a file) falls back to the
    twins with a warning that names the folder and the variable (it said FileNotFoundError)."""
    (tmp_path / "file").write_text("")
    result = run_python(PROBE, {"RENDER3D_CACHE_DIR": str(tmp_path / "file" / "cache")})
    assert result.returncode == 0 and result.stdout.strip() == "OK", result.stderr
    assert (f"native kernels unavailable (cannot create the kernel cache folder {tmp_path / 'file' / 'cache' / 'ext'} "
            f"(Not a directory); set RENDER3D_CACHE_DIR to a folder you can write to)") in result.stderr


def test_disabled_by_environment(tmp_path):
    result = run_python(PROBE, {"RENDER3D_CACHE_DIR": str(tmp_path), "RENDER3D_NATIVE": "0"})
    assert result.returncode == 0 and "disabled by RENDER3D_NATIVE=0" in result.stderr


def test_a_forced_cuda_build_without_a_gpu_asks_for_the_architectures(monkeypatch):
    """RENDER3D_FORCE_CUDA=1 on a machine with no GPU and no TORCH_CUDA_ARCH_LIST: torch found no
    architecture to build for and failed with 'IndexError: list index out of range'."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for unset in ("", " "):
        monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", unset)
        assert _build._compiler_problem(True) == (
            "RENDER3D_FORCE_CUDA=1 with no GPU visible: set TORCH_CUDA_ARCH_LIST to the GPUs to build for "
            "(for example '8.0;9.0')")
    monkeypatch.delenv("TORCH_CUDA_ARCH_LIST")
    assert "TORCH_CUDA_ARCH_LIST" in _build._compiler_problem(True)
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "8.0;9.0")
    assert "TORCH_CUDA_ARCH_LIST" not in (_build._compiler_problem(True) or "")   # nvcc's absence may remain


def test_stale_lock_does_not_hang():
    """torch's own build 'lock' left by a killed build would make the next load wait forever."""
    _build.load_native(raise_errors=True)
    directory = _build.build_dir(_build.state().with_cuda)
    (directory / "lock").write_text("")
    result = run_python(PROBE, timeout=300)
    assert result.returncode == 0, result.stderr
    assert not (directory / "lock").exists()


@pytest.mark.slow
def test_killed_build_does_not_block_the_next(tmp_path):
    env = {**os.environ, "RENDER3D_CACHE_DIR": str(tmp_path)}
    first = subprocess.Popen([sys.executable, "-c", PROBE], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list(tmp_path.glob("ext/*/build.ninja")):
        time.sleep(0.2)
    assert list(tmp_path.glob("ext/*/build.ninja")), "the first build never started"
    time.sleep(2)  # let the compilers get going
    os.killpg(first.pid, signal.SIGKILL)  # the build, ninja and the compilers, mid-way
    first.wait()
    result = run_python(PROBE, {"RENDER3D_CACHE_DIR": str(tmp_path)}, timeout=600)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "OK"
    assert "RuntimeWarning" not in result.stderr  # the second build succeeded natively
    assert list(tmp_path.glob("ext/*/BUILD_OK"))


def test_build_key_depends_on_sources_and_flavour(monkeypatch):
    cpu, cuda = _build.build_key(False), _build.build_key(True) if torch.version.cuda else None
    assert cpu.startswith(f"torch{torch.__version__.replace('+', '_')}-cpu-")
    if cuda is not None:
        assert cuda != cpu and "-cu" in cuda
    monkeypatch.setattr(_build, "_CPU_FLAGS", _build._CPU_FLAGS + ["-DTEST_FLAG"])
    assert _build.build_key(False) != cpu


def test_a_copy_of_the_sources_elsewhere_builds_apart(tmp_path, monkeypatch):
    """torch's build.ninja names the sources by absolute path: two checkouts sharing one build
    folder would rebuild it in turn (half a minute each time), one under the other's feet."""
    here = _build.build_key(False)
    copy = tmp_path / "cuda"
    shutil.copytree(_build.source_root(), copy)
    monkeypatch.setattr(_build, "source_root", lambda: copy)
    assert _build.build_key(False) != here
    assert _build.build_key(False) == _build.build_key(False)   # and stable


def test_each_build_key_has_its_own_lock(monkeypatch):
    """The lock file was named by `with_suffix`, which cut the key at 'torch2.13': every build
    of a torch version waited for every other, whatever its sources."""
    first = _build.build_lock(False)
    assert first.parent == _build.build_dir(False).parent and first.name == f"{_build.build_key(False)}.lock"
    monkeypatch.setattr(_build, "_CPU_FLAGS", _build._CPU_FLAGS + ["-DTEST_FLAG"])
    assert _build.build_lock(False) != first


def test_a_process_waiting_for_anothers_build_says_so(tmp_path):
    """A second process (a render started while `make test` builds) waited a minute in silence."""
    _build.load_native(raise_errors=True)
    said = "render3d: waiting for another process to finish building the native kernels in"
    log = tmp_path / "stderr"
    with _build._file_lock(_build.build_lock(_build.state().with_cuda)), open(log, "w") as stderr:   # as if building
        waiting = subprocess.Popen([sys.executable, "-c", PROBE], stdout=subprocess.PIPE, stderr=stderr, text=True)
        deadline = time.monotonic() + 120
        while said not in log.read_text() and waiting.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert said in log.read_text(), log.read_text()
        assert waiting.poll() is None   # and still waiting for the lock
    stdout, _ = waiting.communicate(timeout=300)
    assert waiting.returncode == 0, log.read_text()
    assert stdout.strip() == "OK"


def test_builds_with_the_installed_ninja_whatever_path_says(tmp_path):
    """Another ninja first on PATH (the system's, when the virtual environment is not activated)
    reads the build log of pip's ninja as foreign and rebuilt everything; render3d builds with the
    ninja installed beside it, so a loaded build stays loaded as it is."""
    import ninja

    _build.load_native(raise_errors=True)   # built in the default cache by now
    called = tmp_path / "called"
    fake = tmp_path / "bin" / "ninja"
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/sh\necho \"$@\" >> {called}\nexec {Path(ninja.BIN_DIR) / 'ninja'} \"$@\"\n")
    fake.chmod(0o755)
    result = run_python(PROBE, {"PATH": f"{fake.parent}{os.pathsep}{os.environ['PATH']}"}, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "OK" and "RuntimeWarning" not in result.stderr
    assert not called.exists(), called.read_text()


def test_cli_info_and_build():
    build = run_cli("build", timeout=600)
    assert build.returncode == 0, build.stderr
    assert "native CPU" in build.stdout and "kernels ready" in build.stdout
    info = run_cli("info", timeout=120)
    assert info.returncode == 0, info.stderr
    assert f"torch         {torch.__version__}" in info.stdout
    assert "kernels CPU      built" in info.stdout
    assert "cxx flags   -O3 -fopenmp" in info.stdout


# --- the builds in the cache ------------------------------------------------------------------

def _fake_build(cache, name, record=None, size=1000, used=None):
    """A build folder as `_build_and_load` leaves it: a library of `size` bytes and, when
    `record` is not None, its BUILD_OK marker (last used at `used`, seconds since the epoch)."""
    directory = cache / "ext" / name
    directory.mkdir(parents=True)
    (directory / "render3d_native.so").write_bytes(b"\0" * size)
    if record is not None:
        marker = directory / "BUILD_OK"
        marker.write_text(json.dumps(record) if isinstance(record, dict) else record)
        if used is not None:
            os.utime(marker, (used, used))
    return directory


def _here(**changes):
    return {"sources": str(_build.source_root()), "torch_dir": str(Path(torch.__file__).resolve().parent), **changes}


def _name(flavour="cpu", digest="0" * 16):
    return f"torch{torch.__version__.replace('+', '_')}-{flavour}-{digest}"


def _tmp_cache(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("RENDER3D_CACHE_DIR", str(cache))
    return cache


def test_other_builds_say_why_they_can_go(tmp_path, monkeypatch):
    cache = _tmp_cache(tmp_path, monkeypatch)
    elsewhere = tmp_path / "checkout" / "cuda"
    elsewhere.mkdir(parents=True)
    (elsewhere / "schema.cpp").write_text("")
    _fake_build(cache, _build.build_key(False), _here())   # this process's own: never listed
    builds = {
        "superseded": _fake_build(cache, _name(digest="1" * 16), _here()),
        "sources gone": _fake_build(cache, _name(digest="2" * 16), _here(sources=str(tmp_path / "gone"))),
        "torch gone": _fake_build(cache, _name(digest="3" * 16),
                                  _here(sources=str(elsewhere), torch_dir=str(tmp_path / "old-venv"))),
        "in use": _fake_build(cache, _name(digest="4" * 16), _here(sources=str(elsewhere), torch_dir=str(tmp_path))),
        "unfinished": _fake_build(cache, _name(digest="5" * 16)),
        "earlier": _fake_build(cache, _name(digest="6" * 16), {"key": "x", "torch": torch.__version__}),
        "unreadable": _fake_build(cache, _name(digest="7" * 16), "{not json"),
    }
    found = {b.directory: b for b in _cache.other_builds()}
    assert set(found) == set(builds.values())
    reasons = {what: found[directory].reason for what, directory in builds.items()}
    assert reasons == {
        "superseded": "superseded: the sources here have changed since",
        "sources gone": f"its sources are gone ({tmp_path / 'gone'})",
        "torch gone": f"its torch is gone ({tmp_path / 'old-venv'})",
        "in use": None,
        "unfinished": "unfinished: a build that failed or was stopped",
        "earlier": "built by an earlier render3d, which did not record its sources",
        "unreadable": "built by an earlier render3d, which did not record its sources",
    }
    assert [what for what, d in builds.items() if found[d].superseded] == ["superseded"]
    assert all(found[d].size >= 1000 for d in builds.values())


def test_a_new_build_removes_the_older_builds_of_its_sources_but_the_two_used_last(tmp_path, monkeypatch, capfd):
    """Each edit of a kernel (or each update of render3d in one environment) left a build folder
    behind for good: about 1.3 MB on the CPU, far more with CUDA."""
    import torch.utils.cpp_extension

    cache = _tmp_cache(tmp_path, monkeypatch)
    monkeypatch.setattr(_build, "_compiler_problem", lambda with_cuda: None)
    monkeypatch.setattr(torch.utils.cpp_extension, "load", lambda **kwargs: None)   # the build itself
    older = [_fake_build(cache, _name(digest=f"{i}" * 16), _here(), used=1_000_000 + i) for i in range(4)]
    other_flavour = _fake_build(cache, _name("cu130", "9" * 16), _here(), used=1)
    elsewhere = _fake_build(cache, _name(digest="a" * 16), _here(torch_dir=str(tmp_path)), used=1)
    held = older[0].parent / f"{older[0].name}.lock"
    with _build._file_lock(held):   # another process loading the oldest: not removed under it
        _build._build_and_load(False, verbose=False)
    marker = json.loads((_build.build_dir(False) / "BUILD_OK").read_text())
    assert (marker["sources"], marker["torch_dir"], marker["flavour"]) == (*_here().values(), "cpu")
    left = sorted(p.name for p in (cache / "ext").iterdir() if p.is_dir())
    assert left == sorted([_build.build_key(False), older[0].name, older[3].name, older[2].name,
                           other_flavour.name, elsewhere.name])
    assert not (cache / "ext" / f"{older[1].name}.lock").exists()
    err = capfd.readouterr().err
    assert f"render3d: removed 1 older kernel build of these sources (0.0 MB) from {cache / 'ext'}" in err, err
    # loading it again marks it used, and removes nothing
    before = (_build.build_dir(False) / "BUILD_OK").stat().st_mtime
    os.utime(_build.build_dir(False) / "BUILD_OK", (before - 100, before - 100))
    _build._build_and_load(False, verbose=False)
    assert (_build.build_dir(False) / "BUILD_OK").stat().st_mtime > before - 100
    assert older[0].exists() and "removed" not in capfd.readouterr().err


def test_cli_prune_removes_what_nothing_uses_and_says_what_it_kept(tmp_path):
    _build.load_native(raise_errors=True)
    cache = tmp_path / "cache"
    own = _build.build_dir(_build.state().with_cuda)
    shutil.copytree(own, cache / "ext" / own.name)   # loads without a build: the paths inside are relative
    gone = _fake_build(cache, _name(digest="2" * 16), _here(sources=str(tmp_path / "gone")), size=2_000_000)
    unfinished = _fake_build(cache, _name(digest="5" * 16))
    in_use = _fake_build(cache, _name(digest="4" * 16), _here(torch_dir=str(tmp_path)))
    (cache / "ext" / "torch2.13.lock").write_text("")   # a lock file whose build is gone
    env = {**os.environ, "RENDER3D_CACHE_DIR": str(cache)}
    info = run_cli("info", env=env, timeout=120)
    said = "other builds  3 (2.0 MB), 2 of them removable (2.0 MB): `render3d build --prune`"
    assert said in info.stdout, info.stdout
    result = run_cli("build", "--prune", env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert f"render3d build: removed {gone} (2.0 MB): its sources are gone ({tmp_path / 'gone'})" in lines
    assert f"render3d build: removed {unfinished} (0.0 MB): unfinished: a build that failed or was stopped" in lines
    assert f"render3d build: kept {in_use} (0.0 MB): in use by another checkout or environment" in lines
    assert "render3d build: pruned 2 builds (2.0 MB), kept 1 other" in lines
    assert "kernels ready" in lines[-1] and "building" not in result.stderr
    assert not gone.exists() and not unfinished.exists() and in_use.exists()
    assert sorted(p.name for p in (cache / "ext").glob("*.lock")) == [f"{own.name}.lock"]


# --- CUDA sources compile without a GPU ------------------------------------------------------

def _nvcc_or_skip():
    nvcc = _build.find_nvcc()
    if nvcc is None:
        if os.environ.get("RENDER3D_REQUIRE_NVCC") == "1":
            pytest.fail("RENDER3D_REQUIRE_NVCC=1 but nvcc was not found (set CUDA_HOME)")
        pytest.skip("nvcc not found: the CUDA sources are compile-checked where nvcc exists "
                    "(CI sets RENDER3D_REQUIRE_NVCC=1)")
    return nvcc


CUDA_KERNELS = sorted(_build.source_root().glob("*/*_kernel.cu"))
CUDA_GLUE = sorted(_build.source_root().glob("*/*_cuda.cpp"))


def test_every_op_has_cpu_cuda_and_header():
    root = _build.source_root()
    ops = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name != "include")
    assert ops == ["composite", "march", "project", "raster", "sample_pdf", "tiles"]
    for op in ops:
        for name in (f"{op}.h", f"{op}_cpu.cpp", f"{op}_cuda.cpp", f"{op}_kernel.cu"):
            assert (root / op / name).is_file(), f"cuda/{op}/{name} is missing"


def _compile_commands(nvcc: Path, out: Path) -> dict[Path, list[str]]:
    """The compile-only command of every CUDA source: the kernels for sm_80 and sm_90 with nvcc,
    the torch glue as a syntax check against the CPU wheel's c10/cuda headers (none for the glue
    when the CUDA runtime headers are missing: its test says so)."""
    from torch.utils.cpp_extension import include_paths

    root = _build.source_root()
    commands = {source: [
        str(nvcc), "-std=c++17", "-O3", "--expt-relaxed-constexpr", f"-I{root / 'include'}", f"-I{root}",
        f"-I{source.parent}", "-gencode", "arch=compute_80,code=sm_80", "-gencode", "arch=compute_90,code=sm_90",
        "-c", str(source), "-o", str(out / (source.stem + ".o"))] for source in CUDA_KERNELS}
    include = _build.cuda_include_dir()
    if include is not None:
        commands |= {source: [
            os.environ.get("CXX", "c++"), "-std=c++20", "-fsyntax-only", "-DC10_CUDA_NO_CMAKE_CONFIGURE_FILE",
            "-DRENDER3D_WITH_CUDA", f"-I{include}", f"-I{root / 'include'}", f"-I{root}", f"-I{source.parent}",
            *[f"-I{p}" for p in include_paths()], str(source)] for source in CUDA_GLUE}
    return commands


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> dict[Path, subprocess.CompletedProcess]:
    """Every CUDA source compiled, as many at a time as there are cores (a compiler is one
    process on one core; one test at a time took three minutes on two cores)."""
    from concurrent.futures import ThreadPoolExecutor

    commands = _compile_commands(_nvcc_or_skip(), tmp_path_factory.mktemp("cuda"))
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        running = {source: pool.submit(subprocess.run, command, capture_output=True, text=True, timeout=600)
                   for source, command in commands.items()}
    return {source: future.result() for source, future in running.items()}


@pytest.mark.parametrize("source", CUDA_KERNELS, ids=lambda p: p.name)
def test_cuda_kernels_compile_for_sm80_and_sm90(source, compiled):
    result = compiled[source]
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", f"nvcc warnings:\n{result.stderr}"


@pytest.mark.parametrize("source", CUDA_GLUE, ids=lambda p: p.name)
def test_cuda_glue_compiles_against_torch_headers(source, compiled):
    """The CUDA registrations include c10/cuda headers, which the CPU wheel ships; only a
    syntax check here, as there is no CUDA torch to link against."""
    assert _build.cuda_include_dir() is not None, "nvcc found but not the CUDA runtime headers"
    result = compiled[source]
    assert result.returncode == 0, result.stderr
