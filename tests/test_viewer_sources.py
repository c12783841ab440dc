"""What the viewer can show: choosing a source from TARGET, rendering every mode, the
downloads (read back by trimesh and render3d's own PLY reader), splats for the browser,
the procedural seed, a trained generator (its framing, seeds, interpolation and non-square
cameras), cancellation, and orbit videos' cameras."""

import io
import math
import re
import shutil

import numpy as np
import pytest
import torch
import trimesh
from _gan import add_run_checkpoint, diverged_generator

from render3d import DEMO_CHECKPOINT
from render3d.cameras import Cameras, intrinsics_from_fov
from render3d.generators.sampling import latents_from_seeds, render_views, view_cameras as generator_cameras
from render3d.mesh import load_mesh
from render3d.splat import load_ply, save_ply
from render3d_viewer.actions import View, orbit_cameras, render_view, snapshot_png, view_cameras
from render3d_viewer.generator import GeneratorSource
from render3d_viewer.loop import RenderCancelled
from render3d_viewer.sources import MeshSource, SplatSource, Splats, open_source, picture

SIZE = 24


def camera(source, size=SIZE):
    return source.framing.cameras(1, size)


def no_progress(fraction, text):
    assert 0 <= fraction <= 1 and text


@pytest.fixture(scope="module")
def splat_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("splats") / "blob.ply"
    generator = torch.Generator().manual_seed(0)
    n = 200
    means = torch.randn(n, 3, generator=generator) * 0.3
    rgb = torch.rand(n, 3, generator=generator)
    sh = torch.zeros(n, 4, 3)
    sh[:, 0] = (rgb - 0.5) / 0.28209479177387814
    save_ply(path, means, torch.tensor([[1.0, 0.0, 0.0, 0.0]]).expand(n, 4), torch.full((n, 3), 0.05),
             torch.full((n,), 0.8), sh)
    return path


@pytest.fixture(scope="module")
def mesh_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("mesh") / "box.glb"
    box = trimesh.creation.box((0.8, 0.5, 0.6))
    box.visual = trimesh.visual.ColorVisuals(box, vertex_colors=np.tile([200, 40, 40, 255], (len(box.vertices), 1)))
    box.export(path)
    return path


@pytest.fixture(scope="module")
def generator():
    return open_source(None)


def test_targets_pick_their_source(splat_file, mesh_file, tmp_path, generator):
    assert isinstance(generator, GeneratorSource) and generator.name == "volumegan_synth64"  # the shipped demo
    # a run folder (its newest checkpoint) and a checkpoint folder are generators too
    checkpoint = tmp_path / "run" / "checkpoints" / "step-0000010"
    checkpoint.mkdir(parents=True)
    shutil.copy(DEMO_CHECKPOINT, checkpoint / "generator.safetensors")
    (checkpoint / "state.json").write_text("{}")
    for target in (tmp_path / "run", checkpoint):
        source = open_source(target)
        assert isinstance(source, GeneratorSource) and source.name == "run_step-0000010"
    assert open_source("torus").name == "torus"
    assert isinstance(open_source(str(splat_file)), SplatSource)
    assert isinstance(open_source(str(mesh_file)), MeshSource)
    plain_ply = tmp_path / "box.ply"
    trimesh.creation.box().export(plain_ply)
    assert isinstance(open_source(str(plain_ply)), MeshSource)  # a PLY without 3DGS properties is a mesh
    with pytest.raises(ValueError, match=r"viewer.open_source: argument 'target' expected a scene name \(demo, .*"
                                         r"procedural\), an existing file, or a checkpoint or run folder, "
                                         r"got 'nowhere'"):
        open_source("nowhere")
    (tmp_path / "empty").mkdir()
    (tmp_path / "run0" / "checkpoints").mkdir(parents=True)    # a run that has not written a checkpoint yet
    (tmp_path / "run1").mkdir()                                 # one that has only begun: no checkpoints/ yet
    (tmp_path / "run1" / "config.yaml").write_text("checkpoint_every: 250\n")
    for folder, found in (("empty", "a folder with neither generator.safetensors nor checkpoints/"),
                          ("run0", "a run folder without a checkpoint yet (training writes the first after "
                                   "checkpoint_every steps, and at Ctrl-C)"),
                          ("run1", "a run folder without a checkpoint yet (training writes the first after 250 "
                                   "steps (checkpoint_every), and at Ctrl-C)")):
        with pytest.raises(ValueError, match=re.escape(f"viewer.open_source: argument 'target' expected a generator "
                                                       f"file (.safetensors), a checkpoint folder or a run folder "
                                                       f"with checkpoints, got {tmp_path / folder}, {found}")):
            open_source(tmp_path / folder)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ValueError, match=r"expected a generator \(.safetensors\), a 3DGS PLY or a mesh file"):
        open_source(str(text))
    none = save_ply(tmp_path / "none.ply", torch.zeros(0, 3), torch.zeros(0, 4), torch.zeros(0, 3), torch.zeros(0),
                    torch.zeros(0, 1, 3))                   # a 3DGS PLY pruned to nothing: failed in torch.quantile
    with pytest.raises(ValueError, match=r"viewer.SplatSource: argument 'path' expected Gaussian splats, got "
                                         r".*none.ply holding none"):
        open_source(str(none))


