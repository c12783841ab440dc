"""3D metrics: Chamfer distance, COV / MMD / 1-NNA on hand-built shape sets, `render3d eval
shapes` against a synthetic dataset, and multi-view reprojection error on synthetic views."""

import json
import math
import shutil

import numpy as np
import pytest
import torch
import trimesh

from render3d.cameras import Cameras
from render3d.cli.main import main
from render3d.metrics import (
    chamfer_distance,
    chamfer_matrix,
    compare_shape_sets,
    coverage_mmd_1nna,
    load_points,
    reprojection_error,
    sample_surface,
)

pytest.importorskip("open3d")


def _spheres(radii, seed, shift=0.0):
    return [sample_surface(trimesh.creation.icosphere(3, radius=r), 256, seed=seed + i) + [shift, 0, 0]
            for i, r in enumerate(radii)]


def test_chamfer_distance_by_brute_force():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(50, 3)), rng.normal(size=(70, 3)) + 0.2
    squared = ((a[:, None] - b[None]) ** 2).sum(-1)
    assert chamfer_distance(a, b) == pytest.approx(squared.min(1).mean() + squared.min(0).mean())
    assert chamfer_distance(a, a) == 0
    matrix = chamfer_matrix([a, b, a])
    assert matrix[0, 2] == 0 and matrix[1, 0] == matrix[0, 1] == pytest.approx(chamfer_distance(a, b))


def test_chamfer_matrices_on_threads_hold_each_pairs_distance_in_its_place():
    """chamfer_matrix measures pairs on several threads with trees built once: every entry is
    `chamfer_distance` of its own pair, to the bit, with sets of different sizes and places."""
    rng = np.random.default_rng(1)
    sets = [rng.normal(size=(int(rng.integers(20, 90)), 3)) + rng.normal(size=3) for _ in range(23)]
    others = sets[:7]
    for matrix, rows, columns in ((chamfer_matrix(sets), sets, sets),
                                  (chamfer_matrix(sets, others, progress=True), sets, others)):
        assert matrix.shape == (len(rows), len(columns))
        expected = np.array([[chamfer_distance(a, b) for b in columns] for a in rows])
        np.testing.assert_array_equal(matrix, expected)


def test_identical_sets_are_covered_matched_and_recognised_as_copies():
    shapes = _spheres(np.linspace(0.3, 0.8, 8), seed=0)
    metrics = compare_shape_sets(shapes, [s.copy() for s in shapes])
    # Every reference shape has its twin: full coverage, zero matching distance; and each
    # shape's nearest neighbour is its twin in the other set, so 1-NNA is 0 (memorisation).
    assert metrics == {"coverage": 1.0, "mmd": 0.0, "one_nn_accuracy": 0.0}


def test_one_nn_accuracy_is_one_half_by_construction():
    # Single-point "shapes" on a line, Chamfer = 2 d^2. Generated at 0, 1, 100, 200; reference
    # at 10, 11, 100, 200: the first two of each set find their own kind (4 right), the
    # shared positions find their twin in the other set (4 wrong).
    def points(xs):
        return [np.array([[x, 0.0, 0.0]]) for x in xs]

    metrics = compare_shape_sets(points([0, 1, 100, 200]), points([10, 11, 100, 200]))
    assert metrics["one_nn_accuracy"] == 0.5
    assert metrics["coverage"] == 0.75  # 0 and 1 both match 10: 11 is not covered
    assert metrics["mmd"] == pytest.approx((2 * 9**2 + 2 * 10**2 + 0 + 0) / 4)


def test_a_subject_without_a_surface_covers_nothing_and_is_told_apart():
    """None is a generated subject without a surface. By hand, Chamfer = 2 d^2 between single
    points: generated 200 and two empty ones against reference 100 and 200."""
    def points(xs):
        return [None if x is None else np.array([[x, 0.0, 0.0]]) for x in xs]

    metrics = compare_shape_sets(points([200, None, None]), points([100, 200]))
    assert metrics["coverage"] == 0.5                   # 200 covers 200; an empty one covers nothing (not 100)
    assert metrics["mmd"] == pytest.approx((2 * 100**2 + 0) / 2)
    # 200 finds reference 200 (wrong); each empty one finds the other (right); reference 100 ties
    # between generated 200 and reference 200, the tie goes to the generated one (wrong);
    # reference 200 finds generated 200 (wrong).
    assert metrics["one_nn_accuracy"] == 2 / 5
    alone = compare_shape_sets(points([200, None]), points([100, 200]))
    assert alone["one_nn_accuracy"] == 1 / 4           # a lone empty one is nearest to none: told apart
    assert alone["coverage"] == 0.5 and alone["mmd"] == metrics["mmd"]
    with pytest.raises(ValueError, match=r"compare_shape_sets: arguments 'generated', 'reference' expected at least "
                                         r"one shape each \(one with a surface among the generated\), got 0 of 2 "
                                         r"and 2"):
        compare_shape_sets(points([None, None]), points([100, 200]))


