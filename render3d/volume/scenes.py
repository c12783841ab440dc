"""Renderables by name: what `render3d render` and `render3d export-mesh` draw from.

A `Scene` is a field (``field(points, directions) -> (density, features)``, with
``field.density(points)`` and ``field.color(points)``, and ``field.sdf(points)`` where the
field has one), the box it lives in, and a framing to look at it. Today the registry holds
the built-in analytic scenes; a generator adds itself the same way, with a factory that
loads a checkpoint and returns a Scene (its field closing over a latent code):

    register_scene("eg3d-ffhq", lambda checkpoint, seed=0: Scene(...), "EG3D on FFHQ")
    scene = make_scene("eg3d-ffhq", checkpoint="ffhq.safetensors", seed=3)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .._checks import said_choices
from ..cameras import Framing
from .fields import BoxField, Field, GyroidField, SphereField, TorusField, demo_scene


@dataclass(frozen=True)
class Scene:
    """A field to render or mesh, with its box (``(min_xyz, max_xyz)``, world units, the
    only place the field is sampled) and how to look at it (`Framing`)."""

    field: Field
    bbox: tuple[tuple[float, float, float], tuple[float, float, float]]
    framing: Framing
    background: tuple[float, float, float] = (0.96, 0.96, 0.97)


@dataclass(frozen=True)
class _Entry:
    factory: Callable[..., Scene]
    description: str


SCENES: dict[str, _Entry] = {}


def register_scene(name: str, factory: Callable[..., Scene], description: str) -> None:
    """Make `factory` (keyword options -> `Scene`) available as `name`."""
    if not isinstance(name, str) or not name or name in SCENES:
        raise ValueError(f"register_scene: argument 'name' expected a new non-empty name, got {name!r} "
                         f"(registered: {', '.join(SCENES)})")
    if not callable(factory):
        raise ValueError(f"register_scene: argument 'factory' expected a callable returning a Scene, got "
                         f"{type(factory).__name__}")
    SCENES[name] = _Entry(factory, description)


def scene_names() -> list[str]:
    return list(SCENES)


def describe_scenes() -> str:
    """One line per registered scene: its name and description."""
    return "\n".join(f"  {name:<8} {entry.description}" for name, entry in SCENES.items())


def make_scene(name: str, **options) -> Scene:
    """The scene registered as `name`, built with `options`. An unknown name raises a
    ValueError listing the valid ones."""
    if not isinstance(name, str) or name not in SCENES:
        raise ValueError(f"make_scene: argument 'name' expected one of {said_choices(SCENES)}, got {name!r}")
    factory = SCENES[name].factory
    signature = inspect.signature(factory)
    try:
        signature.bind(**options)
    except TypeError:                   # an option this scene does not take: name them before building it
        takes = ", ".join(signature.parameters) or "no options"
        raise ValueError(f"make_scene: argument 'options' expected what the scene {name!r} takes ({takes}), got "
                         f"{', '.join(options)}") from None
    scene = factory(**options)
    if not isinstance(scene, Scene):
        raise ValueError(f"make_scene: the factory of {name!r} expected to return a Scene, returned "
                         f"{type(scene).__name__}")
    return scene


# --- the built-in analytic scenes ----------------------------------------------------------

BOX = ((-1.0, -1.0, -1.0), (1.0, 1.0, 1.0))  # every built-in scene fits in it


def _direction_colors(points: Tensor, center=(0.0, 0.0, 0.0)) -> Tensor:
    """RGB from the direction away from `center`: (x, y, z) -> 0.5 + 0.45 * unit vector, so
    +X is red, +Y green, +Z blue (shows the axes on any mesh or render)."""
    direction = torch.nn.functional.normalize(points - points.new_tensor(center), dim=-1)
    return 0.5 + 0.45 * direction


def _demo() -> Scene:
    # The scene sits low in its box: aim a little below the centre (see demo_scene).
    return Scene(demo_scene(), BOX, Framing(3.6, elevation=0.45, fov_degrees=38.0, pivot=(0.0, -0.12, 0.0)))


def _sphere(radius: float = 0.5) -> Scene:
    return Scene(SphereField(radius=radius, color=_direction_colors), BOX, Framing.around([-radius] * 3, [radius] * 3))


def _torus() -> Scene:
    field = TorusField(major_radius=0.55, minor_radius=0.2, axis="y")
    return Scene(field, BOX, Framing.around([-0.75, -0.2, -0.75], [0.75, 0.2, 0.75]))


def _gyroid() -> Scene:
    return Scene(GyroidField(), BOX, Framing.around([-0.8] * 3, [0.8] * 3))


def _box() -> Scene:
    half = (0.6, 0.35, 0.45)
    field = BoxField(half_size=half, rounding=0.08, color=_direction_colors)
    return Scene(field, BOX, Framing.around([-h for h in half], list(half)))


register_scene("demo", _demo, "a rainbow torus and an orange ball on a checkered floor (render3d demo)")
register_scene("sphere", _sphere, "a sphere of radius 0.5, coloured by direction (+X red, +Y green, +Z blue)")
register_scene("torus", _torus, "a rainbow torus around +Y, ring radius 0.55, tube 0.2")
register_scene("gyroid", _gyroid, "a gyroid sheet clipped to a 1.6 cube, coloured by position")
register_scene("box", _box, "a rounded box 1.2 x 0.7 x 0.9 (x, y, z), coloured by direction")