def test_a_generator_whose_densities_are_nan_is_refused_when_opened(tmp_path):
    """A diverged generator was served: every render failed, each a logged traceback, and the
    page stayed blank."""
    diverged = diverged_generator(tmp_path / "diverged.safetensors")
    with pytest.raises(ValueError, match=re.escape(f"viewer.GeneratorSource: argument 'path' expected a generator "
                                                   f"whose densities are finite, got {diverged}, whose density at the "
                                                   f"centre of seed 0's subject is nan (did its training diverge?)")):
        open_source(str(diverged))


def test_a_generator_still_growing_is_said_in_the_page(tmp_path):
    """A checkpoint from early in a progressive run pictures its stage (VolumeGAN.set_stage);
    the page says so beside the frame rate until a grown checkpoint is followed."""
    run = tmp_path / "run"
    add_run_checkpoint(run, 1, lambda G: G.set_stage(G.resolutions[-2], 0.5))
    source = open_source(str(run))
    half = source.G.resolutions[-2]
    assert source.G.stage == (half, 0.5)
    assert source.state == f"still growing: its {half} px stage, fading in at 0.50, up-sampled"
    add_run_checkpoint(run, 2)
    assert source.follow() == "step-0000002" and source.state == ""


def test_a_run_folder_is_followed_to_its_newest_checkpoint(tmp_path):
    """The viewer on a training run shows each newer checkpoint as training writes it: the
    generator, its name and the cached styles change; a diverged one is said once and the one
    shown stays; a checkpoint folder or a generator file is shown as it is."""
    run = tmp_path / "run"
    add_run_checkpoint(run, 1)
    source = open_source(str(run))
    assert source.follows and source.name == "run_step-0000001" and source.follow() is None
    cams = camera(source)
    before = source.render(cams, "rgb", {"seed": 3}, lambda: False)["image"]
    styles = source.ws({"seed": 3})
    # another subject for every seed: the mapping's first layer, negated
    add_run_checkpoint(run, 2, lambda G: G.mapping_network.layers[0].weight.neg_())
    assert source.follow() == "step-0000002" and source.name == "run_step-0000002"
    fresh = GeneratorSource(run / "checkpoints" / "step-0000002")
    assert all(torch.equal(a, b) for a, b in zip(source.G.state_dict().values(), fresh.G.state_dict().values()))
    assert not torch.allclose(source.ws({"seed": 3}), styles)                  # not the cached styles
    assert torch.equal(source.ws({"seed": 3}), fresh.ws({"seed": 3}))
    after = source.render(cams, "rgb", {"seed": 3}, lambda: False)["image"]
    assert torch.equal(after, fresh.render(cams, "rgb", {"seed": 3}, lambda: False)["image"])
    assert (after - before).abs().mean() > 0.01
    assert source.follow() is None
    add_run_checkpoint(run, 3, lambda G: G.density_head.weight.fill_(float("nan")))
    with pytest.raises(ValueError, match=re.escape(f"step-0000003 of {run} is not shown, step-0000002 stays: "
                                                   f"viewer.GeneratorSource: argument 'path' expected a generator "
                                                   f"whose densities are finite")):
        source.follow()
    assert source.follow() is None and source.name == "run_step-0000002"      # said once, not again
    assert not GeneratorSource(run / "checkpoints" / "step-0000002").follows
    assert not open_source(None).follows


