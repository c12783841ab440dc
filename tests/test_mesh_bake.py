"""Vertex colours baked from pictures (`render3d.mesh.bake_vertex_colors`) against pictures
made by analytic ray-sphere intersection, and a generator's baked mesh against its renders."""

import math

import numpy as np
import pytest
import torch
import trimesh

from render3d.cameras import Cameras
from render3d.mesh import bake_vertex_colors

SIZE = 96


def sphere_color(points: torch.Tensor, center, radius: float) -> torch.Tensor:
    """A smooth colour on a sphere: its unit normal mapped to [0, 1]."""
    return ((points - torch.tensor(center)) / radius + 1) / 2


def analytic_pictures(cameras: Cameras, spheres) -> tuple[torch.Tensor, torch.Tensor]:
    """Pictures ``[V, 3, H, W]`` and coverage of `spheres` [(center, radius, colour fn)]: for each
    pixel's ray the nearest sphere hit, solved in closed form; white where no sphere is hit."""
    origins, directions = cameras.generate_rays()
    best = torch.full(origins.shape[:-1], math.inf)
    image = torch.ones(*origins.shape[:-1], 3)
    for center, radius, color in spheres:
        offset = origins - torch.tensor(center)
        b = (offset * directions).sum(-1)
        disc = b * b - (offset * offset).sum(-1) + radius * radius
        t = -b - disc.clamp_min(0).sqrt()
        hit = (disc > 0) & (t > 0) & (t < best)
        best = torch.where(hit, t, best)
        image = torch.where(hit[..., None], color(origins + t[..., None] * directions), image)
    shape = (len(cameras), cameras.height, cameras.width)
    alpha = torch.isfinite(best).float().reshape(*shape)[:, None]
    return image.reshape(*shape, 3).permute(0, 3, 1, 2).contiguous(), alpha


def look_from(eyes) -> Cameras:
    eyes = torch.tensor(eyes, dtype=torch.float32)
    return Cameras.look_at(eyes, torch.zeros_like(eyes), width=SIZE, height=SIZE, fov_degrees=40.0)


def test_seen_vertices_take_the_colour_of_the_surface_there():
    radius = 0.5
    mesh = trimesh.creation.icosphere(subdivisions=4, radius=radius)
    ring = [[3 * math.cos(a), 0.8, 3 * math.sin(a)] for a in np.linspace(0, 2 * math.pi, 6, endpoint=False)]
    cameras = look_from(ring)
    images, alpha = analytic_pictures(cameras, [((0, 0, 0), radius, lambda p: sphere_color(p, (0, 0, 0), radius))])
    colors, seen = bake_vertex_colors(mesh, images, cameras, alpha=alpha)
    vertices = torch.tensor(mesh.vertices, dtype=torch.float32)
    expected = sphere_color(vertices, (0, 0, 0), radius).numpy()
    # a convex surface: seen exactly where some camera looks at it within min_cosine (0.3)
    toward = torch.nn.functional.normalize(cameras.centers[:, None] - vertices, dim=-1)
    best_cosine = (toward * vertices / radius).sum(-1).max(0).values.numpy()
    assert seen[best_cosine > 0.31].all() and not seen[best_cosine < 0.29].any()
    assert seen.mean() > 0.7
    error = np.abs(colors[seen] - expected[seen])
    assert error.mean() < 0.002 and error.max() < 0.01     # a 96 px picture: 0.02 of colour per pixel
    assert (colors[~seen] == 0).all()


