"""Gaussian-splat files: the 3DGS PLY layout read back by plyfile with exactly the property
names and order splat viewers expect, round trips, and `.splat`."""

import numpy as np
import pytest
import torch

from render3d.splat import load_ply, load_splat, rgb_to_sh, save_ply, save_splat


def gaussian_set(n=20, degree=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        "means": torch.randn(n, 3, generator=g),
        "quats": torch.nn.functional.normalize(torch.randn(n, 4, generator=g), dim=-1),
        "scales": torch.rand(n, 3, generator=g) * 0.1 + 0.01,
        "opacities": torch.rand(n, generator=g) * 0.98 + 0.01,
        "sh": torch.randn(n, (degree + 1) ** 2, 3, generator=g) * 0.3,
    }


@pytest.mark.parametrize("degree", [0, 1, 3])
def test_ply_round_trip_and_layout(tmp_path, degree):
    from plyfile import PlyData

    data = gaussian_set(degree=degree)
    path = save_ply(tmp_path / "splats.ply", **data)
    ply = PlyData.read(str(path))
    names = [p.name for p in ply["vertex"].properties]
    rest = 3 * ((degree + 1) ** 2 - 1)
    expected = (["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"] + [f"f_rest_{i}" for i in range(rest)]
                + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"])
    assert names == expected
    assert all(p.val_dtype in ("f4", "float32") for p in ply["vertex"].properties)
    assert ply.byte_order == "<" and not ply.text
    v = ply["vertex"].data
    # the stored encodings: logit opacity, log scales, channel-major f_rest
    np.testing.assert_allclose(v["opacity"], torch.logit(data["opacities"]).numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(v["scale_1"], torch.log(data["scales"][:, 1]).numpy(), rtol=1e-6)
    if degree:
        np.testing.assert_allclose(v["f_rest_0"], data["sh"][:, 1, 0].numpy(), rtol=1e-6)   # red, coefficient 1
        np.testing.assert_allclose(v[f"f_rest_{rest // 3}"], data["sh"][:, 1, 1].numpy(), rtol=1e-6)  # green
    back = load_ply(path)
    for key, value in data.items():
        torch.testing.assert_close(back[key], value, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("degree", [0, 3])
def test_an_empty_set_round_trips(tmp_path, degree):
    """A set pruned to nothing writes a valid file with no splats and reads back as one (the
    PLY writer and reader failed to reshape zero rows)."""
    data = gaussian_set(n=0, degree=degree)
    back = load_ply(save_ply(tmp_path / "none.ply", **data))
    assert {key: tuple(value.shape) for key, value in back.items()} == {key: tuple(value.shape)
                                                                        for key, value in data.items()}
    assert len(load_splat(save_splat(tmp_path / "none.splat", **gaussian_set(n=0, degree=0)))["means"]) == 0


def test_splat_round_trip_and_format(tmp_path):
    data = gaussian_set(n=50, degree=0)
    data["sh"] = rgb_to_sh(torch.rand(50, 1, 3, generator=torch.Generator().manual_seed(1)))
    path = save_splat(tmp_path / "scene.splat", **data)
    assert path.stat().st_size == 50 * 32
    back = load_splat(path)
    order = torch.argsort(-(data["scales"].prod(-1) * data["opacities"]), stable=True)
    torch.testing.assert_close(back["means"], data["means"][order])
    torch.testing.assert_close(back["scales"], data["scales"][order])
    torch.testing.assert_close(back["opacities"], data["opacities"][order], atol=1 / 255, rtol=0)
    torch.testing.assert_close(back["quats"], data["quats"][order], atol=1 / 128, rtol=0)
    sizes = back["scales"].prod(-1) * back["opacities"]
    assert bool((sizes[:-1] >= sizes[1:] - 1e-3).all())  # largest first, as the viewer expects


def test_bad_input(tmp_path):
    data = gaussian_set(degree=1)
    with pytest.raises(ValueError, match=r"save_ply: argument 'sh' expected 1, 4, 9 or 16 coefficients"):
        save_ply(tmp_path / "x.ply", **{**data, "sh": data["sh"][:, :3]})
    with pytest.raises(ValueError, match="argument 'scales' expected positive values"):
        save_ply(tmp_path / "x.ply", **{**data, "scales": -data["scales"]})
    with pytest.raises(ValueError, match="argument 'path' expected a file in an existing folder"):
        save_ply(tmp_path / "missing" / "x.ply", **data)
    (tmp_path / "mesh.ply").write_text("ply\nformat ascii 1.0\nelement face 0\nproperty list uchar int vertex_indices\n"
                                       "end_header\n")
    with pytest.raises(ValueError, match="has no 'vertex' element"):
        load_ply(tmp_path / "mesh.ply")
    nan_opacity = data["opacities"].index_fill(0, torch.tensor(3), np.nan)
    with pytest.raises(ValueError, match=r"save_splat: argument 'opacities' expected finite values, got nan at "
                                         r"index \(3,\)"):
        save_splat(tmp_path / "x.splat", **{**data, "opacities": nan_opacity})
    with pytest.raises(ValueError, match=r"save_ply: argument 'scales' expected finite values, got inf"):
        save_ply(tmp_path / "x.ply", **{**data, "scales": data["scales"].index_fill(0, torch.tensor(0), np.inf)})
    with pytest.raises(ValueError, match=r"save_ply: argument 'quats' expected non-zero quaternions, got a zero one "
                                         r"at index 2"):
        save_ply(tmp_path / "x.ply", **{**data, "quats": data["quats"].index_fill(0, torch.tensor(2), 0)})
    for load, name in ((load_ply, "a PLY file"), (load_splat, "a .splat file")):
        with pytest.raises(ValueError, match=f"argument 'path' expected {name}, got {tmp_path}, which is a folder"):
            load(tmp_path)
        with pytest.raises(ValueError, match=f"expected {name}, got {tmp_path / 'nope'}, which does not exist"):
            load(tmp_path / "nope")
    assert not list(tmp_path.glob("x.*"))


def _edit_ply(source, target, edit):
    from plyfile import PlyData, PlyElement

    vertex = PlyData.read(str(source))["vertex"].data
    PlyData([PlyElement.describe(edit(vertex), "vertex")]).write(str(target))
    return target


def test_log_scales_beyond_float32_stay_finite_splats(tmp_path):
    """A log-scale of -120 or 100 is a valid 3DGS PLY value whose exp float32 cannot hold (0
    and inf): it reads as e^-30 or e^30, whose squares projection can still take, and PLY ->
    PLY stays finite. It was refused as a scale of 0, or written back as inf."""
    def extreme(vertex):
        vertex = vertex.copy()
        vertex["scale_0"][:2] = (-120, 100)
        return vertex

    path = _edit_ply(save_ply(tmp_path / "a.ply", **gaussian_set(n=4, degree=1)), tmp_path / "b.ply", extreme)
    scales = load_ply(path)["scales"][:2, 0]
    torch.testing.assert_close(scales, torch.exp(torch.tensor([-30.0, 30.0])))
    back = load_ply(save_ply(tmp_path / "c.ply", **load_ply(path)))
    assert torch.isfinite(back["scales"]).all() and (back["scales"] > 0).all()
    torch.testing.assert_close(back["scales"], load_ply(path)["scales"], rtol=1e-5, atol=0)


def test_a_ply_that_is_not_one_number_per_property_is_named(tmp_path):
    """A list property where a number belongs, and extra properties whose name only looks
    like an SH coefficient (f_rest_a): the first is named, the second ignored as other
    extra properties are. They were 'setting an array element with a sequence' and
    "invalid literal for int() with base 10: 'a'"."""
    from plyfile import PlyData

    path = save_ply(tmp_path / "a.ply", **gaussian_set(n=3, degree=0))
    text = (b"ply\nformat ascii 1.0\nelement vertex 1\nproperty list uchar float x\n"
            + b"".join(f"property float {name}\n".encode() for name in ("y", "z", "f_dc_0", "f_dc_1", "f_dc_2",
                                                                        "opacity", "scale_0", "scale_1", "scale_2",
                                                                        "rot_0", "rot_1", "rot_2", "rot_3"))
            + b"end_header\n2 0 0 " + b"0 " * 13 + b"\n")
    (tmp_path / "list.ply").write_bytes(text)
    with pytest.raises(ValueError, match=r"list.ply has a property 'x' that is not one number per splat \(object\)"):
        load_ply(tmp_path / "list.ply")

    def extra(vertex):
        import numpy.lib.recfunctions as rf

        return rf.append_fields(vertex, "f_rest_a", np.ones(len(vertex), np.float32), usemask=False)

    back = load_ply(_edit_ply(path, tmp_path / "extra.ply", extra))
    assert back["sh"].shape == (3, 1, 3)
    assert "f_rest_a" in PlyData.read(str(tmp_path / "extra.ply"))["vertex"].data.dtype.names
