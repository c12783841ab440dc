import pytest
import torch
from _gan import train_tiny_run, write_tiny_dataset

CUDA = torch.cuda.is_available()


def pytest_collection_modifyitems(config, items):
    # A GPU test skips by *calling* torch.cuda.is_available() (STYLE.md, rule 10).
    skip = pytest.mark.skip(reason="needs a CUDA device: torch.cuda.is_available() is False")
    for item in items:
        if "cuda" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip)


def device_params():
    """cpu always; cuda as a marked parameter that skips without a GPU."""
    return ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]


@pytest.fixture(scope="session")
def data(tmp_path_factory):
    """A tiny posed dataset (`_gan.write_tiny_dataset`: 12 images of 16 px with EG3D labels) for
    the training tests, written once per session: tests read it and never write into it."""
    return write_tiny_dataset(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A 2-step `render3d train` run of a tiny VolumeGAN on a small synthetic dataset, shared by
    the command-line tests (`_gan.train_tiny_run`): (dataset, run folder, the command's result)."""
    return train_tiny_run(tmp_path_factory.mktemp("gan_cli"))
