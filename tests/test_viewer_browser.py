"""The viewer end to end in a real browser: Debian's headless Chromium driven by Playwright
(never a browser build of Playwright's own), against the viewer on a free loopback port
showing a deterministic CPU scene (procedural objects, chosen by seed).

viser draws each server-rendered frame as the background of its three.js canvas (WebGL,
here in software through SwiftShader), so the test compares screenshots of the page where
the model is: a changed picture is a mean pixel difference above a threshold, and a blank
canvas is caught by requiring contrast in every screenshot compared.
"""

import re
import shutil
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import trimesh

CHROMIUM = "/usr/bin/chromium"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists() and shutil.which("chromium") is None,
                       reason=f"Debian's chromium is not installed ({CHROMIUM} missing); "
                              "`make system-deps` installs it"),
]

VIEWPORT = {"width": 1000, "height": 700}
# where the model is drawn, clear of viser's panel (right) and its notifications (top left)
MODEL = {"x": 250, "y": 170, "width": 400, "height": 400}
CHANGED = 3.0    # mean absolute difference (0..255) that counts as another picture
TIMEOUT = 60.0   # seconds for one step, generous for 2 shared CPU cores and software WebGL


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(predicate, what: str, timeout: float = TIMEOUT):
    """The first value of `predicate()` that is neither None nor false."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value is not None and not (isinstance(value, (bool, np.bool_)) and not value):
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def shot(page) -> np.ndarray:
    import io

    import imageio.v3 as iio

    return iio.imread(io.BytesIO(page.screenshot(clip=MODEL)), extension=".png")[..., :3].astype(np.float64)


def difference(a, b) -> float:
    return float(np.abs(a - b).mean())


def new_picture(page, before, what: str) -> np.ndarray:
    """The page's next picture that differs from `before` (and is not blank)."""
    def changed():
        now = shot(page)
        return now if difference(now, before) > CHANGED and now.std() > 10 else None

    return wait_for(changed, what)


@pytest.fixture(scope="module")
def viewer():
    from render3d_viewer import Viewer, open_source

    source = open_source("procedural")
    source.mesh_resolution = 48  # the GLB download stays quick
    viewer = Viewer(source, host="127.0.0.1", port=free_port(), resolution=64, rest_seconds=0.2)
    yield viewer
    viewer.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # WebGL in software: Chrome 137+ needs the explicit SwiftShader opt-in; no sandbox as root
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
            args=["--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"])
        yield browser
        browser.close()


def opened(browser, viewer, **options):
    """A new page on `viewer` once its first full-size frame is on the canvas: (page, its
    session, a screenshot of that frame). `options`: Playwright's new_page keywords."""
    page = browser.new_page(viewport=VIEWPORT, **options)
    page.goto(f"http://127.0.0.1:{viewer.port}")
    session = wait_for(lambda: next(iter(viewer.sessions.values()), None), "the browser to connect")
    wait_for(lambda: full_frame(session), "a full-size frame")
    picture = wait_for(lambda: s if (s := shot(page)).std() > 10 else None, "the frame on the canvas")
    return page, session, picture


def full_frame(session, check=lambda frame: True):
    frame = session.last_frame
    return frame if frame is not None and frame.level == "full" and check(frame) else None


def settled_frame(session, check, what: str, quiet: float = 0.5):
    """A full-size frame passing `check`, of the browser's camera once it has stayed where it is
    for `quiet` seconds: a key pressed on a slider also turns viser's camera while it is held,
    and smoothly for a while after, so the first frame of a new setting can be of a camera
    that is still moving."""
    def settled():
        frame = full_frame(session, check)
        if frame is None or frame.view != session.view():
            return None
        time.sleep(quiet)
        return frame if session.last_frame is frame and frame.view == session.view() else None

    return wait_for(settled, what)


