"""`render3d demo` with the shipped VolumeGAN checkpoint: an orbit video, a grid of views with
depth and coloured meshes for the seeds, the paths printed; failures before any work on an
unwritable output folder, bad sizes or a missing checkpoint."""

import re

import imageio.v3 as iio
import numpy as np
from _cli import run_cli

from render3d import DEMO_CHECKPOINT
from render3d.mesh import load_mesh
from render3d.training import load_generator


def demo(*args, timeout=300):
    return run_cli("demo", *args, timeout=timeout)


def test_the_demo_checkpoint_ships_and_is_small():
    assert DEMO_CHECKPOINT.is_file()
    assert DEMO_CHECKPOINT.stat().st_size < 5 * 2 ** 20
    G, meta = load_generator(DEMO_CHECKPOINT)
    assert meta["generator_type"] == "volumegan" and meta["training"]["nimg"] > 10_000


def test_a_device_this_machine_lacks_is_named():
    """Loading onto a CUDA device torch does not see (one index past those it has) names the
    device; it was torch's AssertionError or "invalid device ordinal" after reading the file.
    The viewer's generator source loads through load_generator, so it says the same."""
    import pytest
    import torch

    from render3d_viewer.generator import GeneratorSource

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    expected = (f"load_generator: argument 'device' expected a device this machine has, got 'cuda:{count}' while "
                f"torch sees {count} CUDA device(s)")
    for load in (load_generator, GeneratorSource):
        with pytest.raises(ValueError, match=re.escape(expected)):
            load(DEMO_CHECKPOINT, device=f"cuda:{count}")
    with pytest.raises(ValueError, match=re.escape("load_generator: argument 'device' expected a torch device")):
        load_generator(DEMO_CHECKPOINT, device="gpu")


def test_the_demo_checkpoint_has_solid_surfaces():
    """Its rendered opacity is mostly solid, not fog the 2D renderer paints over (the earlier
    checkpoint, trained without the opacity entropy, had no pixel above 0.9), and its depth
    lies inside the generator's box where it is solid."""
    from render3d.generators.sampling import latents_from_seeds, render_views, view_cameras

    G, meta = load_generator(DEMO_CHECKPOINT)
    ws = G.mapping(latents_from_seeds(list(range(6)), G.z_dim))
    views = render_views(G, ws, view_cameras(meta["view"], 3, G.resolutions[-1]))
    alpha, depth = views["alpha"], views["depth"]
    covered, solid = alpha > 0.1, alpha > 0.9
    assert solid.sum() > 0.8 * covered.sum() and covered.float().mean() > 0.05
    distance_to_box_centre = meta["view"]["radius"]
    assert (depth[solid] - distance_to_box_centre).abs().max() < 0.5 * 3**0.5  # within the [-0.5, 0.5]^3 box


def test_orbit_video_of_many_subjects_wraps_into_rows():
    """Up to 8 subjects stand side by side; more start another row, the short last row filled
    with white, each tile the subject's own orbit."""
    import torch

    from render3d.generators.sampling import ORBIT_COLUMNS, latents_from_seeds, orbit_frames

    G, meta = load_generator(DEMO_CHECKPOINT)
    ws = G.mapping(latents_from_seeds(list(range(ORBIT_COLUMNS + 2)), G.z_dim))
    frames = orbit_frames(G, ws, meta["view"], 2, 64)
    assert frames.shape == (2, 3, 128, 64 * ORBIT_COLUMNS)
    assert torch.equal(frames[:, :, :64, :], orbit_frames(G, ws[:ORBIT_COLUMNS], meta["view"], 2, 64))
    assert torch.equal(frames[:, :, 64:, 64:128], orbit_frames(G, ws[ORBIT_COLUMNS + 1:], meta["view"], 2, 64))
    assert (frames[:, :, 64:, 128:] == 1).all()


def test_demo_writes_video_views_and_meshes(tmp_path):
    result = demo("--out", str(tmp_path), "--seeds", "0-1", "--views", "3", "--frames", "4", "--mesh-resolution", "32")
    assert result.returncode == 0, result.stderr
    for bar in ("orbit: 100%| 4/4", "views: 100%| 6/6", "meshes: 100%| 2/2"):   # progress is shown
        assert bar in re.sub(r"\|[^|]*\|", "|", result.stderr), bar
    video, grid = tmp_path / "orbit.mp4", tmp_path / "views.png"
    meshes = [tmp_path / "seed0.glb", tmp_path / "seed1.glb"]
    for path in (video, grid, *meshes):
        assert str(path.resolve()) in result.stdout
    frames = iio.imread(video)
    assert frames.shape == (4, 64, 128, 3)                     # two 64 px subjects side by side
    assert frames.std() > 10                                   # not blank
    assert np.abs(frames[0].astype(int) - frames[2].astype(int)).mean() > 2   # the orbit moves
    # per seed a row of 3 views and a row of their depth maps, 64 px with 2 px padding
    assert iio.imread(grid).shape == (2 + 4 * 66, 2 + 3 * 66, 3)
    for path in meshes:
        mesh = load_mesh(path)
        assert len(mesh.faces) > 100
        assert len(np.unique(mesh.visual.vertex_colors[:, :3], axis=0)) > 10   # coloured from the field


def test_demo_rejects_unwritable_output(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = demo("--out", str(blocker / "sub"), timeout=120)
    assert result.returncode == 2
    assert "render3d demo: cannot write to --out" in result.stderr


def test_demo_rejects_bad_sizes_and_a_missing_checkpoint(tmp_path):
    result = demo("--out", str(tmp_path), "--frames", "0", timeout=120)
    assert result.returncode == 2 and "--frames expected a positive number, got 0" in result.stderr
    result = demo("--out", str(tmp_path), "--checkpoint", str(tmp_path / "none.safetensors"), timeout=120)
    assert result.returncode == 2 and "which does not exist" in result.stderr
    assert not (tmp_path / "orbit.mp4").exists()
