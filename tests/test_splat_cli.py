"""`render3d export-splat` as a user runs it: PLY to .splat and back, pruning, early errors."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from render3d.splat import load_ply, load_splat, save_ply

from test_splat_io import gaussian_set

SH_C0 = 0.5 / np.sqrt(np.pi)  # the degree-0 real spherical harmonic, Y_0^0


def run(*args):
    return subprocess.run([sys.executable, "-m", "render3d", "export-splat", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture()
def ply(tmp_path):
    data = gaussian_set(n=50, degree=3)
    return data, save_ply(tmp_path / "point_cloud.ply", **data)


def test_ply_to_splat_and_back(ply, tmp_path):
    data, path = ply
    result = run(path, "--out", tmp_path / "scene.splat")
    assert result.returncode == 0, result.stderr
    assert "50 splats" in result.stdout and "SH degree 0" in result.stdout
    splat = load_splat(tmp_path / "scene.splat")
    order = torch.argsort(-(data["scales"].prod(-1) * data["opacities"]), stable=True)
    torch.testing.assert_close(splat["means"], data["means"][order])
    torch.testing.assert_close(splat["opacities"], data["opacities"][order], atol=0.5 / 255 + 1e-6, rtol=0)
    rgb = (0.5 + SH_C0 * data["sh"][order, 0]).clamp(0, 1)
    torch.testing.assert_close(0.5 + SH_C0 * splat["sh"][:, 0], rgb, atol=0.5 / 255 + 1e-6, rtol=0)

    result = run(tmp_path / "scene.splat", "--out", tmp_path / "back.ply")
    assert result.returncode == 0, result.stderr
    back = load_ply(tmp_path / "back.ply")
    assert back["sh"].shape == (50, 1, 3)
    torch.testing.assert_close(back["scales"], data["scales"][order], rtol=1e-5, atol=0)
    q = torch.nn.functional.normalize(data["quats"][order], dim=-1)
    assert float((back["quats"] - q).abs().max()) <= 0.5 / 128 + 1e-6


def test_ply_to_ply_keeps_every_coefficient_and_prunes(ply, tmp_path):
    data, path = ply
    result = run(path, "--out", tmp_path / "pruned.ply", "--min-opacity", 0.5)
    assert result.returncode == 0, result.stderr
    keep = data["opacities"] >= 0.5
    assert f"{int(keep.sum())} splats ({int((~keep).sum())} below opacity 0.5 dropped)" in result.stdout
    assert "SH degree 3" in result.stdout
    back = load_ply(tmp_path / "pruned.ply")
    np.testing.assert_allclose(back["sh"].numpy(), data["sh"][keep].numpy(), rtol=1e-6)
    np.testing.assert_allclose(back["means"].numpy(), data["means"][keep].numpy())


@pytest.mark.parametrize("case, message", [
    ("bad-suffix", "--out expected a file ending in .ply or .splat"),
    ("missing", "SPLATS expected an existing file"),
    ("same-file", "--out expected a file other than SPLATS"),
    ("opacity", "--min-opacity expected a value in [0, 1)"),
    ("prune-all", "drops all 50 splats"),
    ("not-splats", "lacks the 3DGS properties"),
    ("not-ply", "expected a PLY file, got {dir}/text.ply, which plyfile cannot read: line 1: expected 'ply'"),
    ("cut-short", "which plyfile cannot read: element 'vertex': row 49: early end-of-file"),
    ("odd-splat", "expected a .splat file (records of 32 bytes), got {dir}/odd.splat: 33 bytes, not a multiple of 32"),
    ("empty-splat", "SPLATS expected Gaussian splats, got {dir}/empty.splat holding none"),
])
def test_bad_input_fails_clearly_and_writes_nothing(ply, tmp_path, case, message):
    _, path = ply
    out = tmp_path / "out.splat"
    args = {
        "bad-suffix": (path, "--out", tmp_path / "out.glb"),
        "missing": (tmp_path / "nope.ply", "--out", out),
        "same-file": (path, "--out", path),
        "opacity": (path, "--out", out, "--min-opacity", 1.5),
        "prune-all": (path, "--out", out, "--min-opacity", 0.9999),
        "not-splats": (tmp_path / "mesh.ply", "--out", out),
        "not-ply": (tmp_path / "text.ply", "--out", out),
        "cut-short": (tmp_path / "cut.ply", "--out", out),
        "odd-splat": (tmp_path / "odd.splat", "--out", tmp_path / "out.ply"),
        "empty-splat": (tmp_path / "empty.splat", "--out", tmp_path / "out.ply"),
    }[case]
    (tmp_path / "text.ply").write_text("solid cube\n")
    (tmp_path / "cut.ply").write_bytes(path.read_bytes()[:-10])
    (tmp_path / "odd.splat").write_bytes(bytes(33))
    (tmp_path / "empty.splat").write_bytes(b"")
    if case == "not-splats":
        import trimesh

        trimesh.creation.icosphere().export(tmp_path / "mesh.ply")
    result = run(*args)
    assert result.returncode == 2
    assert message.format(dir=tmp_path) in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert not out.exists() and not (tmp_path / "out.glb").exists() and not (tmp_path / "out.ply").exists()