def test_hidden_and_back_facing_vertices_are_not_seen():
    """One camera on +z: a small red sphere hides the middle of a big green one behind it."""
    eye = np.array([0.0, 0.0, 3.0])
    camera = look_from([eye.tolist()])
    spheres = [((0, 0, 0), 0.3, torch.tensor([1.0, 0.0, 0.0])), ((0, 0, -1.0), 0.6, torch.tensor([0.0, 1.0, 0.0]))]
    parts = []
    for center, radius, _ in spheres:
        part = trimesh.creation.icosphere(subdivisions=4, radius=radius)
        parts.append(part.apply_translation(center))
    mesh = trimesh.util.concatenate(parts)
    images, alpha = analytic_pictures(camera, [(c, r, lambda p, k=k: k.expand_as(p)) for c, r, k in spheres])
    colors, seen = bake_vertex_colors(mesh, images, camera, alpha=alpha)
    v = np.asarray(mesh.vertices)
    red = np.arange(len(v)) < len(parts[0].vertices)
    centers = np.where(red[:, None], 0.0, [[0.0, 0.0, -1.0]])
    normals = (v - centers) / np.where(red, 0.3, 0.6)[:, None]
    sight = (eye - v) / np.linalg.norm(eye - v, axis=1, keepdims=True)
    cosine = (normals * sight).sum(1)
    # the red sphere covers the directions within asin(0.3 / 3) of the camera's axis
    off_axis = np.arccos(np.clip(sight[:, 2], -1, 1))
    hidden = ~red & (off_axis < math.asin(0.1) - 0.01)
    clear = ~red & (off_axis > math.asin(0.1) + 0.01)
    assert not seen[cosine < 0.29].any() and not seen[hidden].any()
    assert hidden.sum() > 20 and (clear & (cosine > 0.31)).sum() > 100
    assert seen[red & (cosine > 0.31)].all() and seen[clear & (cosine > 0.31)].all()
    # within a pixel or two of the red outline the picture itself blends red and green
    inner = seen & (cosine > 0.5) & (red | (off_axis > math.asin(0.1) + 0.02))
    np.testing.assert_allclose(colors[inner & red], [[1.0, 0.0, 0.0]] * int((inner & red).sum()), atol=0.01)
    np.testing.assert_allclose(colors[inner & ~red], [[0.0, 1.0, 0.0]] * int((inner & ~red).sum()), atol=0.01)
    assert (colors[seen & red, 0] > 0.7).all() and (colors[seen & ~red, 1] > 0.7).all()


def test_uncovered_pixels_count_for_nothing():
    """A second view whose picture is all blue with zero coverage changes nothing."""
    radius = 0.5
    mesh = trimesh.creation.icosphere(subdivisions=3, radius=radius)
    cameras = look_from([[0.0, 0.5, 3.0], [0.3, 0.5, 3.0]])
    images, alpha = analytic_pictures(cameras, [((0, 0, 0), radius, lambda p: sphere_color(p, (0, 0, 0), radius))])
    alone, seen_alone = bake_vertex_colors(mesh, images[:1], cameras[:1], alpha=alpha[:1])
    images[1] = torch.tensor([0.0, 0.0, 1.0])[:, None, None]
    alpha[1] = 0
    both, seen_both = bake_vertex_colors(mesh, images, cameras, alpha=alpha)
    np.testing.assert_array_equal(seen_alone, seen_both)
    np.testing.assert_allclose(both, alone, atol=1e-6)
    # nor does a camera that looks away from the mesh
    away = Cameras.look_at(torch.tensor([[0.0, 0.5, 3.0]]), torch.tensor([[0.0, 0.5, 6.0]]), width=SIZE, height=SIZE,
                           fov_degrees=40.0)
    more, seen_more = bake_vertex_colors(mesh, torch.cat([images[:1], images[:1]]), Cameras.cat([cameras[:1], away]),
                                         alpha=torch.cat([alpha[:1], alpha[:1]]))
    np.testing.assert_array_equal(seen_more, seen_alone)
    np.testing.assert_allclose(more, alone, atol=1e-6)


