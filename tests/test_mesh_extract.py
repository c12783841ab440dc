"""render3d.mesh.extract_mesh against analytic spheres: closed, manifold, outward, the right
size and in the right place, density and SDF fields, any box; and clear errors."""

import math

import numpy as np
import pytest
import torch

from render3d.mesh import extract_mesh, sample_grid
from render3d.volume import BoxField, SphereField

R = 0.5
BOX = ([-1.0, -1.0, -1.0], [1.0, 1.0, 1.0])
SPHERE_AREA, SPHERE_VOLUME = 4 * math.pi * R**2, 4 / 3 * math.pi * R**3


def assert_closed_manifold_sphere(mesh):
    assert mesh.is_watertight  # every edge in exactly two faces
    assert mesh.is_winding_consistent
    assert mesh.euler_number == 2  # one closed surface of genus 0
    assert mesh.volume > 0  # wound outward


@pytest.fixture(scope="module")
def density_mesh():
    field = SphereField(radius=R)
    # 100 = density_scale / 2: the density's iso-surface at exactly sdf = 0
    return extract_mesh(field.density, BOX, 256, 100.0)


def test_density_sphere_is_closed_outward_and_measures_right(density_mesh):
    assert_closed_manifold_sphere(density_mesh)
    assert density_mesh.area == pytest.approx(SPHERE_AREA, rel=0.01)
    assert density_mesh.volume == pytest.approx(SPHERE_VOLUME, rel=0.01)
    radii = np.linalg.norm(density_mesh.vertices, axis=1)
    assert np.abs(radii - R).max() < 2e-3  # a quarter of a voxel (2/255)
    info = density_mesh.metadata["render3d"]
    assert info["level"] == 100.0 and info["level_mode"] == "fixed" and info["grid"] == [256, 256, 256]


def test_vertex_normals_point_outward(density_mesh):
    outward = ((density_mesh.vertex_normals * density_mesh.vertices).sum(1)
               / np.linalg.norm(density_mesh.vertices, axis=1))
    assert outward.min() > 0.99


def test_sdf_sphere_at_level_zero():
    field = SphereField(radius=R)
    mesh = extract_mesh(field.sdf, BOX, 128, "auto", field_type="sdf")
    assert_closed_manifold_sphere(mesh)
    assert mesh.metadata["render3d"]["level"] == 0.0
    assert mesh.area == pytest.approx(SPHERE_AREA, rel=0.01)
    assert np.abs(np.linalg.norm(mesh.vertices, axis=1) - R).max() < 4e-3


def test_auto_level_finds_the_surface_of_a_sigmoid_density():
    field = SphereField(radius=R)
    mesh = extract_mesh(field.density, BOX, 96)
    level = mesh.metadata["render3d"]["level"]
    assert mesh.metadata["render3d"]["level_mode"] == "auto"
    assert 90 < level < 110  # Otsu's threshold between the empty (0) and filled (200) modes
    assert mesh.volume == pytest.approx(SPHERE_VOLUME, rel=0.02)


def test_auto_level_of_a_grid_with_3_samples_on_its_last_axis_raises_no_warning():
    """skimage's Otsu takes a [..., 3] array for an RGB image and warns; a grid is no image."""
    import warnings

    from render3d.mesh.extract import auto_level

    values = np.zeros((5, 4, 3))
    values[1:4, 1:3, 1] = 200.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert 0 < auto_level(values) < 200


@pytest.mark.parametrize("resolution", [96, (61, 97, 80)])
def test_sphere_sits_where_it_is_in_an_anisotropic_box(resolution):
    center, radius = (0.13, -0.21, 0.37), 0.3
    field = SphereField(center, radius)
    box = ([-0.25, -0.6, -0.1], [0.55, 0.2, 1.2])  # off-centre, different extent per axis
    mesh = extract_mesh(field.sdf, box, resolution, field_type="sdf", clean=False)
    assert mesh.is_watertight and mesh.volume > 0
    distance = np.linalg.norm(mesh.vertices - np.array(center), axis=1)
    assert np.abs(distance - radius).max() < 4e-3
    assert np.allclose(mesh.vertices.mean(0), center, atol=2e-3)
    assert mesh.volume == pytest.approx(4 / 3 * math.pi * radius**3, rel=0.02)