@pytest.mark.parametrize("target", ["sphere", "splats", "mesh", "generator"])
def test_every_mode_renders_a_picture(target, splat_file, mesh_file):
    source = open_source({"sphere": "sphere", "splats": str(splat_file), "mesh": str(mesh_file),
                          "generator": None}[target])
    cameras = camera(source)
    for mode in source.modes:
        views = source.render(cameras, mode, source.defaults(), lambda: False)
        image = picture(views, mode)
        assert image.shape == (SIZE, SIZE, 3) and image.dtype == np.uint8
        assert image.std() > 5, f"{target} {mode} is a flat picture"
    rgb = picture(source.render(cameras, "rgb", {}, lambda: False), "rgb").astype(float)
    alpha = picture(source.render(cameras, "alpha", {}, lambda: False), "alpha").astype(float)
    assert np.abs(rgb - alpha).mean() > 5


def test_splats_have_no_normals_mode(splat_file):
    assert open_source(str(splat_file)).modes == ("rgb", "depth", "alpha")
    with pytest.raises(ValueError, match="argument 'mode' expected one of 'rgb', 'depth', 'normals', 'alpha', got 'x'"):
        picture({"alpha": torch.zeros(1, 1, 2, 2)}, "x")


def test_field_render_stops_when_cancelled(generator):
    source = open_source("sphere")
    with pytest.raises(RenderCancelled):
        source.render(camera(source, 128), "rgb", {}, lambda: True)
    with pytest.raises(RenderCancelled):
        generator.render(camera(generator), "rgb", {}, lambda: True)


def test_generator_starts_at_its_front_view_and_renders_what_sampling_renders(generator):
    G, view = generator.G, generator.meta["view"]
    size = G.resolutions[-1]
    front = generator_cameras(view, 1, size)
    torch.testing.assert_close(generator.framing.cameras(1, size).cam2world, front.cam2world)
    assert generator.framing.fov_degrees == view["fov_degrees"]
    # the viewer's styles are seed 5's (up to rounding: it maps two seeds at once, the second for
    # its interpolation), and at the generator's own size its picture is render3d render's of
    # them, not resampled (up to rounding: it rebuilds the intrinsics from the FOV)
    settings = {"seed": 5, "truncation": 0.5}
    ws = generator.ws(settings)
    torch.testing.assert_close(ws, G.mapping(latents_from_seeds([5], G.z_dim), truncation=0.5), rtol=0, atol=1e-6)
    expected = render_views(G, ws, front)
    views = generator.render(front, "rgb", settings, lambda: False)
    torch.testing.assert_close(views["image"], expected["image"][0], rtol=0, atol=2e-5)
    n = expected["depth"].shape[-1]
    depth = generator.render(front.resized(n, n), "depth", settings, lambda: False)["depth"]
    torch.testing.assert_close(depth, expected["depth"][0], rtol=0, atol=2e-5)


@pytest.mark.parametrize("width, height", [(96, 48), (40, 80)])
def test_generator_pictures_of_any_shape_are_crops_not_stretches(generator, width, height):
    """A camera of another shape sees the middle of the square picture with the same focal
    length in pixels (so the subject keeps its proportions)."""
    front = generator_cameras(generator.meta["view"], 1, 8)
    side = max(width, height)
    fov = generator.meta["view"]["fov_degrees"]
    square = Cameras(front.cam2world, intrinsics_from_fov(fov, side, side), side, side)
    focal = 0.5 / math.tan(math.radians(fov) / 2) * side           # pixels
    vertical = math.degrees(2 * math.atan(height / (2 * focal)))
    shaped = Cameras(front.cam2world, intrinsics_from_fov(vertical, width, height), width, height)
    whole = generator.render(square, "rgb", {}, lambda: False)["image"]
    crop = generator.render(shaped, "rgb", {}, lambda: False)["image"]
    assert crop.shape == (1, 3, height, width)
    top, left = (side - height) // 2, (side - width) // 2
    # up to float32 rounding of the FOV round trip; a stretch would differ by far more:
    torch.testing.assert_close(crop, whole[..., top:top + height, left:left + width], rtol=0, atol=5e-5)
    stretched = torch.nn.functional.interpolate(whole, size=(height, width), mode="bilinear", antialias=True)
    assert (crop - stretched).abs().mean() > 0.01