def test_same_distribution_and_shifted_sets():
    rng = np.random.default_rng(3)
    reference = _spheres(rng.uniform(0.3, 0.6, 24), seed=0)
    same = compare_shape_sets(_spheres(rng.uniform(0.3, 0.6, 24), seed=100), reference)
    shifted = compare_shape_sets(_spheres(rng.uniform(0.3, 0.6, 24), seed=200, shift=3.0), reference)
    assert 0.3 <= same["one_nn_accuracy"] <= 0.7 and same["coverage"] >= 0.4
    assert shifted["one_nn_accuracy"] == 1.0 and shifted["mmd"] > 100 * same["mmd"]
    # Spheres of radius <= 0.6 three units apart: every pair of points is 1.8 to 4.2 apart.
    assert 2 * 1.8**2 <= shifted["mmd"] <= 2 * 4.2**2


def test_matrix_shapes_are_checked():
    with pytest.raises(ValueError, match=r"coverage_mmd_1nna: arguments expected shapes \[G, R\], \[G, G\], \[R, R\], "
                                         r"got \[2, 3\], \[2, 2\], \[2, 2\]"):
        coverage_mmd_1nna(np.zeros((2, 3)), np.zeros((2, 2)), np.zeros((2, 2)))


def test_load_points_from_meshes_and_arrays(tmp_path):
    sphere = trimesh.creation.icosphere(3, radius=0.5)
    sphere.export(tmp_path / "sphere.ply")
    sphere.export(tmp_path / "sphere.obj")
    np.save(tmp_path / "points.npy", np.asarray(sphere.vertices))
    for name in ("sphere.ply", "sphere.obj", "points.npy"):
        points = load_points(tmp_path / name, 300)
        assert points.shape == (300, 3)
        np.testing.assert_allclose(np.linalg.norm(points, axis=1), 0.5, atol=0.01)


def test_load_points_names_the_file_it_cannot_use(tmp_path):
    # each of these used to end in a traceback from trimesh, numpy or scipy's KD-tree
    (tmp_path / "torn.ply").write_text("ply\n")
    (tmp_path / "nan.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nv nan 0 0\nf 1 2 3\nf 1 2 4\n")
    (tmp_path / "flat.obj").write_text("v 0 0 0\nv 0 0 0\nv 0 0 0\nf 1 2 3\n")
    np.save(tmp_path / "text.npy", np.array([["x", "y", "z"]]))
    np.save(tmp_path / "inf.npy", np.array([[0.0, 0.0, np.inf], [1.0, 0.0, 0.0]]))
    for name, said in (("torn.ply", "which cannot be read (IndexError"), ("nan.obj", "with 1 of 4 points not finite"),
                       ("flat.obj", "a mesh whose 1 faces have no area"), ("text.npy", "holding <U1 values"),
                       ("inf.npy", "with 1 of 2 points not finite")):
        with pytest.raises(ValueError) as error:
            load_points(tmp_path / name, 10)
        assert (f"load_points: argument 'path' expected a mesh or points [N, 3], got {tmp_path / name}"
                in str(error.value))
        assert said in str(error.value), name


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    from render3d.datasets.synth import PoseDistribution, SynthConfig, generate_synthetic

    out = tmp_path_factory.mktemp("synth") / "data"
    # Views close enough to overlap well: yaw within +-0.4 rad of the front.
    poses = PoseDistribution(yaw_spread=0.4, pitch_spread=0.1)
    generate_synthetic(out, SynthConfig(subjects=4, views=2, resolution=64, mesh_resolution=48, poses=poses),
                       progress=False)
    return out


