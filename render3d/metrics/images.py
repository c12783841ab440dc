"""FID and KID between two sets of images, from Inception features.

The feature network is the TorchScript Inception-v3 that StyleGAN2-ADA, StyleGAN3, EG3D and
clean-fid use (`inception-2015-12-05.pt`, a direct translation of TensorFlow's FID graph): it
takes uint8 images of any size, resizes them to 299 internally, and returns the 2048-d pool
features. It is never downloaded at run time: `load_inception` reads it from a local file.
Any callable ``images [N, 3, H, W] in [0, 1] -> features [N, D]`` works in its place
(`extract_features`), which is how the tests run the maths on a small local network.

Statistics follow EG3D's `metric_utils.FeatureStats` (covariance divided by N) and its FID
and KID formulas, so that numbers compare with EG3D's `calc_metrics.py` given the same
images, counts and network. FID flavours (resizing, sample counts) are not comparable with
each other: the settings go into every result (`render3d.metrics.results`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch

INCEPTION_FILE = "inception-2015-12-05.pt"
INCEPTION_URL = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt"
INCEPTION_ENV = "RENDER3D_INCEPTION"


def default_inception_path() -> Path:
    """$RENDER3D_INCEPTION, else <render3d cache>/inception-2015-12-05.pt (the cache is
    $RENDER3D_CACHE_DIR, else $XDG_CACHE_HOME/render3d or ~/.cache/render3d)."""
    if os.environ.get(INCEPTION_ENV):
        return Path(os.environ[INCEPTION_ENV]).expanduser()
    from render3d.ops._build import cache_root

    return cache_root() / INCEPTION_FILE


class InceptionFeatures(torch.nn.Module):
    """The FID Inception network from a local TorchScript file: images [N, 3, H, W] in [0, 1]
    (float, any size) -> pool features [N, 2048] float64. Images are rounded to uint8 first,
    as the network was traced on uint8 input."""

    def __init__(self, path: str | Path | None = None, device: str | torch.device = "cpu") -> None:
        super().__init__()
        from render3d._checks import check_device

        device = check_device("InceptionFeatures", "device", device)
        path = Path(path) if path is not None else default_inception_path()
        if not path.is_file():
            raise ValueError(
                f"InceptionFeatures: argument 'path' expected the TorchScript Inception file {INCEPTION_FILE} "
                f"(the FID network of StyleGAN2-ADA, EG3D and clean-fid), got no file at {path}. render3d never "
                f"downloads it: fetch it once from {INCEPTION_URL} (clean-fid keeps a copy as /tmp/{INCEPTION_FILE}, "
                f"EG3D's dnnlib cache another), then pass its path or set ${INCEPTION_ENV}."
            )
        try:
            self.network = torch.jit.load(str(path), map_location=device).eval()
        except RuntimeError as exc:
            raise ValueError(f"InceptionFeatures: argument 'path' expected a TorchScript file ({INCEPTION_FILE}), "
                             f"got {path} which torch.jit.load cannot read: {str(exc).splitlines()[0]}") from exc
        self.path = path
        self.device = device

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        uint8 = (images.clamp(0, 1) * 255 + 0.5).to(torch.uint8).to(self.device)
        return self.network(uint8, return_features=True).double().cpu()


FeatureExtractor = Callable[[torch.Tensor], torch.Tensor]


def extract_features(batches: Iterable[torch.Tensor], extractor: FeatureExtractor) -> np.ndarray:
    """Run `extractor` over batches of images [B, 3, H, W] in [0, 1]; returns [N, D] float64."""
    with torch.no_grad():
        return np.concatenate([extractor(batch).detach().double().cpu().numpy() for batch in batches])


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """features [N, D] -> mean [D] and covariance [D, D] (divided by N, as EG3D), float64."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"feature_statistics: argument 'features' expected shape [N >= 2, D], "
                         f"got {list(features.shape)}")
    mean = features.mean(0)
    centred = features - mean
    return mean, centred.T @ centred / len(features)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix (eigenvalues clipped at 0)."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(values.clip(0))) @ vectors.T


