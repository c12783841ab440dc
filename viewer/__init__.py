"""The browser viewer behind ``render3d view``: orbit a model in a web page served by one
Python process on one port (viser), also through an SSH tunnel.

Installed, this folder is the package ``render3d_viewer`` (pyproject maps it), never a bare
top-level ``viewer``; render3d itself never imports it (the CLI loads it on demand).

    from render3d_viewer import Viewer, open_source
    viewer = Viewer(open_source("torus"), port=8080)   # serves until viewer.stop()

Modules: `sources` (what can be shown: fields, splats, meshes), `cameras` (browser camera
-> render3d camera), `loop` (one browser's render thread), `actions` (views, snapshots,
orbit videos), `session` (one browser's controls), `app` (the server).
"""

from .actions import View, render_view
from .app import Viewer, serve
from .cameras import viser_to_cameras
from .loop import Frame, RenderCancelled, RenderLoop
from .sources import MODES, Parameter, Source, Splats, open_source

__all__ = [
    "MODES",
    "Frame",
    "Parameter",
    "RenderCancelled",
    "RenderLoop",
    "Source",
    "Splats",
    "View",
    "Viewer",
    "open_source",
    "render_view",
    "serve",
    "viser_to_cameras",
]
