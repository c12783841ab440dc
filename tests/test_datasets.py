"""Posed-image datasets: EG3D folders and zips, the x-flip's pose, nerfstudio transforms.json,
and the checker that reports every malformed entry."""

import errno
import json
import re
import math
import zipfile

import numpy as np
import pytest
import torch
from _cli import run_cli
from _storage import oserror_under_a_size_limit
from PIL import Image

from render3d.cameras import Cameras, sample_yaw_pitch
from render3d.datasets import EG3DDataset, TransformsDataset, check_dataset, write_labels

SIZE = 24


def _cameras(n, seed=0):
    return sample_yaw_pitch(n, yaw_spread=0.5, pitch_spread=0.2, radius=2.7, width=SIZE, height=SIZE,
                            fov_degrees=20.0, pivot=(0.0, 0.0, 0.2), generator=torch.Generator().manual_seed(seed),
                            dtype=torch.float64)


def _dot_image(camera: Cameras, point: torch.Tensor) -> np.ndarray:
    """A black image with one white pixel where `point` [3] projects."""
    uv, _ = camera.project(point.reshape(1, 1, 3))
    u, v = (int(math.floor(x)) for x in uv[0, 0].tolist())
    image = np.zeros((SIZE, SIZE, 3), np.uint8)
    image[v, u] = 255
    return image


def _write_dataset(folder, n=6, seed=0):
    """n images, each showing one dot where a fixed off-centre point projects."""
    cameras = _cameras(n, seed)
    point = torch.tensor([0.12, -0.08, 0.25], dtype=torch.float64)
    names = [f"sub/img{i:02d}.png" for i in range(n)]
    (folder / "sub").mkdir(parents=True)
    for i, name in enumerate(names):
        Image.fromarray(_dot_image(cameras[i], point)).save(folder / name)
    write_labels(folder, names, cameras.to_eg3d_label())
    return cameras, point, names


def _zip(folder, path):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for file in sorted(folder.rglob("*")):
            if file.is_file():
                archive.write(file, file.relative_to(folder).as_posix())
    return path


@pytest.mark.parametrize("packed", [False, True], ids=["folder", "zip"])
def test_eg3d_dataset_items_and_dataloader(tmp_path, packed):
    cameras, _, names = _write_dataset(tmp_path / "data")
    path = _zip(tmp_path / "data", tmp_path / "data.zip") if packed else tmp_path / "data"
    dataset = EG3DDataset(path, resolution=SIZE)
    assert len(dataset) == 6 and dataset.names == names
    item = dataset[2]
    assert item["image"].shape == (3, SIZE, SIZE) and item["image"].dtype == torch.float32
    assert item["image"].min() == -1 and item["image"].max() == 1
    torch.testing.assert_close(item["label"], cameras.to_eg3d_label()[2].float())
    loader = torch.utils.data.DataLoader(dataset, batch_size=4, num_workers=1 if packed else 0)
    batch = next(iter(loader))
    assert batch["image"].shape == (4, 3, SIZE, SIZE) and batch["label"].shape == (4, 25)
    torch.testing.assert_close(dataset.cameras(batch["label"]).cam2world, cameras.cam2world[:4].float())


