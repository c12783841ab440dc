"""Packaging: the wheel ships the kernel sources, and a non-editable install into a fresh
virtual environment builds them from site-packages on first use."""

import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(REPO)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    (path,) = out.glob("render3d-*.whl")
    return path


def test_wheel_contains_sources_and_every_package(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = sorted(p.relative_to(REPO / "cuda") for p in (REPO / "cuda").rglob("*")
                     if p.suffix in {".h", ".cpp", ".cu"})
    assert sources
    for source in sources:
        assert f"render3d/_csrc/{source}" in names, f"{source} is not shipped"
    packages = sorted(p.parent.relative_to(REPO) for p in (REPO / "render3d").rglob("__init__.py"))
    for package in packages:
        assert f"{package}/__init__.py" in names, f"package {package} is missing from pyproject's list"
    # the viewer ships under its namespaced name, never as a bare top-level `viewer`
    modules = sorted(p.relative_to(REPO / "viewer") for p in (REPO / "viewer").glob("*.py"))
    assert modules
    for module in modules:
        assert f"render3d_viewer/{module}" in names, f"viewer/{module} is not shipped as render3d_viewer/{module}"
    assert not any(name.startswith(("tests/", "bench/", "viewer/")) for name in names)


@pytest.mark.slow
def test_fresh_venv_install_builds_from_site_packages(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    # The fresh venv must see nothing of the outer environment (an inherited PYTHONPATH to a
    # source tree would make pip think render3d is already installed).
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "RENDER3D_CACHE_DIR": str(tmp_path / "cache")}
    # torch first, pinned to the CPU wheel on local disk; then the wheel with its dependencies
    for args in (["torch==2.13.0"], [str(wheel)]):
        install = subprocess.run([str(python), "-m", "pip", "install", "-q", *args], capture_output=True, text=True,
                                 timeout=900, env=env)
        assert install.returncode == 0, install.stderr
    probe = (
        "import torch, render3d, render3d.volume as v; from render3d.ops import _build;"
        "d = torch.rand(1, 4, 5, dtype=torch.float64); x = torch.rand(1, 4, 5, 3, dtype=torch.float64);"
        "t = torch.linspace(0, 1, 5, dtype=torch.float64).expand(1, 4, 5).contiguous();"
        "a = v.composite(d, x, t, t + 0.2, impl='native'); b = v.composite(d, x, t, t + 0.2, impl='torch');"
        "assert torch.allclose(a['values'], b['values']);"
        "import render3d_viewer, render3d.cli.view; assert render3d_viewer.open_source('sphere').name == 'sphere';"
        "print(render3d.__file__); print(_build.source_root())"
    )
    result = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, timeout=900, cwd=tmp_path,
                            env=env)
    assert result.returncode == 0, result.stderr
    module, sources = result.stdout.split()
    assert module.startswith(str(env_dir)) and sources.startswith(str(env_dir)) and sources.endswith("_csrc")
    assert list((tmp_path / "cache").glob("ext/*/BUILD_OK"))