def test_eval_shapes_command_on_a_synthetic_dataset(synthetic, tmp_path, capsys):
    truth = json.loads((synthetic / "ground_truth.json").read_text())
    generated = tmp_path / "generated"
    generated.mkdir()
    for entry in truth["objects"]:  # generated = the reference meshes, a little inflated
        mesh = trimesh.load(synthetic / entry["mesh"])
        mesh.apply_scale(1.1)
        mesh.export(generated / f"{entry['id']}.ply")
    out = tmp_path / "shapes.json"
    assert main(["eval", "shapes", str(generated), str(synthetic), "--points", "512", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["inputs"]["reference"]["shapes"] == 4 and record["settings"]["points"] == 512
    metrics = record["metrics"]
    assert metrics["coverage"] == 1.0 and 0 < metrics["mmd"] < 0.01
    assert str(out.resolve()) in capsys.readouterr().out
    # Against itself, through the same sampling seed: an exact copy.
    shutil.rmtree(generated)
    assert main(["eval", "shapes", str(synthetic), str(synthetic), "--points", "256", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["metrics"] == {"coverage": 1.0, "mmd": 0.0, "one_nn_accuracy": 0.0}


@pytest.mark.parametrize("given,said", [("missing", "does not exist"), ("mesh.ply", "is a file, not a folder"),
                                        ("empty", "holds no shapes")])
def test_eval_shapes_says_what_is_wrong_with_a_set(synthetic, tmp_path, capsys, given, said):
    trimesh.creation.box().export(tmp_path / "mesh.ply")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no shapes here")
    out = tmp_path / "results" / "shapes.json"
    assert main(["eval", "shapes", str(tmp_path / given), str(synthetic), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / given} {said} (expected a synthetic dataset" in err and "trained generator" not in err
    assert not out.parent.exists()                      # found before the results' folder is made


def test_eval_shapes_points_a_generator_at_eval_generator(synthetic, tmp_path, capsys):
    from render3d import DEMO_CHECKPOINT

    out = tmp_path / "results" / "shapes.json"
    assert main(["eval", "shapes", str(DEMO_CHECKPOINT), str(synthetic), "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"render3d eval shapes: {DEMO_CHECKPOINT} is a file, not a folder (expected a synthetic dataset or a folder of "
        f"meshes or .npy points); {DEMO_CHECKPOINT} is a trained generator: `render3d eval generator "
        f"{DEMO_CHECKPOINT} DATASET` measures its shapes")


def _view(dataset, index):
    item = dataset[index]
    camera = dataset.cameras(item["label"][None]).to(dtype=torch.float64)
    return item["image"][None] * 0.5 + 0.5, item["depth"][None], camera, item["mask"][None]


def _turned(camera: Cameras, degrees: float) -> Cameras:
    """The camera with the world turned by `degrees` about +z (a wrong pose)."""
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    turn = torch.tensor([[c, -s, 0, 0], [s, c, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=torch.float64)
    return Cameras(turn @ camera.cam2world, camera.intrinsics, camera.width, camera.height)


def test_reprojection_error_vanishes_for_the_truth_and_grows_with_pose_error(synthetic):
    from render3d.datasets.synth import SyntheticDataset

    dataset = SyntheticDataset(synthetic)
    pixel = 2 * 2.4 * math.tan(math.radians(16)) / 64  # a pixel's footprint at the object, world units
    for subject in range(4):
        (image_a, depth_a, camera_a, mask_a), (image_b, depth_b, camera_b, mask_b) = (
            _view(dataset, 2 * subject), _view(dataset, 2 * subject + 1))
        errors = [reprojection_error(image_a, depth_a, camera_a, image_b, depth_b, _turned(camera_b, degrees),
                                     mask_a=mask_a, mask_b=mask_b) for degrees in (0, 1, 3)]
        truth = errors[0]
        assert truth["points"] > 300 and truth["off_surface"] < 0.01
        assert truth["depth"] < 0.1 * pixel  # a tenth of a pixel's footprint, from interpolation alone
        assert errors[1]["depth"] > 2 * truth["depth"] and errors[2]["depth"] > 2 * errors[1]["depth"]


def test_reprojection_error_checks_its_arguments(synthetic):
    from render3d.datasets.synth import SyntheticDataset

    image, depth, camera, _ = _view(SyntheticDataset(synthetic), 0)
    with pytest.raises(ValueError, match=r"reprojection_error: argument 'depth_b' expected shape \[1, 1, 64, 64\], "
                                         r"got \[1, 64, 64\]"):
        reprojection_error(image, depth, camera, image, depth[0], camera)
