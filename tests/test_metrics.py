"""FID and KID maths against scipy and naive formulas, the Inception loading path, the image
folders they read, and `render3d eval images`."""

import json
import re

import numpy as np
import pytest
import scipy.linalg
import torch
from _cli import run_cli
from PIL import Image

from render3d.cli.main import main
from render3d.metrics import (
    ImageFolder,
    InceptionFeatures,
    extract_features,
    feature_statistics,
    fid,
    frechet_distance,
    kid,
)


class SmallFeatures(torch.nn.Module):
    """A small, locally initialised conv net standing in for Inception: [N, 3, H, W] -> [N, 16]."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, stride=2), torch.nn.ReLU(),
                                       torch.nn.Conv2d(8, 16, 3, stride=2), torch.nn.ReLU(),
                                       torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())

    def forward(self, images):
        return self.net(images * 2 - 1)


def _images(n, seed=0, size=32):
    """Smooth random images [n, 3, size, size] in [0, 1]: blurred noise plus a colour ramp."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.rand(n, 3, size // 4, size // 4, generator=generator)
    ramp = torch.linspace(0, 1, size).expand(n, 3, size, size)
    return (0.6 * torch.nn.functional.interpolate(noise, size=size, mode="bilinear") + 0.4 * ramp).clamp(0, 1)


