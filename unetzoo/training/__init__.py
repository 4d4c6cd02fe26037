"""Fine-tuning with Accelerate: options, the run folder, the loop."""

from .config import ConfigError, FinetuneConfig, read_yaml
from .loop import FinetuneResult, Trainer, finetune
from .run_folder import RunFolder, RunFolderError
from .setup import config_for_resume

__all__ = [
    "ConfigError",
    "FinetuneConfig",
    "FinetuneResult",
    "RunFolder",
    "RunFolderError",
    "Trainer",
    "config_for_resume",
    "finetune",
    "read_yaml",
]
