"""The synthetic dataset: its ground truth agrees with itself (depth through the label lands on
the mesh, normals are the mesh's, boxes hold their objects), it is deterministic, and it reads
back as an EG3D dataset."""

import filecmp
import json
import math
import re

import numpy as np
import pytest
import torch
import trimesh
from _cli import run_cli
from _storage import size_limit

from render3d.cameras import Cameras
from render3d.cli.main import main
from render3d.datasets import check_dataset
from render3d.datasets.synth import (GROUND_TRUTH_FILE, SYNTH_MARKER, SynthConfig, SyntheticDataset,
                                     generate_synthetic)

pytest.importorskip("open3d")


@pytest.fixture(scope="module")
def objects(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "objects"
    generate_synthetic(out, SynthConfig(kind="objects", subjects=3, views=3, resolution=48, mesh_resolution=64),
                       progress=False)
    return out


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "scenes"
    generate_synthetic(out, SynthConfig(kind="scenes", subjects=2, views=3, resolution=48, mesh_resolution=48),
                       progress=False)
    return out


def _surface_points(dataset, index):
    """World points of entry `index`'s masked pixels: camera centre + depth * unit ray."""
    item = dataset[index]
    camera = Cameras.from_eg3d_label(item["label"][None].double(), dataset.width, dataset.height)
    origins, directions = camera.generate_rays()
    mask = item["mask"].reshape(-1)
    points = origins[0, mask] + item["depth"].reshape(-1)[mask, None].double() * directions[0, mask]
    return points.numpy(), item["object"].reshape(-1)[mask].numpy(), item["normals"].reshape(3, -1).T[mask].numpy()


@pytest.mark.parametrize("kind", ["objects", "scenes"])
def test_depth_through_the_label_lands_on_the_mesh_and_normals_agree(kind, objects, scenes):
    dataset = SyntheticDataset(objects if kind == "objects" else scenes)
    meshes, angles = {}, []
    for index in range(len(dataset)):
        points, ids, normals = _surface_points(dataset, index)
        assert len(points) > 100  # the subject is in view
        for object_id in np.unique(ids):
            mesh = meshes.setdefault(object_id, dataset.mesh(int(object_id)))
            sel = ids == object_id
            closest, distance, triangle = trimesh.proximity.closest_point(mesh, points[sel])
            # float32 depth of a ~3 unit ray: 1e-4 is a few ulps of slack, far below a voxel (~1e-2)
            assert distance.max() < 1e-4, (index, object_id, distance.max())
            face_cosine = np.sum(normals[sel] * mesh.face_normals[triangle], axis=1)
            if dataset.ground_truth["objects"][object_id]["kind"] == "floor":  # flat-shaded: the face's own
                assert face_cosine.min() > 1 - 1e-6, (index, object_id, face_cosine.min())
                continue
            # Smooth objects: the normal is the mesh's vertex normals (shipped in its PLY)
            # interpolated at the hit point, exactly...
            weights = trimesh.triangles.points_to_barycentric(mesh.triangles[triangle], closest)
            vertex_normals = np.asarray(mesh.vertex_normals)[np.asarray(mesh.faces)[triangle]]
            interpolated = np.einsum("nk,nkc->nc", weights, vertex_normals)
            interpolated /= np.linalg.norm(interpolated, axis=1, keepdims=True)
            assert np.sum(normals[sel] * interpolated, axis=1).min() > 1 - 1e-4
            angles.append(np.degrees(np.arccos(face_cosine.clip(-1, 1))))
    assert set(meshes) == {e["id"] for e in dataset.ground_truth["objects"]}  # every mesh was seen
    # ...and close to the faces' normals: a few degrees, more where marching cubes cuts across a
    # crease of the shape (measured at these grids: median 2.6 to 2.9, 90th percentile 8 to 10).
    angles = np.concatenate(angles)
    assert np.median(angles) < 4 and np.percentile(angles, 90) < 15


@pytest.mark.parametrize("kind", ["objects", "scenes"])
def test_boxes_contain_their_objects_and_objects_stand_on_the_floor(kind, objects, scenes):
    dataset = SyntheticDataset(objects if kind == "objects" else scenes)
    boxes = [e for e in dataset.ground_truth["objects"] if e["kind"] == "object"]
    assert len(boxes) >= 3
    for entry in boxes:
        box = entry["box"]
        vertices = np.asarray(dataset.mesh(entry["id"]).vertices)
        local = (vertices - box["center"]) @ np.asarray(box["rotation"])
        half = np.asarray(box["half_size"])
        assert np.all(np.abs(local) <= half + 1e-6)
        assert np.allclose(np.abs(local).max(0), half, atol=1e-6)  # tight: every face of the box is touched
        if kind == "objects":
            assert np.abs(vertices).max() <= 0.45 + 1e-6  # inside EG3D's box [-0.5, 0.5]^3
        else:
            assert vertices[:, 1].min() == pytest.approx(0.0, abs=1e-6)  # standing on the floor's top face
    for scene in dataset.ground_truth["scenes"] if kind == "scenes" else []:
        # Footprints do not overlap: the circles around the boxes' footprints stay apart.
        entries = [dataset.ground_truth["objects"][i] for i in scene["objects"]]
        footprints = [(np.asarray(e["box"]["center"])[[0, 2]],
                       np.linalg.norm(np.asarray(e["box"]["half_size"])[[0, 2]]))
                      for e in entries if e["kind"] == "object"]
        for i, (centre_a, reach_a) in enumerate(footprints):
            for centre_b, reach_b in footprints[i + 1:]:
                assert np.linalg.norm(centre_a - centre_b) > reach_a + reach_b


def test_synthetic_dataset_is_a_valid_eg3d_dataset_with_mirrored_geometry(objects):
    assert check_dataset(objects).ok
    dataset = SyntheticDataset(objects, xflip=True, resolution=48)
    assert len(dataset) == 18
    item, mirrored = dataset[1], dataset[10]
    assert torch.equal(mirrored["depth"], item["depth"].flip(-1))
    torch.testing.assert_close(mirrored["normals"][0], -item["normals"][0].flip(-1))
    # The mirrored depth lands on the mirrored mesh through the mirrored label.
    points, ids, _ = _surface_points(dataset, 10)
    mesh = dataset.mesh(int(ids[0]))
    mirrored_mesh = trimesh.Trimesh(np.asarray(mesh.vertices) * [-1, 1, 1], np.asarray(mesh.faces)[:, ::-1])
    assert trimesh.proximity.closest_point(mirrored_mesh, points)[1].max() < 1e-4


def test_same_seed_same_files_in_any_number_of_processes(tmp_path, objects):
    config = dict(kind="objects", subjects=3, views=3, resolution=48, mesh_resolution=64)
    generate_synthetic(tmp_path / "again", SynthConfig(**config), progress=False, workers=2)
    for name in ("dataset.json", "images/000004.png", "geometry/000004.npz", "meshes/00002.ply"):
        assert filecmp.cmp(objects / name, tmp_path / "again" / name, shallow=False), name
    generate_synthetic(tmp_path / "other", SynthConfig(**config, seed=1), progress=False)
    assert not filecmp.cmp(objects / "images/000000.png", tmp_path / "other" / "images/000000.png", shallow=False)


def test_synth_command_writes_the_dataset(tmp_path):
    small = ["--resolution", "32", "--mesh-resolution", "32", "--workers", "1"]
    command = ["dataset", "synth", tmp_path / "out", *small]
    result = run_cli(*command, "--subjects", "1", "--views", "2")
    assert result.returncode == 0, result.stderr
    assert str((tmp_path / "out" / "dataset.json").resolve()) in result.stdout
    truth = json.loads((tmp_path / "out" / "ground_truth.json").read_text())
    assert truth["settings"]["resolution"] == 32 and len(truth["images"]) == 2
    again = run_cli(*command, "--subjects", "1", "--views", "1")
    assert again.returncode == 2 and "holding dataset.json, ground_truth.json, images" in again.stderr
    assert main(["dataset", "synth", str(tmp_path / "out"), *small, "--subjects", "1", "--views", "1",
                 "--overwrite"]) == 0
    assert sorted(p.name for p in (tmp_path / "out" / "images").iterdir()) == ["000000.png"]  # none left over
    bad = run_cli("dataset", "synth", tmp_path / "x", "--resolution", "512", timeout=120)
    assert bad.returncode == 2
    assert "render3d dataset synth: --resolution expected 32 to 256 pixels, got 512" in bad.stderr


def test_overwrite_replaces_only_a_synthetic_dataset(tmp_path):
    """--overwrite deleted `images/` of any folder holding a dataset, someone's own EG3D one
    included; now it replaces only what render3d wrote: a folder with ground_truth.json, or
    the marker written first, which an interrupted run leaves."""
    config = SynthConfig(subjects=1, views=1, resolution=32, supersample=1, mesh_resolution=16)
    own = tmp_path / "own"
    (own / "images").mkdir(parents=True)
    (own / "images" / "photo.png").write_bytes(b"a photo")
    (own / "dataset.json").write_text('{"labels": []}')
    with pytest.raises(ValueError, match=re.escape(f"got {own} holding dataset.json, images but no ground_truth.json: "
                                                   f"a dataset render3d did not write, which overwrite does not "
                                                   f"delete; choose another folder")):
        generate_synthetic(own, config, progress=False, overwrite=True)
    assert (own / "images" / "photo.png").read_bytes() == b"a photo"
    interrupted = tmp_path / "interrupted"
    (interrupted / "images").mkdir(parents=True)
    (interrupted / "images" / "000007.png").write_bytes(b"stale")
    (interrupted / SYNTH_MARKER).write_text("")
    generate_synthetic(interrupted, config, progress=False, overwrite=True)
    assert sorted(p.name for p in (interrupted / "images").iterdir()) == ["000000.png"]
    generate_synthetic(interrupted, config, progress=False, overwrite=True)   # a finished one, again
    assert (interrupted / GROUND_TRUTH_FILE).is_file() and (interrupted / SYNTH_MARKER).is_file()


@pytest.mark.parametrize("option,said", [
    # named by the option (it was "SynthConfig: argument 'mesh_resolution'")
    (["--mesh-resolution", "1"], "render3d dataset synth: --mesh-resolution expected 8 or more grid points per side, "
                                 "got 1"),
    (["--seed", "-5"], "render3d dataset synth: --seed expected a non-negative int, got -5"),
    (["--radius", "-1"], "render3d dataset synth: --radius expected a positive finite number, got -1.0"),
    (["--fov", "nan"], "render3d dataset synth: --fov expected degrees in (0, 180), got nan"),
    # said in the degrees typed (it was "expected radians in [0, pi] ..., got 3.49 (200 degrees)")
    (["--pitch-mean", "200"], "render3d dataset synth: --pitch-mean expected degrees in [0, 180] (0 looks down from "
                              "+y, 180 up from below), got 200.0\n"),
    (["--pitch-mean", "-1", "--kind", "scenes"], "--pitch-mean expected degrees in [0, 180] (0 looks down from +y, "
                                                 "180 up from below), got -1.0\n"),
    (["--yaw-spread", "inf"], "render3d dataset synth: --yaw-spread expected a finite non-negative number (degrees), "
                              "got inf\n"),
    (["--pitch-spread", "-5"], "render3d dataset synth: --pitch-spread expected a finite non-negative number "
                               "(degrees), got -5.0\n"),
])
def test_synth_refuses_settings_before_rendering_anything(tmp_path, capsys, option, said):
    # each of these used to fail inside the workers, after the progress bar started, or with a
    # ZeroDivisionError (a 1-point marching-cubes grid) or numpy's unnamed seed complaint
    assert main(["dataset", "synth", str(tmp_path / "out"), "--workers", "1", *option]) == 2
    err = capsys.readouterr().err
    assert said in err and "synth objects" not in err
    assert not (tmp_path / "out").exists()


def test_synth_takes_its_pose_options_in_degrees_over_the_kinds_defaults():
    from render3d.cli.dataset import _synth_config
    from render3d.cli.main import build_parser
    from render3d.datasets.synth import DEFAULT_POSES

    args = build_parser().parse_args(["dataset", "synth", "out", "--kind", "scenes", "--yaw-mean", "90",
                                      "--pitch-spread", "10", "--pitch-mean", "180", "--fov", "50"])
    poses = _synth_config(args).poses
    scenes = DEFAULT_POSES["scenes"]
    assert (poses.yaw_mean, poses.pitch_mean) == (math.pi / 2, math.pi)     # 180 is allowed: looking up
    assert poses.pitch_spread == pytest.approx(math.radians(10), rel=1e-15) and poses.fov_degrees == 50
    assert (poses.yaw_spread, poses.radius, poses.pivot) == (scenes.yaw_spread, scenes.radius, scenes.pivot)


def test_synth_names_an_output_folder_under_a_file(tmp_path, capsys):
    """Its own folder check (shared with eval) said '--out ...: Not a directory' for the
    positional OUT; now the CLI's check_writable_dir, which names the file in the way."""
    (tmp_path / "file").write_text("")
    assert main(["dataset", "synth", str(tmp_path / "file" / "out"), "--workers", "1"]) == 2
    assert capsys.readouterr().err.strip() == (f"render3d dataset synth: cannot write to OUT "
                                               f"{tmp_path / 'file' / 'out'}: {tmp_path / 'file'} is a file, not a "
                                               f"folder")


def test_a_grid_too_coarse_for_an_object_is_named():
    from render3d.datasets.procedural import mesh_object, random_object

    obj = random_object(np.random.default_rng(0))
    assert len(mesh_object(obj, 8).faces) > 0
    with pytest.raises(ValueError, match="mesh_object: argument 'resolution' .* got 2 points per side and no surface"):
        mesh_object(obj, 2)


def test_a_full_disk_while_synthesizing_names_the_file(tmp_path):
    """A full disk (here a file-size limit) said "render3d dataset: cannot write: No space left on
    device" (neither the command nor the file), after the progress bar's last line had been
    drawn over it, and left half a mesh."""
    out = tmp_path / "out"
    result = run_cli("dataset", "synth", out, "--workers", "1", "--subjects", "1", "--views", "1", "--resolution", "32",
                     preexec_fn=size_limit(200))
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1] == (f"render3d dataset synth: cannot write {out / 'meshes' / '00000.ply'}: "
                                              "File too large; free space or write elsewhere")
    assert list((out / "meshes").iterdir()) == []
