"""render3d.mesh cleanup: floaters removed, decimation on target, smoothing without shrinkage."""

import numpy as np
import pytest
import torch
import trimesh

from render3d.mesh import clean_mesh, decimate, extract_mesh, remove_small_components
from render3d.volume import SphereField

BOX = ([-1.0, -1.0, -1.0], [1.0, 1.0, 1.0])


def sphere_with_floater(points):
    """A sphere of radius 0.5 and a little blob (radius 0.04: 0.6% of the faces) floating at (0.8, 0.8, 0.8)."""
    body = SphereField(radius=0.5).sdf(points)
    floater = SphereField((0.8, 0.8, 0.8), 0.04).sdf(points)
    return torch.minimum(body, floater)


@pytest.fixture(scope="module")
def raw():
    return extract_mesh(sphere_with_floater, BOX, 96, field_type="sdf", clean=False)


def test_cleanup_removes_a_planted_floater(raw):
    assert raw.body_count == 2
    cleaned = clean_mesh(raw)
    assert cleaned.body_count == 1 and cleaned.is_watertight
    assert np.linalg.norm(cleaned.vertices, axis=1).max() < 0.51  # only the sphere is left
    kept = remove_small_components(raw, 0.0)
    assert kept.body_count == 2 and len(kept.faces) == len(raw.faces)


def test_the_largest_component_is_kept_even_below_the_share(raw):
    only_largest = remove_small_components(raw, 1.0)
    assert only_largest.body_count == 1
    assert np.linalg.norm(only_largest.vertices, axis=1).max() < 0.51


@pytest.mark.parametrize("target", [500, 5000, 20000])
def test_decimation_reaches_its_target_within_one_percent(target):
    mesh = extract_mesh(SphereField(radius=0.5).sdf, BOX, 128, field_type="sdf", clean={"target_faces": target})
    assert abs(len(mesh.faces) - target) <= 0.01 * target
    assert mesh.is_watertight and mesh.volume > 0
    assert mesh.volume == pytest.approx(4 / 3 * np.pi * 0.5**3, rel=0.02)


def test_decimation_keeps_vertex_colours():
    field = SphereField(radius=0.5, color=lambda p: (p * 0.5 + 0.5).clamp(0, 1))
    mesh = extract_mesh(field.density, BOX, 64, color_fn=field.color, clean=False)
    small = decimate(mesh, 1000)
    expected = np.clip(small.vertices * 0.5 + 0.5, 0, 1) * 255
    assert small.visual.kind == "vertex"
    assert np.abs(small.visual.vertex_colors[:, :3] - expected).max() < 12  # nearest input vertex's colour


def test_taubin_smoothing_smooths_without_shrinking():
    rng = np.random.default_rng(0)
    sphere = trimesh.creation.icosphere(5, radius=0.5)
    noisy = sphere.copy()
    noisy.vertices = noisy.vertices + rng.normal(0, 0.004, noisy.vertices.shape)
    smoothed = clean_mesh(noisy, min_component_share=0.0, smooth_iterations=10)
    roughness = [np.linalg.norm(m.vertices, axis=1).std() for m in (noisy, smoothed)]
    assert roughness[1] < 0.5 * roughness[0]
    assert smoothed.volume == pytest.approx(sphere.volume, rel=0.01)


def test_cleanup_recomputes_outward_normals(raw):
    cleaned = clean_mesh(raw, target_faces=2000)
    outward = (cleaned.vertex_normals * cleaned.vertices).sum(1) / np.linalg.norm(cleaned.vertices, axis=1)
    assert outward.min() > 0.9


@pytest.mark.parametrize("kwargs, message", [
    ({"min_component_share": 1.5}, "argument 'min_component_share' expected a number in \\[0, 1\\], got 1.5"),
    ({"smooth_iterations": -1}, "argument 'smooth_iterations' expected a non-negative int, got -1"),
    ({"smooth_iterations": 2.5}, "argument 'smooth_iterations' expected an int >= 0, got 2.5"),
    ({"target_faces": 2}, "argument 'target_faces' expected None or an int >= 4, got 2"),
])
def test_bad_cleanup_arguments(raw, kwargs, message):
    with pytest.raises(ValueError, match="clean_mesh: " + message):
        clean_mesh(raw, **kwargs)


def test_cleanup_rejects_an_empty_mesh():
    with pytest.raises(ValueError, match="clean_mesh: argument 'mesh' expected at least one face, got an empty mesh"):
        clean_mesh(trimesh.Trimesh())