def _scipy_fid(a, b):
    """The FID formula as EG3D writes it, with scipy.linalg.sqrtm."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False, bias=True), np.cov(b, rowvar=False, bias=True)
    root = scipy.linalg.sqrtm(cov_a @ cov_b)
    return float(np.real(np.square(mu_a - mu_b).sum() + np.trace(cov_a + cov_b - 2 * root)))


def test_statistics_and_frechet_distance_match_scipy():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 12)) @ rng.normal(size=(12, 12))
    b = rng.normal(size=(300, 12)) @ rng.normal(size=(12, 12)) + 0.3
    mean, cov = feature_statistics(a)
    np.testing.assert_allclose(mean, a.mean(0))
    np.testing.assert_allclose(cov, np.cov(a, rowvar=False, bias=True), atol=1e-12)
    assert fid(a, b) == pytest.approx(_scipy_fid(a, b), rel=1e-9)
    # Rank-deficient covariances (fewer samples than dimensions), where sqrtm's result is complex.
    c, d = rng.normal(size=(8, 12)), rng.normal(size=(9, 12)) + 1.0
    assert fid(c, d) == pytest.approx(_scipy_fid(c, d), rel=1e-6)
    # Two Gaussians with known statistics: means 3 apart on one axis, covariances I and 4 I.
    eye = np.eye(5)
    assert frechet_distance(np.zeros(5), eye, np.eye(5)[0] * 3, 4 * eye) == pytest.approx(9 + 5 + 20 - 2 * 2 * 5)


def test_kid_matches_the_unbiased_mmd_by_hand():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(20, 6)), rng.normal(size=(20, 6)) + 0.5

    def k(x, y):
        return (x @ y / 6 + 1) ** 3

    # One subset holding every feature: KID is the unbiased MMD^2 of the two whole sets.
    within = sum(k(a[i], a[j]) + k(b[i], b[j]) for i in range(20) for j in range(20) if i != j) / (20 * 19)
    across = sum(k(a[i], b[j]) for i in range(20) for j in range(20)) / 400
    mean, std = kid(a, b, subsets=1, subset_size=20)
    assert mean == pytest.approx(within - 2 * across, rel=1e-10) and std == 0
    # Same distribution: near 0 (unbiased); shifted: clearly positive.
    same = kid(rng.normal(size=(300, 6)), rng.normal(size=(300, 6)), subsets=50, subset_size=100)
    shifted = kid(rng.normal(size=(300, 6)), rng.normal(size=(300, 6)) + 0.5, subsets=50, subset_size=100)
    assert abs(same[0]) < 3 * same[1] + 1e-3 and shifted[0] > 10 * abs(same[0]) + 0.05


def test_fid_of_a_set_with_itself_is_zero_and_grows_with_perturbation():
    network = SmallFeatures().eval()
    images = _images(96)
    reference = extract_features(images.split(32), network)
    assert fid(reference, reference) == pytest.approx(0, abs=1e-8)
    generator = torch.Generator().manual_seed(5)
    scores = []
    for sigma in (0.02, 0.08, 0.2):
        noisy = (images + sigma * torch.randn(images.shape, generator=generator)).clamp(0, 1)
        scores.append(fid(reference, extract_features(noisy.split(32), network)))
    assert 0 < scores[0] < scores[1] < scores[2]


def test_fid_is_never_negative():
    # rounding put FID(x, x) at about -1e-14 for half of these sets, and the CLI printed "FID -0.0000"
    scores = [fid(x, x) for x in (np.random.default_rng(seed).normal(size=(64, 16)) for seed in range(20))]
    assert min(scores) >= 0 and max(scores) < 1e-10
    assert {f"{score:.4f}" for score in scores} == {"0.0000"}


def test_inception_loads_a_local_torchscript_file_and_names_the_missing_one(tmp_path):
    class Detector(torch.nn.Module):  # the interface of inception-2015-12-05.pt
        def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
            assert x.dtype == torch.uint8
            features = x.float().mean(dim=(2, 3))
            return features if return_features else features.softmax(-1)

    path = tmp_path / "inception-2015-12-05.pt"
    torch.jit.script(Detector()).save(str(path))
    features = InceptionFeatures(path)(torch.full((2, 3, 8, 8), 0.5))
    torch.testing.assert_close(features, torch.full((2, 3), 128.0, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"InceptionFeatures: argument 'path' expected the TorchScript Inception "
                                         r"file inception-2015-12-05.pt .* got no file at .*nowhere.pt.*"
                                         r"https://nvlabs-fi-cdn.nvidia.com/.*/inception-2015-12-05.pt"):
        InceptionFeatures(tmp_path / "nowhere.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="torch.jit.load cannot read"):
        InceptionFeatures(tmp_path / "junk.pt")


def _write_images(folder, images):
    folder.mkdir(parents=True)
    for i, image in enumerate(images):
        Image.fromarray((image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(folder / f"{i:03d}.png")


def test_image_folder_batches_and_size_check(tmp_path):
    images = _images(5)
    _write_images(tmp_path / "a", images)
    folder = ImageFolder(tmp_path / "a")
    batches = list(folder.batches(2))
    assert [len(b) for b in batches] == [2, 2, 1]
    torch.testing.assert_close(torch.cat(batches), images, atol=1 / 255, rtol=0)
    Image.new("RGB", (16, 16)).save(tmp_path / "a" / "zzz.png")
    with pytest.raises(ValueError, match=re.escape(f"expected every image in {tmp_path / 'a'} to be 32 x 32 (as "
                                                   f"000.png), got 16 x 16 for zzz.png")):
        list(ImageFolder(tmp_path / "a").batches(8))
    (tmp_path / "a" / "zzz.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match=re.escape(f"ImageFolder: zzz.png in {tmp_path / 'a'} cannot be decoded as an "
                                                   f"image, it is damaged or truncated (UnidentifiedImageError: cannot "
                                                   f"identify image file)")):
        list(ImageFolder(tmp_path / "a").batches(8))


class _Projection(torch.nn.Module):  # a fixed random projection of 4x4-pooled pixels
    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(48, 24, generator=torch.Generator().manual_seed(0)))

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        pooled = torch.nn.functional.adaptive_avg_pool2d(x.float() / 255, 4).flatten(1)
        return pooled @ self.weight


def test_eval_images_command_writes_results_with_settings(tmp_path, capsys):
    torch.jit.script(_Projection()).save(str(tmp_path / "net.pt"))
    _write_images(tmp_path / "real", _images(24, seed=0))
    _write_images(tmp_path / "fake", _images(24, seed=1))
    out = tmp_path / "results.json"
    result = run_cli("eval", "images", tmp_path / "real", tmp_path / "fake", "--inception", tmp_path / "net.pt",
                     "--kid-subset-size", "10", "--out", out, timeout=120)
    assert result.returncode == 0, result.stderr
    record = json.loads(out.read_text())
    assert record["metrics"]["fid"] > 0 and "kid" in record["metrics"]
    assert record["settings"]["kid_subset_size"] == 10 and record["settings"]["feature_dim"] == 24
    assert record["inputs"]["real"]["images"] == 24 and record["environment"]["render3d"]
    code = main(["eval", "images", str(tmp_path / "real"), str(tmp_path / "fake"), "--inception",
                 str(tmp_path / "none.pt"), "--out", str(out)])
    stderr = capsys.readouterr().err
    assert code == 2 and stderr.startswith("render3d eval images: --inception expected the TorchScript Inception "
                                           "file inception-2015-12-05.pt "), stderr   # was InceptionFeatures' 'path'
    assert "features" not in stderr  # failed before reading any image


@pytest.mark.parametrize("case, message", [
    ("one image", "FID and KID need at least 2 images in each set, got: FAKE ({fake}) holds 1"),
    ("damaged image", "ImageFolder: 001.png in {fake} cannot be decoded as an image, it is damaged or truncated "
                      "(UnidentifiedImageError: cannot identify image file)"),
    ("--max-images 1", "--max-images expected an integer >= 2, got 1"),
    ("--kid-subset-size 1", "--kid-subset-size expected an integer >= 2, got 1"),
    ("--device gpu", "--device expected a torch device such as 'cpu', 'cuda' or 'cuda:1', "
                     "got 'gpu'"),
    ("--device cuda:7", "--device expected a device this machine has, got 'cuda:7' while "
                        "torch sees {cuda} CUDA device(s)"),
    ("no real images", "REAL expected a folder or zip holding images, got none in {real}"),   # was ImageFolder's 'path'
])
def test_eval_images_refuses_what_it_cannot_score(tmp_path, capsys, case, message):
    """Sets FID/KID cannot be computed on, damaged images and devices that do not exist are
    refused with exit status 2 and one line; they were tracebacks (a lone image failed in KID
    after both sets were read)."""
    torch.jit.script(_Projection()).save(str(tmp_path / "net.pt"))
    real, fake = tmp_path / "real", tmp_path / "fake"
    _write_images(real, _images(0 if case == "no real images" else 4, seed=0))
    _write_images(fake, _images(1 if case == "one image" else 4, seed=1))
    if case == "damaged image":
        (fake / "001.png").write_bytes(b"not an image")
    options = case.split() if case.startswith("--") else []
    code = main(["eval", "images", str(real), str(fake), "--inception", str(tmp_path / "net.pt"), *options,
                 "--out", str(tmp_path / "out" / "results.json")])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("render3d")]
    assert code == 2
    assert lines == ["render3d eval images: " + message.format(real=real, fake=fake, cuda=torch.cuda.device_count())]
    assert not (tmp_path / "out" / "results.json").exists()
    if case != "damaged image":                         # found before the results' folder is made
        assert not (tmp_path / "out").exists()
