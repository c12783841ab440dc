"""One browser in the viewer: its controls, its render loop and its actions.

Each connected browser gets a `Session`: controls of its own (render mode, resolution,
field of view, reset view, orbit autoplay, the source's parameters, the browser-side toggle
for meshes and splats), a `RenderLoop` thread rendering at its camera, and buttons for the
long actions (download the model, snapshot PNG, orbit video) whose progress shows in the
page. A failed render or action shows a red notification and is logged; the session goes on.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable

import numpy as np

from .actions import View, orbit_video, render_view, snapshot_png
from .cameras import framing_to_viser
from .loop import FULL, Frame, RenderLoop
from .sources import Source, Splats

log = logging.getLogger(__name__)

RESOLUTIONS = (32, 1024)        # range of the resolution slider (longer side, pixels)
AUTOPLAY_DEGREES_PER_SECOND = 30.0
AUTOPLAY_TICK = 1 / 15          # seconds between two autoplay camera steps
AUTOPLAY_SETTLE = 0.5           # seconds after autoplay stops before its orbit point is checked
VIDEO_FRAMES = 48


class Session:
    """The viewer's side of one browser (`client`, a ``viser.ClientHandle``) showing
    `source`; `geometry` gives the source's browser-side mesh or splats (shared, computed
    once) or None. `resolution` is the starting full-size longer side in pixels."""

    def __init__(self, client, source: Source, geometry: Callable[[], object] | None, *, resolution: int = 256,
                 rest_seconds: float = 0.2) -> None:
        self.client, self.source, self._geometry = client, source, geometry
        self.settings = source.defaults()
        self.frames = 0                      # frames shown so far
        self.last_frame: Frame | None = None
        self.errors: list[str] = []          # render and action errors shown to this browser
        self.initial = framing_to_viser(source.framing)
        self._client_side = False
        self._action_lock = threading.Lock()
        self._autoplay = threading.Event()
        self._closed = threading.Event()
        self._build_gui(resolution)
        self.loop = RenderLoop(self._render, self._publish, self._report, rest_seconds=rest_seconds)
        client.camera.on_update(lambda camera: self._on_camera())
        self._on_camera()

    # --- controls --------------------------------------------------------------------------

    def _build_gui(self, resolution: int) -> None:
        gui, source = self.client.gui, self.source
        self.stats = gui.add_markdown("waiting for the first frame")
        with gui.add_folder("View"):
            self.mode = gui.add_dropdown("Render mode", source.modes, initial_value=source.modes[0])
            self.resolution = gui.add_slider("Resolution", *RESOLUTIONS, step=16, initial_value=resolution,
                                             hint="pixels along the longer side once the camera rests")
            self.fov = gui.add_slider("Field of view", 10.0, 120.0, step=1.0,
                                      initial_value=round(math.degrees(self.initial["fov"])),
                                      hint="vertical, degrees")
            reset = gui.add_button("Reset view")
            self.autoplay = gui.add_checkbox("Orbit autoplay", False)
            self.browser_side = gui.add_checkbox(
                "Draw in the browser", False, visible=self._geometry is not None,
                hint="the browser draws the mesh or splats itself (three.js), often faster")
        self.parameters = {}
        if source.parameters:
            with gui.add_folder("Model"):
                for p in source.parameters:
                    cast = int if p.integer else float
                    self.parameters[p.name] = gui.add_slider(p.label, cast(p.low), cast(p.high), cast(p.step),
                                                             cast(p.default))
        with gui.add_folder("Actions"):
            self.download = gui.add_button(source.download_label)
            self.snapshot = gui.add_button("Snapshot (PNG)")
            self.record = gui.add_button("Record orbit video")
            self.progress = gui.add_progress_bar(0.0, visible=False, animated=True)

        for handle in (self.mode, self.resolution, *self.parameters.values()):
            handle.on_update(lambda event: self._on_setting())
        self.fov.on_update(lambda event: setattr(self.client.camera, "fov", math.radians(self.fov.value)))
        reset.on_click(lambda event: self.reset_view())
        self.autoplay.on_update(lambda event: self._toggle_autoplay())
        self.browser_side.on_update(lambda event: self._toggle_browser_side())
        self.download.on_click(lambda event: self._run_action("download", self._download))
        self.snapshot.on_click(lambda event: self._run_action("snapshot", self._snapshot))
        self.record.on_click(lambda event: self._run_action("orbit video", self._record))

    def view(self) -> View:
        """This browser's camera and settings now."""
        camera = self.client.camera
        self.settings = {name: handle.value for name, handle in self.parameters.items()}
        return View(tuple(camera.wxyz), tuple(camera.position), tuple(camera.look_at), camera.fov, camera.aspect,
                    self.mode.value, dict(self.settings))

    def reset_view(self) -> None:
        camera = self.client.camera
        with self.client.atomic():
            camera.position = self.initial["position"]
            camera.look_at = self.initial["look_at"]
            camera.up_direction = self.initial["up"]
        self.fov.value = round(math.degrees(self.initial["fov"]))

    def close(self) -> None:
        self._closed.set()
        self._autoplay.clear()
        self.loop.stop()

    # --- rendering -------------------------------------------------------------------------

    def _on_camera(self) -> None:
        if not self._client_side:
            self.loop.move(self.view(), self.resolution.value)

    def _on_setting(self) -> None:
        if not self._client_side:
            self.loop.refresh(self.view(), self.resolution.value)

    def _render(self, view: View, long_side: int, cancelled) -> np.ndarray:
        return render_view(self.source, view, long_side, cancelled)

    def _publish(self, frame: Frame) -> None:
        if self._client_side or self._closed.is_set():
            return
        self.client.scene.set_background_image(frame.image, format="jpeg",
                                               jpeg_quality=90 if frame.level == FULL else 60)
        h, w = frame.image.shape[:2]
        shown = f" · {self.source.name}" if self.source.follows else ""    # which checkpoint of the run
        shown += f" · {self.source.state}" if self.source.state else ""
        self.stats.content = (f"**{frame.fps:.3g} fps** · {w}×{h} px · {frame.level} · "
                              f"{1000 * frame.seconds:.0f} ms per frame{shown}")
        self.frames += 1
        self.last_frame = frame

    def _report(self, error: Exception, view: View) -> None:
        message = f"{type(error).__name__}: {error}"
        self.errors.append(message)
        self.stats.content = f"**render failed**: {message}"
        self.client.add_notification("Render failed", message, color="red", auto_close_seconds=15)

    # --- a followed training run ----------------------------------------------------------

    def followed(self, name: str) -> None:
        """The source took up `name` (a run's newer checkpoint): say so, and render it now."""
        self.client.add_notification("Newer checkpoint", f"showing {name}", auto_close_seconds=5)
        self._on_setting()

    def not_followed(self, message: str) -> None:
        """A newer version the source could not take up: say why; the page keeps what it shows."""
        self.errors.append(message)
        self.client.add_notification("Newer checkpoint not shown", message, color="red", auto_close_seconds=15)

    # --- autoplay and the browser-side toggle -------------------------------------------

    def _toggle_autoplay(self) -> None:
        if not self.autoplay.value:
            self._autoplay.clear()
            return
        if not self._autoplay.is_set():
            self._autoplay.set()
            threading.Thread(target=self._orbit, name="render3d-viewer-autoplay", daemon=True).start()

    def _orbit(self) -> None:
        """Turn the camera about the vertical axis through its orbit point until stopped.

        The orbit point is the one at the start, held for the whole turn: viser's position
        setter moves the look-at point along before it is set back, and a camera report from
        the browser taken in between would otherwise become the next tick's orbit point, so
        the model would wander off-centre a step at a time."""
        step = math.radians(AUTOPLAY_DEGREES_PER_SECOND * AUTOPLAY_TICK)
        turn = np.array([[math.cos(step), 0, math.sin(step)], [0, 1, 0], [-math.sin(step), 0, math.cos(step)]])
        pivot = np.array(self.client.camera.look_at)
        while self._autoplay.is_set() and not self._closed.wait(AUTOPLAY_TICK):
            camera = self.client.camera
            with self.client.atomic():
                camera.position = pivot + turn @ (np.array(camera.position) - pivot)
                camera.look_at = pivot  # setting the position moved it along
        # The browser reports its camera after each message, and on a busy machine the report
        # it made between the last tick's two (position, then look-at: moved along by one step)
        # can arrive after both; once the reports have settled, the orbit point is set back.
        settled = not self._closed.wait(AUTOPLAY_SETTLE) and not self._autoplay.is_set()    # not turned on again
        if settled and not np.allclose(self.client.camera.look_at, pivot):
            self.client.camera.look_at = pivot

    def _toggle_browser_side(self) -> None:
        scene = self.client.scene
        self._client_side = self.browser_side.value
        if not self._client_side:
            scene.remove_by_name("/model")
            self._on_setting()
            return
        scene.set_background_image(None)
        geometry = self._geometry()
        if isinstance(geometry, Splats):
            scene.add_gaussian_splats("/model", geometry.centers, geometry.covariances, geometry.rgbs,
                                      geometry.opacities)
        else:
            scene.add_mesh_trimesh("/model", geometry)
        self.stats.content = "drawn by the browser"

    # --- long actions ----------------------------------------------------------------------

    def _run_action(self, name: str, action: Callable[[Callable[[float, str], None]], tuple[str, bytes]]) -> None:
        """Run one action at a time, its progress in the page; send its file to the browser."""
        if not self._action_lock.acquire(blocking=False):
            self.client.add_notification("Busy", "another action is still running", auto_close_seconds=5)
            return
        note = self.client.add_notification(name.capitalize(), "starting", loading=True, with_close_button=False)
        self.progress.value, self.progress.visible = 0.0, True

        def progress(fraction: float, text: str) -> None:
            self.progress.value = 100 * fraction
            note.body = text

        try:
            filename, content = action(progress)
            self.client.send_file_download(filename, content, save_immediately=True)
            note.title, note.body = f"{name.capitalize()} ready", f"{filename} ({len(content) / 1e6:.2f} MB)"
        except Exception as error:  # show it and keep serving
            log.exception("render3d viewer: %s failed", name)
            message = f"{type(error).__name__}: {error}"
            self.errors.append(message)
            note.title, note.body, note.color = f"{name.capitalize()} failed", message, "red"
        finally:
            note.loading, note.with_close_button, note.auto_close_seconds = False, True, 10.0
            self.progress.visible = False
            self._action_lock.release()

    def _download(self, progress) -> tuple[str, bytes]:
        return self.source.download(self.view().settings, progress)

    def _snapshot(self, progress) -> tuple[str, bytes]:
        view = self.view()
        progress(0.2, f"rendering {self.resolution.value} px")
        return f"{self.source.name}_{view.mode}.png", snapshot_png(self.source, view, self.resolution.value)

    def _record(self, progress) -> tuple[str, bytes]:
        long_side = min(self.resolution.value, 256)  # videos stay small enough to send at once
        return orbit_video(self.source, self.view(), VIDEO_FRAMES, long_side, progress)