def test_int_resolution_gives_cubic_voxels():
    mesh = extract_mesh(SphereField(radius=0.2).sdf, ([-0.4, -0.3, -0.25], [0.4, 0.3, 0.25]), 81, field_type="sdf")
    assert mesh.metadata["render3d"]["grid"] == [81, 61, 51]  # 0.01 world units per voxel on every axis


def test_surface_leaving_the_box_is_capped_on_its_face():
    field = SphereField(radius=R)
    box = ([-1.0, -1.0, -1.0], [1.0, 0.2, 1.0])  # cuts the sphere at y = 0.2
    mesh = extract_mesh(field.sdf, box, 101, field_type="sdf", clean=False)
    assert mesh.is_watertight and mesh.volume > 0
    assert mesh.vertices[:, 1].max() == 0.2  # the cap lies exactly on the face
    cap = mesh.vertices[mesh.vertices[:, 1] == 0.2]
    assert np.hypot(cap[:, 0], cap[:, 2]).max() < math.sqrt(R**2 - 0.2**2) + 0.02


def test_surface_through_grid_samples_is_welded_closed():
    # the box's faces lie exactly on sample planes (sdf exactly 0 there): a marching cubes
    # that emitted one vertex per edge meeting at such a sample would leave copies unwelded
    field = BoxField(half_size=(0.5, 0.25, 0.75))
    mesh = extract_mesh(field.sdf, BOX, 33, field_type="sdf", clean=False)
    assert mesh.is_watertight and mesh.is_winding_consistent and mesh.euler_number == 2
    assert len(np.unique(mesh.vertices.round(9), axis=0)) == len(mesh.vertices)
    assert np.allclose(mesh.bounds, [[-0.5, -0.25, -0.75], [0.5, 0.25, 0.75]])


def test_chunking_does_not_change_the_grid():
    field = SphereField(radius=R)
    whole = sample_grid(field.density, BOX, 33)
    for chunk in (33 * 33 * 2 + 5, 50, 1):  # several slabs, rows of one slab, less than one row
        assert np.array_equal(sample_grid(field.density, BOX, 33, chunk=chunk), whole)
    xs = np.linspace(-1, 1, 33)
    assert whole[32, 16, 16] == pytest.approx(float(field.density(torch.tensor([[xs[32], 0.0, 0.0]]))), rel=1e-6)


def test_vertex_colours_come_from_the_field():
    field = SphereField(radius=R, color=lambda p: (p * 0.5 + 0.5).clamp(0, 1))
    mesh = extract_mesh(field.density, BOX, 64, color_fn=field.color)
    expected = np.round((np.clip(mesh.vertices * 0.5 + 0.5, 0, 1)) * 255)
    assert mesh.visual.kind == "vertex"
    assert np.abs(mesh.visual.vertex_colors[:, :3] - expected).max() <= 1
    assert (mesh.visual.vertex_colors[:, 3] == 255).all()


def test_empty_field_reports_no_surface():
    with pytest.raises(ValueError, match=r"extract_mesh: the field has no surface inside bbox: argument 'level' "
                                         r"expected a value strictly between .*\[0, 0\], got 0 \(auto\)"):
        extract_mesh(lambda p: torch.zeros(len(p)), BOX, 16)
    field = SphereField(radius=R)
    with pytest.raises(ValueError, match=r"no surface inside bbox.*got 500"):
        extract_mesh(field.density, BOX, 16, 500.0)  # above the density's maximum (200)
    with pytest.raises(ValueError, match="no surface inside bbox"):
        extract_mesh(field.density, ([2, 2, 2], [3, 3, 3]), 16, 100.0)  # the box misses the sphere


