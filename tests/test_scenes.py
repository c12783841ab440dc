"""Named scenes (the renderables of `render3d render` / `export-mesh`), orbit framings and
multi-view renders."""

import errno
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from _storage import oserror_under_a_size_limit

from render3d.cameras import Framing
from render3d.mesh import extract_mesh
from render3d.visualize import views_grid
from render3d.volume import make_scene, register_scene, render_orbit, render_views, scene_names


def test_unknown_scene_lists_the_valid_names():
    with pytest.raises(ValueError, match=r"make_scene: argument 'name' expected one of 'demo', 'sphere', 'torus', "
                                         r"'gyroid', 'box', got 'teapot'"):
        make_scene("teapot")
    with pytest.raises(ValueError, match="register_scene: argument 'name' expected a new non-empty name, got 'demo'"):
        register_scene("demo", lambda: None, "again")


def test_scene_options_and_factories_are_checked():
    """An option the scene does not take was the factory's TypeError; a list as the name was
    'unhashable type'; a factory that is not callable, or returns no Scene, failed later."""
    from render3d.volume import scenes

    with pytest.raises(ValueError, match=re.escape("make_scene: argument 'options' expected what the scene 'sphere' "
                                                   "takes (radius), got colour")):
        make_scene("sphere", colour=1)
    with pytest.raises(ValueError, match=re.escape("make_scene: argument 'name' expected one of")):
        make_scene(["sphere"])
    with pytest.raises(ValueError, match="register_scene: argument 'factory' expected a callable returning a Scene, "
                                         "got int"):
        register_scene("forty-two", 42, "not a factory")
    register_scene("not-a-scene", lambda: 3, "returns a number")
    try:
        with pytest.raises(ValueError, match="make_scene: the factory of 'not-a-scene' expected to return a Scene, "
                                             "returned int"):
            make_scene("not-a-scene")
    finally:
        del scenes.SCENES["not-a-scene"]
    assert make_scene("sphere", radius=0.3).framing.radius < make_scene("sphere").framing.radius


@pytest.mark.parametrize("name", scene_names())
def test_every_scene_has_a_surface_in_its_box_and_in_view(name):
    scene = make_scene(name)
    mesh = extract_mesh(scene.field.density, scene.bbox, 40, color_fn=scene.field.color, clean=False)
    assert len(mesh.faces) > 100 and mesh.volume > 0
    cameras = scene.framing.cameras(6, 64)
    uv, depth = cameras.project(torch.tensor(mesh.vertices, dtype=torch.float32).expand(6, -1, -1))
    assert bool((depth > 0).all())
    in_view = float(((uv > 0) & (uv < 64)).all(-1).float().mean())
    # the whole object in every view; the demo's framing crops its floor's corners by design
    assert in_view == 1.0 or (name == "demo" and in_view > 0.95)


