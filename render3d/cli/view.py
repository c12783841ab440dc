"""``render3d view``: orbit a model in the browser (the viewer in ``render3d_viewer``,
loaded only here, so that render3d itself never imports it)."""

from __future__ import annotations

import argparse
import importlib.util

EPILOG = """TARGET:
  (none)        the shipped demo VolumeGAN (assets/volumegan_synth64.safetensors)
  RUN, CKPT     a trained generator: a run folder (its newest checkpoint, and each newer
                one as training writes it), a checkpoint folder, or a generator
                .safetensors file; seed, truncation and latent interpolation sliders
  SCENE         a built-in scene (render3d render --list-scenes), or "procedural": the
                synthetic dataset's random objects, one per seed
  FILE.ply      Gaussian splats (a 3DGS PLY), or a mesh if the PLY has no 3DGS properties
  FILE.glb      a mesh (also .gltf, .obj, .stl, .off)

in the page: drag to orbit, scroll to zoom; render mode (RGB, depth, normals, alpha),
resolution, field of view, reset view, orbit autoplay; download the model (GLB mesh, or
the splats as PLY), snapshot PNG, orbit video. Meshes and splats can be drawn by the browser.

on a remote machine, serve on loopback (the default) and tunnel the port:
  ssh -L 8080:localhost:8080 user@gpu-server      then open http://localhost:8080

examples:
  render3d view
  render3d view runs/synth64        # follows the run while it trains
  render3d view torus --port 8081
  render3d view outputs/mesh/demo.glb
  render3d view point_cloud.ply --resolution 512
"""


def add_view(sub) -> None:
    p = sub.add_parser(
        "view", help="orbit a trained generator, scene, mesh or Gaussian splats in the browser (also over SSH)",
        description="Serve an interactive camera-orbit viewer on one port: the server renders at each browser's "
                    "camera, small while it moves and at full resolution once it rests.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("target", nargs="?", default=None, metavar="TARGET",
                   help="what to show (default: the shipped demo VolumeGAN)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: 127.0.0.1, this machine only; tunnel with ssh -L)")
    p.add_argument("--port", type=int, default=8080, help="port (default: 8080; the next free one if taken)")
    p.add_argument("--resolution", type=int, default=256,
                   help="pixels along the longer side at rest, to start with (default: 256)")
    p.set_defaults(run=run_view)


def run_view(args) -> int:
    import logging

    from ._args import UsageError, report, restated

    try:
        if not 0 < args.port < 65536:
            raise UsageError(f"render3d view: --port expected a port number in 1..65535, got {args.port}")
        try:
            if importlib.util.find_spec("viser") is None:   # imported by the viewer once it serves
                raise ImportError("No module named 'viser'")
            from render3d_viewer import serve
            from render3d_viewer.session import RESOLUTIONS
        except ImportError as error:
            raise UsageError(f"render3d view: the viewer needs viser ({error}); "
                             "install it with: pip install 'render3d[viewer]'") from None
        low, high = RESOLUTIONS                  # the page's slider: a value outside it left the page blank
        if not low <= args.resolution <= high:
            raise UsageError(f"render3d view: --resolution expected pixels in {low}..{high}, got {args.resolution}")
    except UsageError as error:
        return report(error)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for noisy in ("websockets", "viser"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        serve(args.target, host=args.host, port=args.port, resolution=args.resolution)
    except ValueError as error:  # an unknown scene, an unreadable file or checkpoint, a host not of this machine
        return report(restated("view", error, {"target": "TARGET", "path": "TARGET", "host": "--host",
                                               "port": "--port"}))
    return 0