def test_no_surface_is_its_own_error_with_the_fields_range():
    """Callers tell 'no surface' (an empty subject) from other bad input by its type, and say
    what the field is like from its range."""
    from render3d.mesh import NoSurfaceError

    with pytest.raises(NoSurfaceError) as empty:
        extract_mesh(lambda p: torch.zeros(len(p)), BOX, 16)
    assert (empty.value.low, empty.value.high, empty.value.level, empty.value.auto) == (0, 0, 0, True)
    assert empty.value.field_said() == "is 0 everywhere"
    with pytest.raises(NoSurfaceError) as above:
        extract_mesh(SphereField(radius=R).density, BOX, 16, 500.0)
    assert above.value.auto is False and above.value.low == 0 and 0 < above.value.high <= 200
    assert above.value.field_said() == f"lies in [0, {above.value.high:.6g}], and the level 500 is not strictly inside"
    with pytest.raises(NoSurfaceError) as sdf:                 # an sdf's range in its own signs
        extract_mesh(lambda p: p.norm(dim=-1) + 1, BOX, 16, field_type="sdf")
    assert sdf.value.level == 0 and sdf.value.auto and 1 <= sdf.value.low < sdf.value.high
    with pytest.raises(ValueError) as nan:                     # other bad input is not "no surface"
        extract_mesh(lambda p: torch.full((len(p),), float("nan")), BOX, 16)
    assert not isinstance(nan.value, NoSurfaceError)


def test_nan_densities_are_reported_with_count_and_place():
    def density(points):
        out = SphereField(radius=R).density(points)
        return torch.where(points[:, 0] > 0.9, torch.nan, out)

    with pytest.raises(ValueError, match=r"argument 'density_fn' expected finite values, got nan at 289 of 4913 "
                                         r"grid points \(the first at world point \[1\.0, -1\.0, -1\.0\]\)"):
        extract_mesh(density, BOX, 17)


@pytest.mark.parametrize("kwargs, message", [
    ({"resolution": 1}, "argument 'resolution' expected an int >= 2 or 3 of them, got 1"),
    ({"resolution": (8, 8)}, "argument 'resolution' expected an int >= 2 or 3 of them"),
    ({"bbox": ([0, 0, 0], [1, -1, 1])}, "argument 'bbox' expected max > min on every axis"),
    ({"bbox": ([0, 0], [1, 1])}, r"argument 'bbox' expected \(min_xyz, max_xyz\) with 3 finite numbers each"),
    ({"level": float("nan")}, "argument 'level' expected 'auto' or a finite number, got nan"),
    ({"level": "otsu"}, "argument 'level' expected one of 'auto', got 'otsu'"),
    ({"field_type": "occupancy"}, "argument 'field_type' expected one of 'density', 'sdf', got 'occupancy'"),
    ({"clean": "yes"}, "argument 'clean' expected True, False or a mapping of clean_mesh keywords"),
    ({"chunk": 0}, "argument 'chunk' expected a positive int, got 0"),
    # numpy's MemoryError for the grid, named (export-mesh --resolution 100000 ended in a traceback)
    ({"resolution": 10**6}, r"argument 'resolution' expected a grid that fits in memory, got 1000000: "
                            r"1000000 x 1000000 x 1000000 samples, 3\.725e\+09 GiB"),
    ({"color_fn": lambda p: p[:, :2]}, r"argument 'color_fn' expected to map points \[N, 3\] to RGB \[N, 3\], "
                                       r"got \[\d+, 2\]"),
])
def test_bad_arguments_name_function_argument_and_value(kwargs, message):
    args = {"density_fn": SphereField(radius=R).density, "bbox": BOX, "resolution": 16, "level": "auto", **kwargs}
    with pytest.raises(ValueError, match=message):
        extract_mesh(**args)


def test_density_fn_of_wrong_shape_is_reported():
    with pytest.raises(ValueError, match=r"argument 'density_fn' expected to map points \[N, 3\] to values \[N\], "
                                         r"got \[4096, 3\] for N=4096"):
        extract_mesh(lambda p: p, BOX, 16)
