"""`render3d export-splat` as a user runs it: PLY to .splat and back, pruning, early errors."""


import numpy as np
import pytest
import torch
from _cli import run_cli
from _storage import size_limit

from render3d.splat import load_ply, load_splat, save_ply

from test_splat_io import gaussian_set

SH_C0 = 0.5 / np.sqrt(np.pi)  # the degree-0 real spherical harmonic, Y_0^0


def run(*args):
    return run_cli("export-splat", *args, timeout=120)


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
    ("not-ply", "render3d export-splat: SPLATS expected a PLY file, got {dir}/text.ply, which plyfile cannot read "
                "(PlyHeaderParseError: line 1: expected 'ply')"),
    ("cut-short", "which plyfile cannot read (PlyElementParseError: element 'vertex': row 49: early end-of-file)"),
    ("folder", "SPLATS expected an existing file, got {dir}/folder.ply"),
    ("out-under-a-file", "--out' expected a writable path, got {dir}/point_cloud.ply/out.splat "
                         "({dir}/point_cloud.ply is a file, not a folder)"),
    ("ply-named-splat", "render3d export-splat: SPLATS expected a .splat file, got {dir}/renamed.splat, "
                        "which is a PLY file (it starts with 'ply'): read it with load_ply, or name it .ply"),
    ("not-finite", "SPLATS expected finite splats with positive scales and non-zero quaternions, got {dir}/nan.ply "
                   "with 4 that are not (1 in means, 1 in quats, 2 in opacities; splats 0, 4, 7, 9)"),
    ("odd-splat", "SPLATS expected a .splat file (records of 32 bytes), got {dir}/odd.splat: "
                  "33 bytes, not a multiple of 32"),
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
        "folder": (tmp_path / "folder.ply", "--out", tmp_path / "out.ply"),
        "out-under-a-file": (path, "--out", path / "out.splat"),
        "ply-named-splat": (tmp_path / "renamed.splat", "--out", tmp_path / "out.ply"),
        "not-finite": (tmp_path / "nan.ply", "--out", out),
    }[case]
    (tmp_path / "text.ply").write_text("solid cube\n")
    (tmp_path / "cut.ply").write_bytes(path.read_bytes()[:-10])
    (tmp_path / "odd.splat").write_bytes(bytes(33))
    (tmp_path / "empty.splat").write_bytes(b"")
    (tmp_path / "renamed.splat").write_bytes(path.read_bytes())
    (tmp_path / "folder.ply").mkdir()
    data = gaussian_set(n=50, degree=3)
    data["means"][7, 1] = float("nan")
    data["opacities"][[0, 9]] = float("nan")
    data["quats"][4] = 0                              # the viewer opened it, then failed at every frame
    _save_unchecked_ply(tmp_path / "nan.ply", data)
    if case == "not-splats":
        import trimesh

        trimesh.creation.icosphere().export(tmp_path / "mesh.ply")
    result = run(*args)
    assert result.returncode == 2
    assert message.format(dir=tmp_path) in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert not out.exists() and not (tmp_path / "out.glb").exists() and not (tmp_path / "out.ply").exists()


def _save_unchecked_ply(path, data):
    """A 3DGS PLY holding what save_ply refuses (NaN, zero quaternions), as other tools may
    write it."""
    from plyfile import PlyData, PlyElement

    good = save_ply(path.with_name("good.ply"), **{**data, "means": data["means"].nan_to_num(),
                                                   "opacities": data["opacities"].nan_to_num(0.5),
                                                   "quats": torch.ones_like(data["quats"])})
    vertex = PlyData.read(str(good))["vertex"].data.copy()
    vertex["y"] = data["means"][:, 1].numpy()
    for i in range(4):
        vertex[f"rot_{i}"] = data["quats"][:, i].numpy()
    vertex["opacity"][data["opacities"].isnan().numpy()] = np.nan
    PlyData([PlyElement.describe(vertex, "vertex")]).write(str(path))


def test_a_write_that_fails_keeps_the_old_file_and_says_why(ply, tmp_path):
    """A file-size limit (as a full disk) stops the write: one line naming --out, exit status 1,
    and the file that was there is left whole. It was a traceback, and the old file was cut
    off at the limit."""
    data, path = ply
    for suffix in (".ply", ".splat"):
        out = tmp_path / f"previous{suffix}"
        out.write_bytes(b"x" * 1000)
        result = run_cli("export-splat", path, "--out", out, timeout=120, preexec_fn=size_limit(1024))
        assert result.returncode == 1, result.stderr
        assert result.stderr == f"render3d export-splat: cannot write {out}: File too large; free space or write " \
                                "elsewhere\n"
        assert out.read_bytes() == b"x" * 1000
        assert sorted(p.name for p in tmp_path.iterdir()) == ["point_cloud.ply", f"previous{suffix}"]
        out.unlink()