def test_generator_normals_are_its_density_gradients(generator, monkeypatch):
    """With the generator's density replaced by a ball's, the normals mode shows the ball's
    outward normals (from the ray-sphere hit points), unit length, in world space."""
    radius = 0.3

    def ball(points, ws):
        return 200 * torch.sigmoid((radius - points.norm(dim=-1)) / 0.01)

    monkeypatch.setattr(generator.G, "density", ball)
    cameras = camera(generator, 40)
    views = generator.render(cameras, "normals", {}, lambda: False)
    normals = views["normals"][0].permute(1, 2, 0).reshape(-1, 3)
    assert not normals.requires_grad
    origins, directions = (t[0].double() for t in cameras.generate_rays())
    b = (origins * directions).sum(-1)
    disc = b * b - (origins.square().sum(-1) - radius**2)
    inside = disc > 0.02 * radius**2                      # rays that hit the ball, away from its rim
    t_hit = -b - disc.clamp_min(0).sqrt()
    expected = (origins + t_hit[:, None] * directions) / radius
    assert inside.sum() > 100
    cosine = (normals.double()[inside] * expected[inside]).sum(-1)
    assert cosine.mean() > 0.99 and cosine.min() > 0.9


def test_generator_seeds_truncation_and_interpolation(generator):
    cameras = camera(generator, 32)

    def rgb(**settings):
        return generator.render(cameras, "rgb", settings, lambda: False)["image"]

    assert [p.name for p in generator.parameters] == ["seed", "truncation", "seed_b", "mix"]
    seed0, seed1 = rgb(seed=0), rgb(seed=1)
    assert (seed0 - seed1).abs().mean() > 0.01
    assert (rgb(seed=0, truncation=0.0) - rgb(seed=1, truncation=0.0)).abs().max() < 1e-6  # both the mean w
    # the interpolation runs from seed to seed_b in w space
    torch.testing.assert_close(rgb(seed=0, seed_b=1, mix=0.0), seed0)
    torch.testing.assert_close(rgb(seed=0, seed_b=1, mix=1.0), seed1, rtol=0, atol=1e-5)
    halfway = rgb(seed=0, seed_b=1, mix=0.5)
    assert min((halfway - seed0).abs().mean(), (halfway - seed1).abs().mean()) > 0.002


def test_generator_download_is_a_coloured_glb_inside_its_box(generator, tmp_path, monkeypatch):
    monkeypatch.setattr(generator, "mesh_resolution", 48)
    name, content = generator.download({"seed": 2, "mix": 0.25, "seed_b": 7}, no_progress)
    assert name == "volumegan_synth64_seed2-seed7_mix0.25.glb"
    (tmp_path / name).write_bytes(content)
    mesh = trimesh.load(tmp_path / name, force="mesh")
    assert len(mesh.faces) > 100
    lo, hi = np.array(generator.G.bbox)
    cell = (hi - lo) / 47  # the surface closes within a grid cell of the box's faces
    assert (mesh.bounds[0] >= lo - cell).all() and (mesh.bounds[1] <= hi + cell).all()
    colors = load_mesh(tmp_path / name).visual.vertex_colors[:, :3].astype(float)
    assert colors.std(0).max() > 5


def test_procedural_seed_changes_the_object():
    source = open_source("procedural")
    assert [p.name for p in source.parameters] == ["seed"]
    cameras = camera(source, 32)
    first, again, other = (picture(source.render(cameras, "rgb", {"seed": s}, lambda: False), "rgb").astype(float)
                           for s in (0, 0, 1))
    assert np.array_equal(first, again)
    assert np.abs(first - other).mean() > 2


def test_settings_outside_their_sliders_are_named(generator):
    """{} was KeyError 'seed' for the procedural source, seed -1 numpy's 'expected non-negative
    integer', 2.5 drew seed 2 and named the download seed2.5; mix NaN and truncation 1e30
    failed deep in the renderer. Missing names take their defaults."""
    from render3d_viewer.actions import orbit_cameras
    from render3d_viewer.sources import Parameter

    procedural = open_source("procedural")
    assert procedural.resolve({}) == {"seed": 0}
    for source, settings, message in (
            (procedural, {"seed": -1}, "FieldSource: setting 'seed' expected a whole number in 0..999, got -1"),
            (procedural, {"seed": 2.5}, "FieldSource: setting 'seed' expected a whole number in 0..999, got 2.5"),
            (generator, {"mix": math.nan}, "GeneratorSource: setting 'mix' expected a number in 0.0..1.0, got nan"),
            (generator, {"truncation": 1e30}, "GeneratorSource: setting 'truncation' expected a number in 0.0..1.0")):
        with pytest.raises(ValueError, match=re.escape(message)):
            source.render(camera(source, 8), "rgb", settings, lambda: False)
    with pytest.raises(ValueError, match="Parameter 'a': expected low <= default <= high and step > 0"):
        Parameter("a", "A", 5, 10, 0)
    with pytest.raises(ValueError, match="orbit_cameras: argument 'frames' expected a positive int, got 0"):
        orbit_cameras(looking_at((0.0, 0.0, 3.0)), 0, 16)       # was a ZeroDivisionError


