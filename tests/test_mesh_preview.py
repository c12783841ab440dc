"""Mesh previews: open3d's ray casting against the projected sphere, colours and shading;
nvdiffrast (CUDA) against open3d where both are present."""

import math

import numpy as np
import pytest
import torch
import trimesh

from render3d.cameras import Cameras, Framing
from render3d.mesh import axes_arrows, render_mesh, with_axes
from render3d.visualize import views_grid

R = 0.5


@pytest.fixture(scope="module")
def red_sphere():
    sphere = trimesh.creation.icosphere(6, radius=R)  # 82k faces: polygon error < 1e-4 of R
    sphere.visual = trimesh.visual.ColorVisuals(sphere,
                                                vertex_colors=np.tile([230, 40, 20, 255], (len(sphere.vertices), 1)))
    return sphere


def test_sphere_silhouette_depth_and_normals_match_the_analytic_projection(red_sphere):
    framing = Framing(radius=2.0, elevation=0.3, fov_degrees=40.0)
    cameras = framing.cameras(3, 96)
    views = render_mesh(red_sphere, cameras)
    assert views["image"].shape == (3, 3, 96, 96) and views["depth"].shape == (3, 1, 96, 96)
    # a sphere seen from distance d covers a disc of radius f tan(asin(R / d)) pixels
    focal = 48 / math.tan(math.radians(20))
    disc = math.pi * (focal * math.tan(math.asin(R / 2.0))) ** 2
    assert views["alpha"].sum((1, 2, 3)).numpy() == pytest.approx([disc] * 3, rel=0.01)
    centre = views["depth"][:, 0, 47:49, 47:49]
    assert torch.allclose(centre, torch.tensor(2.0 - R), atol=2e-3)
    # centre normals face the camera: -(viewing direction) = camera position / d
    normals = views["normals"][:, :, 48, 48]
    assert torch.allclose(normals, cameras.centers / 2.0, atol=0.03)


def test_colours_are_the_vertex_colours_shaded(red_sphere):
    views = render_mesh(red_sphere, Framing(radius=2.0).cameras(1, 64), background=(0.0, 0.0, 1.0))
    image, alpha = views["image"][0], views["alpha"][0, 0]
    inside = image[:, alpha == 1]
    hue = inside / inside.amax(0, keepdim=True)
    assert torch.allclose(hue, torch.tensor([230, 40, 20]).float()[:, None] / 230, atol=0.02)
    assert inside[0].max() > 0.8 and inside[0].min() < 0.6  # lit and shaded sides
    assert torch.equal(image[:, alpha == 0], torch.tensor([[0.0], [0.0], [1.0]]).expand(3, int((alpha == 0).sum())))


def test_colours_are_interpolated_from_the_right_corners():
    # one triangle facing the camera, a pure colour at each corner
    corners = np.array([[-0.5, -0.4, 0.0], [0.5, -0.4, 0.0], [0.0, 0.5, 0.0]])
    triangle = trimesh.Trimesh(corners, [[0, 1, 2]], process=False)
    triangle.visual = trimesh.visual.ColorVisuals(triangle, vertex_colors=[[255, 0, 0, 255], [0, 255, 0, 255],
                                                                           [0, 0, 255, 255]])
    camera = Cameras.look_at(torch.tensor([[0.0, 0.0, 2.0]]), (0.0, 0.0, 0.0), (0.0, 1.0, 0.0), width=64, height=64,
                             fov_degrees=40.0)
    image = render_mesh(triangle, camera)["image"][0]
    near_corners = corners * 0.85 + corners.mean(0) * 0.15
    uv, _ = camera.project(torch.tensor(near_corners, dtype=torch.float32)[None])
    for channel, (u, v) in enumerate(uv[0].long().tolist()):
        assert image[:, v, u].argmax() == channel and image[channel, v, u] > 2 * image[:, v, u].sort().values[1]


def test_uncoloured_mesh_renders_grey_and_views_grid_shows_it():
    views = render_mesh(trimesh.creation.box((0.6, 0.4, 0.5)), Framing(radius=2.5).cameras(2, 48))
    covered = views["image"][:, :, views["alpha"][0, 0] == 1]
    assert torch.allclose(covered[:, 0], covered[:, 1]) and torch.allclose(covered[:, 1], covered[:, 2])
    grid = views_grid(views, rows=("image", "depth", "normals"))
    assert grid.shape == (3, 2 + 3 * 50, 2 + 2 * 50)


def test_axes_point_along_plus_x_y_z():
    arrows = axes_arrows(1.0)
    for axis in range(3):  # X red, Y green, Z blue
        tip = arrows.vertices[:, axis].argmax()
        assert arrows.vertices[tip, axis] == pytest.approx(1.0)
        color = arrows.visual.vertex_colors[tip, :3].astype(int)
        assert color.argmax() == axis and color[axis] - np.delete(color, axis).max() > 100
    combined = with_axes(trimesh.creation.icosphere(2, radius=0.3), 1.0)
    assert len(combined.vertices) == len(arrows.vertices) + 162


def test_bad_preview_arguments(red_sphere):
    cameras = Framing(radius=2.0).cameras(1, 16)
    with pytest.raises(ValueError, match="render_mesh: argument 'backend' expected one of 'open3d', 'nvdiffrast', "
                                         "got 'opengl'"):
        render_mesh(red_sphere, cameras, backend="opengl")
    with pytest.raises(ValueError, match="render_mesh: argument 'mesh' expected a trimesh.Trimesh with faces"):
        render_mesh(trimesh.Trimesh(), cameras)
    with pytest.raises(ValueError, match="render_mesh: argument 'supersample' expected an int >= 1, got 0"):
        render_mesh(red_sphere, cameras, supersample=0)


@pytest.mark.cuda
def test_nvdiffrast_matches_open3d(red_sphere):
    pytest.importorskip("nvdiffrast.torch", reason="nvdiffrast is not installed")
    cameras = Framing(radius=2.0, elevation=0.3, fov_degrees=40.0).cameras(3, 96)
    cast = render_mesh(red_sphere, cameras, backend="open3d")
    raster = render_mesh(red_sphere, cameras, backend="nvdiffrast")
    covered = (cast["alpha"] == 1) & (raster["alpha"] == 1)
    assert (cast["alpha"] - raster["alpha"]).abs().mean() < 0.01
    assert (cast["depth"] - raster["depth"])[covered].abs().max() < 1e-3
    assert (cast["image"] - raster["image"]).abs().amax(1, keepdim=True)[covered].max() < 0.02
