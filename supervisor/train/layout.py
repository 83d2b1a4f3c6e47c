"""Paths of the /opt/ml tree for a root: one place that knows the layout, no I/O.

Paths are joined with os.path.join, as the sagemaker-training toolkit joins
them, so every SM_* path is byte-identical to the toolkit's for the same root.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Layout:
    """The /opt/ml tree under `root` (`/opt/ml`, `$SAGEMAKER_BASE_DIR` or `--root`)."""

    root: str

    @property
    def input_dir(self) -> str:
        """Configuration and data SageMaker provides."""
        return os.path.join(self.root, "input")

    @property
    def input_config_dir(self) -> str:
        """hyperparameters.json, resourceconfig.json, inputdataconfig.json."""
        return os.path.join(self.input_dir, "config")

    @property
    def input_data_dir(self) -> str:
        """One directory (or Pipe FIFOs) per channel."""
        return os.path.join(self.input_dir, "data")

    @property
    def code_dir(self) -> str:
        """The user's code: baked into the image or unpacked from the submit directory."""
        return os.path.join(self.root, "code")

    @property
    def model_dir(self) -> str:
        """What training writes and SageMaker uploads as the model."""
        return os.path.join(self.root, "model")

    @property
    def output_dir(self) -> str:
        """Holds the success/failure files and output data."""
        return os.path.join(self.root, "output")

    @property
    def output_data_dir(self) -> str:
        """Extra artifacts uploaded with the job's output."""
        return os.path.join(self.output_dir, "data")

    @property
    def output_intermediate_dir(self) -> str:
        """Artifacts synced to S3 while training runs."""
        return os.path.join(self.output_dir, "intermediate")

    @property
    def failure_file(self) -> str:
        """Its first 1024 characters become the job's FailureReason."""
        return os.path.join(self.output_dir, "failure")

    @property
    def success_file(self) -> str:
        """Written when training succeeded, as the toolkit does."""
        return os.path.join(self.output_dir, "success")

    @property
    def checkpoints_dir(self) -> str:
        """Default local checkpoint directory, synced to S3 by the platform."""
        return os.path.join(self.root, "checkpoints")

    def channel_dir(self, name: str) -> str:
        """Where the data of channel `name` is (SM_CHANNEL_<NAME>)."""
        return os.path.join(self.input_data_dir, name)

    def config_file(self, name: str) -> str:
        """input/config/<name>."""
        return os.path.join(self.input_config_dir, name)