def frechet_distance(mean_a: np.ndarray, cov_a: np.ndarray, mean_b: np.ndarray, cov_b: np.ndarray) -> float:
    """Frechet distance between Gaussians: |m_a - m_b|^2 + tr(C_a + C_b - 2 (C_a C_b)^(1/2)).

    tr((C_a C_b)^(1/2)) is computed as tr((S C_b S)^(1/2)) with S = C_a^(1/2): the same
    eigenvalues, but of a symmetric matrix, so two `eigh` calls replace the non-symmetric
    `scipy.linalg.sqrtm` (whose result can come back complex from rounding). The distance is
    never negative; rounding takes equal sets a hair below 0 (-1e-14), which is returned as 0,
    so that a report does not read "FID -0.0000".
    """
    root_a = _psd_sqrt(cov_a)
    cross = np.sqrt(np.linalg.eigvalsh(root_a @ cov_b @ root_a).clip(0)).sum()
    return max(0.0, float(np.square(mean_a - mean_b).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * cross))


def fid(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """FID between two feature sets [N, D] and [M, D]."""
    return frechet_distance(*feature_statistics(features_a), *feature_statistics(features_b))


def kid(features_a: np.ndarray, features_b: np.ndarray, *, subsets: int = 100, subset_size: int = 1000,
        seed: int = 0) -> tuple[float, float]:
    """Kernel Inception Distance (Binkowski et al. 2018), as EG3D computes it: the unbiased
    MMD^2 with the kernel k(x, y) = (x.y / D + 1)^3, averaged over `subsets` random subsets of
    m = min(N, M, subset_size) features drawn without replacement from each set.
    Returns (mean, standard deviation over the subsets)."""
    a, b = np.asarray(features_a, dtype=np.float64), np.asarray(features_b, dtype=np.float64)
    dim = a.shape[1]
    m = min(len(a), len(b), subset_size)
    if m < 2:
        raise ValueError(f"kid: arguments 'features_a', 'features_b' expected at least 2 features each, "
                         f"got {len(a)} and {len(b)}")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(subsets):
        x = a[rng.choice(len(a), m, replace=False)]
        y = b[rng.choice(len(b), m, replace=False)]
        within = (x @ x.T / dim + 1) ** 3 + (y @ y.T / dim + 1) ** 3
        across = (x @ y.T / dim + 1) ** 3
        values.append((within.sum() - np.trace(within)) / (m * (m - 1)) - 2 * across.sum() / (m * m))
    return float(np.mean(values)), float(np.std(values))


class ImageFolder:
    """The images of a folder or an uncompressed zip (an EG3D dataset, a synthetic one, or a
    folder of samples), every image file in sorted path order, as batches [B, 3, H, W] float
    in [0, 1]. All images must share one size; `limit` keeps the first `limit`."""

    def __init__(self, path: str | Path, limit: int | None = None) -> None:
        from render3d.datasets.storage import Storage, image_size

        self.storage = Storage(path, "ImageFolder")
        self.names = self.storage.image_names()[:limit]
        if not self.names:
            raise ValueError(f"ImageFolder: argument 'path' expected a folder or zip holding images, "
                             f"got none in {path}")
        self.size = image_size(self.storage.read(self.names[0]))

    def __len__(self) -> int:
        return len(self.names)

    def batches(self, batch_size: int):
        """Yields [B, 3, H, W] float32 in [0, 1]."""
        from render3d.datasets.storage import decode_image

        for start in range(0, len(self.names), batch_size):
            images = []
            for name in self.names[start:start + batch_size]:
                image = decode_image(self.storage.read(name), name=f"ImageFolder: {name} in {self.storage.path}")
                if image.shape[1::-1] != self.size:
                    raise ValueError(f"ImageFolder: expected every image in {self.storage.path} to be {self.size[0]} "
                                     f"x {self.size[1]} (as {self.names[0]}), got {image.shape[1]} x "
                                     f"{image.shape[0]} for {name}")
                images.append(torch.from_numpy(image.copy()).permute(2, 0, 1))
            yield torch.stack(images).float() / 255