def test_orbit_mode_seed_and_mesh_download_in_chromium(viewer, browser, tmp_path):
    page = browser.new_page(viewport=VIEWPORT, accept_downloads=True)
    page.goto(f"http://127.0.0.1:{viewer.port}")

    # the page loads, the browser connects, a full-size frame arrives and is drawn
    session = wait_for(lambda: next(iter(viewer.sessions.values()), None), "the browser to connect")
    first_frame = wait_for(lambda: full_frame(session), "a full-size frame")
    assert first_frame.image.shape[1] == 64 and not session.errors
    stats = page.locator("p", has_text=" fps").first  # frame rate and size are shown in the page
    stats_line = r"[\d.e-]+ fps · 64×\d+ px · full · \d+ ms per frame"
    wait_for(lambda: re.fullmatch(stats_line, stats.inner_text().strip()), "the frame rate and resolution in the page")
    first = wait_for(lambda: s if (s := shot(page)).std() > 10 else None, "the frame on the canvas")

    # dragging the mouse orbits the camera: the server sees a new pose and renders it
    start = np.array(session.client.camera.position)
    page.mouse.move(450, 370)
    page.mouse.down()
    page.mouse.move(560, 380, steps=12)
    page.mouse.up()
    moved = wait_for(lambda: np.linalg.norm(session.client.camera.position - start) > 0.2 and
                     full_frame(session, lambda f: np.allclose(f.view.position, session.client.camera.position)),
                     "a full-size frame at the new camera")
    assert moved.view.mode == "rgb"
    orbited = new_picture(page, first, "the orbited picture")

    # another render mode, chosen in the page, is another picture
    page.get_by_label("Render mode").click()
    page.get_by_role("option", name="normals").click()
    wait_for(lambda: full_frame(session, lambda f: f.view.mode == "normals"), "a normals frame")
    normals = new_picture(page, orbited, "the normals picture")

    # another seed (the slider moved with the keyboard) is another object
    seed = page.locator('[role=slider][aria-valuemax="999"]')
    seed.focus()
    seed.press("ArrowRight")
    wait_for(lambda: full_frame(session, lambda f: f.view.settings == {"seed": 1} and f.view.mode == "normals"),
             "a frame of seed 1")
    new_picture(page, normals, "the picture of seed 1")

    # the mesh download is a coloured GLB that trimesh loads
    with page.expect_download(timeout=TIMEOUT * 1000) as download:
        page.get_by_role("button", name="Download mesh (GLB)").click()
    path = tmp_path / download.value.suggested_filename
    download.value.save_as(path)
    assert path.name == "procedural_seed1.glb"
    mesh = trimesh.load(path, force="mesh")
    assert len(mesh.faces) > 100
    assert not session.errors
    page.close()
    wait_for(lambda: not viewer.sessions, "the session to close with its page")


def test_render_errors_show_in_the_page_and_other_browsers_go_on(viewer, browser, monkeypatch):
    source = viewer.source
    render = source.render

    def failing(cameras, mode, settings, cancelled):
        if mode == "alpha":
            raise ValueError("test: alpha renders fail here")
        return render(cameras, mode, settings, cancelled)

    monkeypatch.setattr(source, "render", failing)
    pages = [browser.new_page(viewport=VIEWPORT) for _ in range(2)]
    for page in pages:
        page.goto(f"http://127.0.0.1:{viewer.port}")
    sessions = wait_for(lambda: len(viewer.sessions) == 2 and list(viewer.sessions.values()), "two browsers")
    for session in sessions:
        wait_for(lambda: full_frame(session), "a frame in each browser")
    page = pages[1]
    page.get_by_label("Render mode").click()
    page.get_by_role("option", name="alpha").click()
    broken = wait_for(lambda: next((s for s in sessions if s.mode.value == "alpha"), None), "the page's session")
    other = next(s for s in sessions if s is not broken)
    page.get_by_text("Render failed").first.wait_for(timeout=TIMEOUT * 1000)
    assert page.get_by_text("test: alpha renders fail here").count() > 0
    assert broken.errors == ["ValueError: test: alpha renders fail here"]
    # the server goes on: the same browser renders again, and the other was never touched
    page.get_by_label("Render mode").click()
    page.get_by_role("option", name="depth").click()
    wait_for(lambda: full_frame(broken, lambda f: f.view.mode == "depth"), "a depth frame after the error")
    assert broken.loop.alive and not other.errors and other.last_frame.view.mode == "rgb"
    for page in pages:
        page.close()


