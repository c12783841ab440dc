"""Posed-image datasets: EG3D's `dataset.json` format (folder or zip), nerfstudio's
`transforms.json`, a checker that reports every malformed entry, and a synthetic dataset with
ground-truth geometry (writing it needs open3d, trimesh and PyMCubes: the `data` extra)."""

from render3d.datasets.check import DatasetReport, check_dataset
from render3d.datasets.eg3d import EG3DDataset, Problem, read_labels, write_labels
from render3d.datasets.storage import Storage
from render3d.datasets.synth import PoseDistribution, SynthConfig, SyntheticDataset, generate_synthetic
from render3d.datasets.transforms import TransformsDataset

__all__ = [
    "DatasetReport",
    "EG3DDataset",
    "PoseDistribution",
    "Problem",
    "Storage",
    "SynthConfig",
    "SyntheticDataset",
    "TransformsDataset",
    "check_dataset",
    "generate_synthetic",
    "read_labels",
    "write_labels",
]