def test_framing_around_a_box_keeps_it_in_view_from_every_side():
    lo, hi = [-0.3, 0.1, -0.9], [0.5, 0.4, 0.2]
    framing = Framing.around(lo, hi, elevation=-0.4)
    corners = torch.tensor([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    cameras = framing.cameras(8, 100, 60)
    uv, depth = cameras.project(corners.expand(8, -1, -1))
    assert bool((depth > 0).all()) and bool((uv[..., 0] > 0).all() and (uv[..., 0] < 100).all())
    assert bool((uv[..., 1] > 0).all() and (uv[..., 1] < 60).all())
    assert torch.allclose(cameras.centers[:, 1], torch.tensor(0.25 + framing.radius * math.sin(-0.4)))
    with pytest.raises(ValueError, match="Framing: argument 'elevation' expected radians in"):
        Framing(2.0, elevation=2.0)


def test_render_views_and_orbit_of_a_scene():
    scene = make_scene("sphere")
    views = render_views(scene, scene.framing.cameras(2, 24), n_coarse=32, n_fine=32)
    assert {k: tuple(v.shape) for k, v in views.items()} == {
        "image": (2, 3, 24, 24), "depth": (2, 1, 24, 24), "alpha": (2, 1, 24, 24), "normals": (2, 3, 24, 24)}
    centre = views["depth"][:, 0, 11:13, 11:13]
    assert torch.allclose(centre, torch.tensor(scene.framing.radius - 0.5), atol=0.03)
    assert views_grid(views).shape == (3, 2 + 4 * 26, 2 + 2 * 26)
    frames = render_orbit(scene, scene.framing.cameras(3, 16))
    assert frames.shape == (3, 3, 16, 16) and float(frames.std()) > 0.05
    with pytest.raises(ValueError, match="render_views: argument 'scene' expected a render3d.volume.scenes.Scene"):
        render_views(scene.field, scene.framing.cameras(1, 8))


def test_an_mp4_of_frames_under_2_pixels_is_refused(tmp_path):
    """ffmpeg only logs an error for them and leaves no usable file."""
    from render3d.visualize import save_video

    with pytest.raises(ValueError, match=r"save_video: argument 'frames' expected frames of at least 2 x 2 pixels "
                                         r"for an MP4, got 1 x 5"):
        save_video(torch.zeros(3, 3, 5, 1), tmp_path / "thin.mp4")
    assert save_video(torch.zeros(3, 3, 5, 1), tmp_path / "thin.gif").is_file()   # a GIF takes them


def test_frame_rates_a_video_cannot_hold_are_refused(tmp_path):
    """An MP4 at 1000 fps was written with a frame rate of 0 and a duration of 0; a GIF above
    50 fps plays at 10 in browsers; fps=-1 was ffmpeg's error output, then FileNotFoundError."""
    import imageio.v3 as iio

    from render3d.visualize import save_video

    frames = torch.rand(3, 3, 8, 8)
    for fps, suffix, limit in ((1000, "mp4", 240), (-1, "mp4", 240), (60, "gif", 50), (True, "gif", 50)):
        with pytest.raises(ValueError, match=re.escape(f"save_video: argument 'fps' expected a frame rate in "
                                                       f"(0, {limit}] for {suffix.upper()}, got {fps!r}")):
            save_video(frames, tmp_path / f"bad.{suffix}", fps=fps)
    assert not list(tmp_path.iterdir())
    assert iio.immeta(save_video(frames, tmp_path / "fast.mp4", fps=240))["fps"] == 240


@pytest.mark.parametrize("call, name", [("save_image(torch.rand(3, 64, 64), {path!r})", "noise.png"),
                                        ("save_video(torch.rand(8, 3, 32, 32), {path!r})", "noise.gif"),
                                        ("draw_cameras(Cameras.look_at(torch.tensor([[0.0, 0.0, 2.0]]), width=8, "
                                         "height=8, fov_degrees=40.0), {path!r})", "cameras.png")])
def test_a_picture_that_cannot_be_written_is_named_and_leaves_no_part(tmp_path, call, name):
    """A full disk (here a file-size limit) while a PNG or a GIF was written (training's sample
    grids, a render's views, `dataset check`'s cameras) was an OSError without the file's name,
    and left half a file."""
    path = str(tmp_path / name)
    assert _oserror_under_a_size_limit(call.format(path=path)) == [str(errno.EFBIG), path]
    assert list(tmp_path.iterdir()) == []


def _oserror_under_a_size_limit(call: str) -> list[str]:
    return oserror_under_a_size_limit(call, "import torch; from render3d.cameras import Cameras\n"
                                            "from render3d.visualize import draw_cameras, save_image, save_video")


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_an_mp4_that_cannot_be_written_leaves_the_earlier_one(tmp_path):
    """A full disk half-way through an MP4 (here ffmpeg writes into /dev/full, which is always
    full): imageio's writer never read ffmpeg's exit status, so the cut file was renamed into
    place over the previous orbit.mp4 and returned as written."""
    from render3d._files import temp_path
    from render3d.visualize import save_video

    earlier = tmp_path / "orbit.mp4"
    earlier.write_bytes(b"an earlier video")
    temp_path(earlier).symlink_to("/dev/full")       # the name save_video has ffmpeg write to
    with pytest.raises(OSError) as raised:
        save_video(torch.rand(8, 3, 16, 16), earlier)
    assert raised.value.errno == errno.ENOSPC and raised.value.filename == str(earlier)
    assert list(tmp_path.iterdir()) == [earlier] and earlier.read_bytes() == b"an earlier video"


@pytest.mark.parametrize("channels", [3, 4])
def test_an_mp4_holds_the_frames_cropped_to_even_sizes(tmp_path, channels):
    """H.264 in yuv420p wants even sizes: 15 x 17 frames become 14 x 16; the colours (in RGB
    order; an RGBA frame's alpha is dropped) and the frame count survive the encoding."""
    import imageio.v3 as iio

    from render3d.visualize import save_video

    colours = torch.tensor([[0.2, 0.5, 0.8, 0.5], [0.9, 0.3, 0.1, 1.0], [0.1, 0.8, 0.3, 0.0]])[:, :channels]
    frames = colours[:, :, None, None].expand(3, channels, 15, 17)
    decoded = iio.imread(save_video(frames, tmp_path / "odd.mp4", fps=10))
    assert decoded.shape == (3, 14, 16, 3)
    assert np.abs(decoded.astype(float) - colours[:, None, None, :3].numpy() * 255).max() < 4


@pytest.mark.parametrize("shape", [(0, 3, 8, 8), (4, 2, 8, 8), (3, 8, 8)])
def test_frames_a_video_cannot_hold_are_refused(tmp_path, shape):
    """No frame, or two channels (ffmpeg would read them as RGB), or one image: a ValueError
    naming the argument; it was a numpy error from deep inside or a scrambled video."""
    from render3d.visualize import save_video

    got = re.escape(str(list(shape)))
    with pytest.raises(ValueError, match=rf"save_video: argument 'frames' expected .*got {got}"):
        save_video(torch.rand(shape), tmp_path / "orbit.mp4")
    assert list(tmp_path.iterdir()) == []


def test_a_ctrl_c_while_an_mp4_is_written_leaves_no_temporary_file(tmp_path, monkeypatch):
    import render3d.visualize as visualize

    def interrupted(array, file, fps):
        file.write_bytes(b"half a video")
        raise KeyboardInterrupt

    monkeypatch.setattr(visualize, "_write_mp4", interrupted)
    earlier = tmp_path / "orbit.mp4"
    earlier.write_bytes(b"an earlier video")
    with pytest.raises(KeyboardInterrupt):
        visualize.save_video(torch.rand(4, 3, 8, 8), earlier)
    assert list(tmp_path.iterdir()) == [earlier] and earlier.read_bytes() == b"an earlier video"


@pytest.mark.parametrize("ffmpeg", ["missing", "failing"])
def test_without_a_working_ffmpeg_a_video_is_a_gif(tmp_path, monkeypatch, ffmpeg):
    """No ffmpeg binary, or one that fails for another reason than room: a GIF of the same stem,
    with a warning that says why."""
    import imageio.v3 as iio
    import imageio_ffmpeg

    from render3d.visualize import save_video

    def no_ffmpeg():
        raise RuntimeError("No ffmpeg exe could be found")

    monkeypatch.setattr(imageio_ffmpeg, "get_ffmpeg_exe", no_ffmpeg if ffmpeg == "missing" else lambda: "false")
    with pytest.warns(RuntimeWarning) as warned:
        written = save_video(torch.rand(6, 3, 16, 16), tmp_path / "orbit.mp4", fps=100)
    said = "No ffmpeg exe could be found" if ffmpeg == "missing" else "ffmpeg exited with status 1: no message"
    assert str(warned[0].message) == (f"render3d: could not write an MP4 ({said}); "
                                      f"writing {tmp_path / 'orbit.gif'} instead")
    assert written == tmp_path / "orbit.gif" and list(tmp_path.iterdir()) == [written]
    assert iio.imread(written).shape == (6, 16, 16, 3)


def test_an_mp4_cut_at_the_file_size_limit_is_not_kept(tmp_path):
    """ffmpeg stops at a file-size limit, and imageio's writer did not look at how it ended: the
    cut MP4 was returned as written."""
    earlier = tmp_path / "orbit.mp4"
    earlier.write_bytes(b"an earlier video")
    said = _oserror_under_a_size_limit(f"save_video(torch.rand(8, 3, 64, 64), {str(earlier)!r})")
    assert said == [str(errno.EFBIG), str(earlier)]
    assert list(tmp_path.iterdir()) == [earlier] and earlier.read_bytes() == b"an earlier video"