@pytest.fixture(scope="module")
def generator_viewer():
    from render3d import DEMO_CHECKPOINT
    from render3d_viewer import Viewer
    from render3d_viewer.generator import GeneratorSource

    source = GeneratorSource(DEMO_CHECKPOINT, device="cpu", mesh_resolution=48)
    viewer = Viewer(source, host="127.0.0.1", port=free_port(), resolution=64, rest_seconds=0.2)
    yield viewer
    viewer.stop()


def download(page, button: str, folder: Path) -> Path:
    with page.expect_download(timeout=TIMEOUT * 1000) as started:
        page.get_by_role("button", name=button).click()
    path = folder / started.value.suggested_filename
    started.value.save_as(path)
    return path


def test_generator_seed_snapshot_video_autoplay_and_reset_in_chromium(generator_viewer, browser, tmp_path):
    """The shipped demo checkpoint: a new seed is a new subject; the snapshot is the frame on
    screen; the orbit video has every frame; autoplay turns the camera by itself until
    unchecked; reset view brings back the front view."""
    import imageio.v3 as iio

    viewer = generator_viewer
    page, session, first = opened(browser, viewer, accept_downloads=True)

    seed = page.locator('[role=slider][aria-valuemax="9999"]').first  # "Seed" (then "Interpolate to seed")
    seed.focus()
    seed.press("ArrowRight")
    frame = settled_frame(session, lambda f: f.view.settings["seed"] == 1, "a frame of seed 1, the camera at rest")
    new_picture(page, first, "the picture of seed 1")

    snapshot = download(page, "Snapshot (PNG)", tmp_path)
    assert snapshot.name == "volumegan_synth64_rgb.png"
    np.testing.assert_array_equal(iio.imread(snapshot), frame.image)  # the frame on screen, at full size

    video = download(page, "Record orbit video", tmp_path)
    assert video.name == "orbit_volumegan_synth64" + video.suffix and video.suffix in (".mp4", ".gif")
    frames = iio.imread(video, index=None)
    h, w = frame.image.shape[:2]
    assert len(frames) == 48 and frames.shape[1:3] == ((h // 2 * 2, w // 2 * 2) if video.suffix == ".mp4" else (h, w))
    assert np.abs(frames[0].astype(float) - frames[12].astype(float)).mean() > CHANGED  # it turns

    initial = np.array(session.initial["position"])
    page.get_by_label("Orbit autoplay").check()
    wait_for(lambda: np.linalg.norm(session.client.camera.position - initial) > 0.3, "autoplay to turn the camera")
    # (a preview: while autoplay turns the camera it never rests long enough for full size)
    wait_for(lambda: ((f := session.last_frame) is not None
                      and np.linalg.norm(np.array(f.view.position) - initial) > 0.3),
             "a frame from the turned camera")
    # the turn is about the vertical axis through the orbit point: height and distance stay
    position, pivot = np.array(session.client.camera.position), np.array(session.initial["look_at"])
    np.testing.assert_allclose(position[1], initial[1], atol=1e-3)
    np.testing.assert_allclose(np.linalg.norm(position - pivot), np.linalg.norm(initial - pivot), rtol=1e-3)
    page.get_by_label("Orbit autoplay").uncheck()
    time.sleep(0.3)
    stopped = np.array(session.client.camera.position)
    time.sleep(0.5)
    np.testing.assert_allclose(session.client.camera.position, stopped)
    # the orbit point did not drift (a late camera report can move it for the settling time)
    wait_for(lambda: np.allclose(session.client.camera.look_at, pivot, atol=1e-6), "the orbit point where it was")

    page.get_by_role("button", name="Reset view").click()
    wait_for(lambda: np.linalg.norm(session.client.camera.position - initial) < 1e-3, "the front view again")
    wait_for(lambda: full_frame(session, lambda f: np.allclose(f.view.position, initial, atol=1e-3)),
             "a frame of the front view")
    assert not session.errors
    page.close()


def test_mesh_drawn_by_the_browser_and_back_in_chromium(browser, tmp_path):
    """"Draw in the browser" hands a mesh to three.js (no server frames while on); turning it
    off brings server rendering back."""
    from render3d_viewer import Viewer, open_source

    path = tmp_path / "box.glb"
    box = trimesh.creation.box((0.8, 0.5, 0.6))
    box.visual = trimesh.visual.ColorVisuals(box, vertex_colors=np.tile([200, 40, 40, 255], (len(box.vertices), 1)))
    box.export(path)
    viewer = Viewer(open_source(str(path)), host="127.0.0.1", port=free_port(), resolution=64, rest_seconds=0.2)
    try:
        page, session, served = opened(browser, viewer)
        stats = page.locator("p", has_text=" fps").first

        page.get_by_label("Draw in the browser").check()
        page.get_by_text("drawn by the browser").wait_for(timeout=TIMEOUT * 1000)
        drawn = new_picture(page, served, "the browser's own drawing of the box")  # lit by three.js, not ours
        frames = session.frames
        page.mouse.move(450, 370)
        page.mouse.down()
        page.mouse.move(520, 380, steps=8)
        page.mouse.up()
        new_picture(page, drawn, "the browser's drawing from the orbited camera")
        assert session.frames == frames  # the server rendered nothing meanwhile

        page.get_by_label("Draw in the browser").uncheck()
        wait_for(lambda: session.frames > frames and full_frame(session), "server frames again")
        stats.wait_for(timeout=TIMEOUT * 1000)
        assert not session.errors
        page.close()
    finally:
        viewer.stop()


def test_a_followed_run_shows_each_new_checkpoint_in_chromium(browser, tmp_path):
    """`render3d view RUN` during training: a checkpoint written after the page opened is shown
    without a click, with a note in the page; a diverged one is said in red and the picture
    stays."""
    from _gan import add_run_checkpoint

    from render3d_viewer import Viewer, open_source

    run = tmp_path / "run"
    add_run_checkpoint(run, 1, lambda G: G.set_stage(G.resolutions[-2]))      # from early in a progressive run
    viewer = Viewer(open_source(str(run)), host="127.0.0.1", port=free_port(), resolution=64, rest_seconds=0.2,
                    follow_seconds=0.2)
    try:
        page, session, first = opened(browser, viewer)
        frames = session.frames
        stats = page.locator("p", has_text=" fps").first       # the frame line names the checkpoint shown
        stage = viewer.source.G.stage[0]
        growing = f"ms per frame · run_step-0000001 · still growing: its {stage} px stage, up-sampled"
        wait_for(lambda: stats.inner_text().strip().endswith(growing), "the stage in the page")

        # another subject for seed 0: the mapping's first layer negated
        add_run_checkpoint(run, 2, lambda G: G.mapping_network.layers[0].weight.neg_())
        page.get_by_text("showing step-0000002").wait_for(timeout=TIMEOUT * 1000)
        assert viewer.source.name == "run_step-0000002"
        wait_for(lambda: stats.inner_text().strip().endswith("ms per frame · run_step-0000002"),
                 "the checkpoint's name in the page")
        wait_for(lambda: session.frames > frames and full_frame(session), "a frame of the new checkpoint")
        shown = new_picture(page, first, "the new checkpoint's picture")

        add_run_checkpoint(run, 3, lambda G: G.density_head.weight.fill_(float("nan")))
        page.get_by_text("Newer checkpoint not shown").wait_for(timeout=TIMEOUT * 1000)
        assert len(session.errors) == 1 and "step-0000003 of" in session.errors[0]
        assert viewer.source.name == "run_step-0000002" and difference(shot(page), shown) < CHANGED
        page.close()
    finally:
        viewer.stop()
