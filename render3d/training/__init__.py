"""GAN training: the loop, its typed config, checkpoints and loading trained generators."""

from .checkpoint import latest_checkpoint, load_generator, save_generator
from .config import TrainConfig, config_dict, load_config, resolve_config
from .checks import DataError, SetupError
from .loop import training_loop

__all__ = [
    "DataError",
    "SetupError",
    "TrainConfig",
    "config_dict",
    "latest_checkpoint",
    "load_config",
    "load_generator",
    "resolve_config",
    "save_generator",
    "training_loop",
]