def test_field_download_is_a_coloured_glb(tmp_path):
    source = open_source("sphere")
    source.mesh_resolution = 32
    name, content = source.download({}, no_progress)
    assert name == "sphere.glb"
    assert len(trimesh.load(io.BytesIO(content), file_type="glb", force="mesh").faces) > 100
    (tmp_path / name).write_bytes(content)
    mesh = load_mesh(tmp_path / name)  # reads COLOR_0 as vertex colours
    assert len(mesh.faces) > 100
    extent = mesh.bounds[1] - mesh.bounds[0]
    np.testing.assert_allclose(extent, [1.0, 1.0, 1.0], atol=0.08)  # the sphere of radius 0.5
    colors = mesh.visual.vertex_colors[:, :3].astype(float)
    assert colors.std(0).min() > 10  # coloured by direction, not one grey


def test_mesh_and_splat_downloads(mesh_file, splat_file, tmp_path):
    name, content = open_source(str(mesh_file)).download({}, no_progress)
    assert name == "box.glb"
    mesh = trimesh.load(io.BytesIO(content), file_type="glb", force="mesh")
    np.testing.assert_allclose(mesh.bounds[1] - mesh.bounds[0], [0.8, 0.5, 0.6], atol=1e-6)
    name, content = open_source(str(splat_file)).download({}, no_progress)
    (tmp_path / name).write_bytes(content)
    torch.testing.assert_close(load_ply(tmp_path / name)["means"], load_ply(splat_file)["means"])


def test_splats_for_the_browser(splat_file):
    source = open_source(str(splat_file))
    splats = source.client_geometry()
    assert isinstance(splats, Splats)
    n = len(splats.centers)
    assert splats.covariances.shape == (n, 3, 3) and splats.opacities.shape == (n, 1)
    np.testing.assert_allclose(splats.covariances[0], np.eye(3) * 0.05**2, atol=1e-7)  # identity rotation
    loaded = load_ply(splat_file)
    np.testing.assert_allclose(splats.rgbs, (0.5 + 0.28209479177387814 * loaded["sh"][:, 0]).numpy(), atol=1e-6)
    assert open_source("torus").client_geometry() is None


def looking_at(eye, target=(0.0, 0.0, 0.0)) -> View:
    cameras = Cameras.look_at(torch.tensor([eye], dtype=torch.float64), target, width=8, height=8, fov_degrees=40.0)
    import viser.transforms as vtf

    wxyz = vtf.SO3.from_matrix(cameras.cam2world[0, :3, :3].numpy()).wxyz
    return View(tuple(wxyz), tuple(eye), tuple(target), math.radians(40.0), 1.5)


def test_orbit_cameras_turn_around_the_orbit_point():
    view = looking_at((1.0, 0.8, 2.0), (0.1, 0.0, 0.0))
    cameras = orbit_cameras(view, 12, 30)
    assert (len(cameras), cameras.width, cameras.height) == (12, 30, 20)
    torch.testing.assert_close(cameras[0].cam2world, view_cameras(view, 30).cam2world)
    offsets = cameras.centers - torch.tensor([0.1, 0.0, 0.0])
    torch.testing.assert_close(offsets.norm(dim=-1), offsets[:1].norm(dim=-1).expand(12))
    torch.testing.assert_close(cameras.centers[:, 1], torch.full((12,), 0.8))  # a level turn
    uv, _ = cameras.project(torch.tensor([[0.1, 0.0, 0.0]]).expand(12, 1, 3))
    torch.testing.assert_close(uv[:, 0], torch.tensor([15.0, 10.0]).expand(12, 2), atol=1e-4, rtol=0)
    # a quarter turn later the camera has gone a quarter of the way round +Y
    torch.testing.assert_close(offsets[3], torch.tensor([offsets[0, 2], 0.8, -offsets[0, 0]]), atol=1e-5, rtol=0)


def test_snapshot_is_a_png_of_the_view():
    import imageio.v3 as iio

    source = open_source("sphere")
    view = looking_at((0.0, 0.0, 2.5))
    image = iio.imread(io.BytesIO(snapshot_png(source, view, 30)), extension=".png")
    np.testing.assert_array_equal(image, render_view(source, view, 30))
    assert image.shape == (20, 30, 3)