def test_xflip_mirrors_image_and_pose_together(tmp_path):
    cameras, point, _ = _write_dataset(tmp_path)
    dataset = EG3DDataset(tmp_path, xflip=True)
    assert len(dataset) == 12
    mirrored_point = point * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    for i in range(6):
        item = dataset[6 + i]
        assert item["xflip"] and item["index"] == i
        torch.testing.assert_close(item["image"], dataset[i]["image"].flip(-1))
        # The flipped image shows the mirrored world, seen by the camera of the mirrored label:
        # the dot lies where the mirrored point projects through that camera.
        camera = Cameras.from_eg3d_label(item["label"][None].double(), SIZE, SIZE)
        expected = _dot_image(camera, mirrored_point)
        shown = ((item["image"].permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.uint8)
        np.testing.assert_array_equal(shown, expected)


def test_malformed_entries_are_all_reported(tmp_path):
    cameras, _, names = _write_dataset(tmp_path, n=8)
    labels = cameras.to_eg3d_label().tolist()
    labels[1] = labels[1][:16]                                   # wrong length
    labels[2][5] = float("nan")                                  # NaN
    labels[3] = (np.array(labels[3]) * np.r_[np.full(12, 1.2), np.ones(13)]).tolist()  # scaled rotation
    entries = [[n, l] for n, l in zip(names, labels)]
    entries[4][0] = "sub/missing.png"                            # missing file (and img04 now unlabelled)
    entries.append([names[5], labels[5]])                        # duplicate
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": entries}))
    Image.new("RGB", (SIZE + 8, SIZE)).save(tmp_path / names[6])  # wrong size
    report = check_dataset(tmp_path)
    found = {(p.index, p.file): p.message for p in report.problems}
    assert "label has 16 values" in found[(1, names[1])]
    assert "nan" in found[(2, names[2])]
    assert "not rigid" in found[(3, names[3])]
    assert found[(4, "sub/missing.png")] == "file not found"
    assert "duplicate of entry 5" in found[(8, names[5])]
    assert f"image is {SIZE + 8} x {SIZE}" in found[(6, names[6])]
    assert "no entry" in found[(None, names[4])]
    assert len(report.problems) == 7 and not report.ok
    assert len(report.cameras) == 3  # entries 0, 5 and 7 are well formed
    with pytest.raises(ValueError, match=r"EG3DDataset: argument 'path' expected a well-formed EG3D dataset, "
                                         r"got 6 malformed entries: entry 1 \(sub/img01.png\)"):
        EG3DDataset(tmp_path)


def test_a_path_that_misses_dataset_json_says_where_it_is(tmp_path):
    """The usual wrong paths to a dataset: its images folder, the folder above it, a zip made
    of the folder (so dataset.json is one level down), a nerfstudio capture. Each is told
    where the labels are, or what it holds instead."""
    _write_dataset(tmp_path / "ffhq")
    zipped = tmp_path / "nested.zip"
    with zipfile.ZipFile(zipped, "w", compression=zipfile.ZIP_STORED) as archive:
        for file in sorted((tmp_path / "ffhq").rglob("*")):
            archive.write(file, file.relative_to(tmp_path).as_posix())      # ffhq/dataset.json, ffhq/sub/...
    (tmp_path / "capture").mkdir()
    (tmp_path / "capture" / "transforms.json").write_text('{"frames": []}')
    (tmp_path / "empty").mkdir()
    expected = {
        tmp_path / "ffhq" / "sub": f"(there is one in {tmp_path / 'ffhq'}: pass that folder)",
        tmp_path: f"(there is one in {tmp_path / 'ffhq'}: pass that folder)",
        zipped: "(the zip holds one in ffhq/; EG3D's dataset tool writes it at the top of the zip)",
        tmp_path / "capture": "(it holds a nerfstudio transforms.json: the views of one scene, while a 3D-aware "
                              "GAN learns from many subjects, one posed image each, in EG3D's format)",
        tmp_path / "empty": "",
    }
    for path, hint in expected.items():
        with pytest.raises(ValueError) as caught:
            EG3DDataset(path)
        assert str(caught.value) == (f"EG3DDataset: argument 'path' expected an EG3D dataset (a folder or zip with "
                                     f"dataset.json), got no dataset.json in {path} {hint}".rstrip())
    (problem,) = check_dataset(tmp_path / "ffhq" / "sub").problems      # `dataset check` says it too
    assert problem.message == f"no dataset.json in {tmp_path / 'ffhq' / 'sub'} {expected[tmp_path / 'ffhq' / 'sub']}"


def _damage(folder, names):
    """names[1] cut short after its header (PNG), names[2] rewritten as a JPEG and cut in
    half, names[3] not an image at all; the two cut files still report their size."""
    data = (folder / names[1]).read_bytes()
    (folder / names[1]).write_bytes(data[:len(data) - 20])
    Image.open(folder / names[2]).convert("RGB").save(folder / names[2], format="JPEG")
    data = (folder / names[2]).read_bytes()
    (folder / names[2]).write_bytes(data[:len(data) // 2])
    (folder / names[3]).write_bytes(b"not an image")
    return {1: "(OSError: ", 2: "(OSError: ", 3: "(UnidentifiedImageError: cannot identify image file)"}


@pytest.mark.parametrize("packed", [False, True], ids=["folder", "zip"])
def test_damaged_images_are_reported(tmp_path, packed):
    """`dataset check` reads every image whole: a truncated file whose header is intact (which
    `EG3DDataset` accepts and training met only when its batch came) is reported, as are
    files that are not images, in a folder or a zip, EG3D or transforms.json."""
    cameras, _, names = _write_dataset(tmp_path / "data")
    reasons = _damage(tmp_path / "data", names)
    path = _zip(tmp_path / "data", tmp_path / "data.zip") if packed else tmp_path / "data"
    report = check_dataset(path)
    found = {p.index: p.message for p in report.problems}
    assert sorted(found) == [1, 2, 3] and len(report.cameras) == 3
    for index, reason in reasons.items():
        assert found[index].startswith(f"the file cannot be decoded as an image, it is damaged or truncated {reason}")
    with pytest.raises(ValueError, match=re.escape(f"EG3DDataset: entry 3 ({names[3]}) cannot be decoded as an image, "
                                                   f"it is damaged or truncated (UnidentifiedImageError: ")):
        EG3DDataset(path)[3]
    (tmp_path / "data" / "transforms.json").write_text(json.dumps(cameras.to_transforms_json(names)))
    report = check_dataset(tmp_path / "data" / "transforms.json")
    assert sorted(p.index for p in report.problems) == [1, 2, 3]
    with pytest.raises(ValueError, match=re.escape(f"TransformsDataset: frame 3 ({tmp_path / 'data' / names[3]}) "
                                                   f"cannot be decoded as an image")):
        TransformsDataset(tmp_path / "data")[3]


def test_resolution_mismatch_raises(tmp_path):
    _write_dataset(tmp_path)
    with pytest.raises(ValueError, match=rf"argument 'resolution' expected the images' size, got 32 while entry 0 "
                                         rf"\(sub/img00.png\) is {SIZE} x {SIZE}"):
        EG3DDataset(tmp_path, resolution=32)


def test_transforms_json_dataset_matches_the_cameras(tmp_path):
    cameras = _cameras(4)
    names = [f"images/frame_{i:03d}.png" for i in range(4)]
    (tmp_path / "images").mkdir()
    for name in names:
        Image.new("RGBA", (SIZE, SIZE), (10, 20, 30, 0)).save(tmp_path / name)  # fully transparent
    (tmp_path / "transforms.json").write_text(json.dumps(cameras.to_transforms_json(names)))
    dataset = TransformsDataset(tmp_path)
    torch.testing.assert_close(dataset.labels, cameras.to_eg3d_label().float())
    assert torch.equal(dataset[1]["image"], torch.ones(3, SIZE, SIZE))  # composited over white
    assert check_dataset(tmp_path / "transforms.json").ok


def test_transforms_json_z_up_world_turns_y_up(tmp_path):
    # A camera 3 units above a z-up capture, looking down: it must end up above (+y).
    eye = torch.tensor([[0.0, -0.01, 3.0]], dtype=torch.float64)
    camera = Cameras.look_at(eye, up=(0.0, 0.0, 1.0), width=SIZE, height=SIZE, fov_degrees=30.0)
    Image.new("RGB", (SIZE, SIZE)).save(tmp_path / "a.png")
    (tmp_path / "transforms.json").write_text(json.dumps(camera.to_transforms_json(["a.png"])))
    centre = TransformsDataset(tmp_path, world_up="+z").cameras().centers[0]
    torch.testing.assert_close(centre, torch.tensor([0.0, 3.0, 0.01]), atol=1e-5, rtol=0)


def test_transforms_json_bad_frames_are_all_reported(tmp_path):
    cameras = _cameras(3)
    meta = cameras.to_transforms_json(["a.png", "b.png", "c.png"])
    Image.new("RGB", (SIZE, SIZE)).save(tmp_path / "a.png")
    Image.new("RGB", (SIZE, SIZE)).save(tmp_path / "c.png")
    meta["frames"][0]["transform_matrix"][0][0] = float("nan")
    (tmp_path / "transforms.json").write_text(json.dumps(meta))
    report = check_dataset(tmp_path)
    assert [(p.index, p.file) for p in report.problems] == [(0, "a.png"), (1, "b.png")]
    assert "finite" in report.problems[0].message and report.problems[1].message == "file not found"


def test_check_command_lists_every_problem_and_fails(tmp_path):
    cameras, _, names = _write_dataset(tmp_path / "data")
    out = tmp_path / "report"
    ok = run_cli("dataset", "check", tmp_path / "data", "--out", out, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "6 entries, 6 well formed, 0 problems" in ok.stdout and "look-at" in ok.stdout
    assert re.search(r"entries: +\d+%.*/6 \[", ok.stderr)            # every image is read: progress shown
    assert Image.open(out / "cameras.png").size[0] > 0 and str((out / "cameras.png").resolve()) in ok.stdout
    labels = cameras.to_eg3d_label().tolist()
    labels[0][16] = float("nan")
    labels[4] = labels[4][:24]
    write_labels_raw = {"labels": [[n, l] for n, l in zip(names, labels)]}
    (tmp_path / "data" / "dataset.json").write_text(json.dumps(write_labels_raw))
    bad = run_cli("dataset", "check", tmp_path / "data", "--out", out, timeout=120)
    assert bad.returncode == 1
    assert "malformed: entry 0 (sub/img00.png): label value 16 is nan" in bad.stdout
    assert "malformed: entry 4 (sub/img04.png): label has 24 values" in bad.stdout
    report = json.loads((out / "report.json").read_text())
    assert [p["index"] for p in report["problems"]] == [0, 4] and report["well_formed"] == 4


def test_check_command_names_a_path_that_is_no_dataset_as_path(tmp_path, capsys, monkeypatch):
    """It said check_dataset's argument 'path', which is PATH on the command line; and it left
    the empty --out folders it had made (to know they are writable before the long check)."""
    from render3d.cli.main import main

    (tmp_path / "notes.txt").write_text("not a zip")
    assert main(["dataset", "check", str(tmp_path / "notes.txt"), "--out", str(tmp_path / "out" / "check")]) == 2
    assert capsys.readouterr().err.strip() == (f"render3d dataset check: PATH expected a folder or a zip archive, got "
                                               f"'{tmp_path / 'notes.txt'}' (a file that is not a zip)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    monkeypatch.chdir(tmp_path)                         # the default --out, outputs/dataset-check/notes
    assert main(["dataset", "check", "notes.txt"]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    (tmp_path / "kept").mkdir()                         # folders that were there stay
    assert main(["dataset", "check", "notes.txt", "--out", "kept"]) == 2
    assert (tmp_path / "kept").is_dir()


def test_an_out_folder_that_cannot_be_made_leaves_none_of_its_parents(tmp_path, capsys):
    """--out new/<a name too long>: mkdir makes new/, then fails on the last part. The check
    removes what it made before it says so (check_writable_dir, shared by every command). In
    a folder that exists, such a name was a traceback (Path.exists raises for it)."""
    from render3d.cli.main import main

    _write_dataset(tmp_path / "data")
    for out in (tmp_path / "new" / ("a" * 300), tmp_path / ("a" * 300)):
        assert main(["dataset", "check", str(tmp_path / "data"), "--out", str(out)]) == 2
        said = capsys.readouterr().err.strip()
        assert said == f"render3d dataset check: cannot write to --out {out}: File name too long"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


@pytest.mark.parametrize("call, name", [
    ("write_labels({folder!r}, ['images/0.png'], np.zeros((1, 25)))", "dataset.json"),
    ("write_results({folder!r} + '/eval.json', {{'fid': 1.0}}, {{}}, {{}})", "eval.json")], ids=["labels", "results"])
def test_labels_and_results_that_cannot_be_written_are_named_and_leave_no_part(tmp_path, call, name):
    """A full disk (here a file-size limit) while dataset.json or an eval's JSON was written
    named no file and left half of one (a dataset's labels, cut)."""
    said = oserror_under_a_size_limit(call.format(folder=str(tmp_path)), "import numpy as np\n"
                                      "from render3d.datasets import write_labels\n"
                                      "from render3d.metrics import write_results", limit=100)
    assert said == [str(errno.EFBIG), str(tmp_path / name)]
    assert list(tmp_path.iterdir()) == []