def test_bad_arguments_are_named():
    mesh = trimesh.creation.icosphere(subdivisions=1)
    cameras = look_from([[0.0, 0.0, 3.0]])
    images = torch.zeros(1, 3, SIZE, SIZE)
    with pytest.raises(ValueError, match=r"bake_vertex_colors: argument 'images' expected shape \[1, 3, 96, 96\]"):
        bake_vertex_colors(mesh, images[:, :, :10], cameras)
    with pytest.raises(ValueError, match="argument 'cameras' expected render3d.cameras.Cameras, got list"):
        bake_vertex_colors(mesh, images, [cameras])
    with pytest.raises(ValueError, match=r"argument 'min_cosine' expected a number in \[0, 1\), got 1.5"):
        bake_vertex_colors(mesh, images, cameras, min_cosine=1.5)
    with pytest.raises(ValueError, match="argument 'mesh' expected a mesh with faces, got 0 vertices and 0 faces"):
        bake_vertex_colors(trimesh.Trimesh(), images, cameras)


def test_a_generator_mesh_looks_like_its_renders_from_a_new_view(monkeypatch):
    """The shipped demo model: a view between the baking views (half a step in yaw, off the
    rings' pitches); the baked vertex colours match its picture there far better than its
    colour head's."""
    from render3d import DEMO_CHECKPOINT
    from render3d.generators.sampling import extract_generator_mesh, styles_from_seeds, view_cameras
    from render3d.training import load_generator

    G, meta = load_generator(DEMO_CHECKPOINT)
    view = meta["view"]
    ws = styles_from_seeds(G, [0], view, truncation=0.7)
    baked = extract_generator_mesh(G, ws, resolution=64, view=view)
    field = extract_generator_mesh(G, ws, resolution=64, color="field")
    assert baked.metadata["render3d"]["colors"] == "renders" and field.metadata["render3d"]["colors"] == "field"
    np.testing.assert_array_equal(baked.vertices, field.vertices)
    size = G.resolutions[-1]
    camera = view_cameras(view, 24, size, pitch_offset=-0.15)[1]
    with torch.no_grad():
        picture = ((G.synthesis(ws, camera, noise_mode="const")["image"] + 1) / 2).clamp(0, 1)
    # the vertices this camera sees face on (the rendered surface and the mesh agree there)
    vertices = torch.tensor(baked.vertices, dtype=torch.float32)
    normals = torch.tensor(baked.vertex_normals, dtype=torch.float32)
    toward = torch.nn.functional.normalize(camera.centers - vertices, dim=-1)
    uv, _ = camera.project(vertices[None])
    facing = (normals * toward).sum(-1) > 0.8
    sampled = torch.nn.functional.grid_sample(picture, (uv / size * 2 - 1)[:, facing, None], align_corners=False)
    truth = sampled[0, :, :, 0].T.numpy()

    def error(mesh):
        return float(np.abs(mesh.visual.vertex_colors[facing.numpy(), :3] / 255 - truth).mean())

    assert facing.sum() > 200
    assert error(baked) < 0.05 and error(baked) < error(field) / 2, (error(baked), error(field))
    with pytest.raises(ValueError, match="extract_generator_mesh: argument 'view' expected the generator's metadata"):
        extract_generator_mesh(G, ws, resolution=32)
    with pytest.raises(ValueError, match="argument 'color' expected one of 'renders', 'field' or None, got True"):
        extract_generator_mesh(G, ws, resolution=32, color=True, view=view)
    # a mesh that no view sees takes its colour head's colours
    import render3d.mesh

    def sees_nothing(mesh, images, cameras, alpha):
        return np.zeros((len(mesh.vertices), 3), np.float32), np.zeros(len(mesh.vertices), bool)

    monkeypatch.setattr(render3d.mesh, "bake_vertex_colors", sees_nothing)
    unseen = extract_generator_mesh(G, ws, resolution=32, view=view)
    field = extract_generator_mesh(G, ws, resolution=32, color="field")
    np.testing.assert_array_equal(unseen.visual.vertex_colors, field.visual.vertex_colors)
