"""What a training leaves beside its model and finds from earlier ones: the weights and
architecture for the next warm start, the summary of how it went, and the backups an
interrupted training resumes from."""
import dataclasses
import hashlib
import json
import os
from typing import Any, Optional

import tensorflow as tf
from absl import logging
from tfx import v1 as tfx

from models import features
from models.model_config import ModelConfig
from models.optimization import build_model

# Beside the Trainer's outputs: a training's last epoch, kept until it completes (a folder
# per set of inputs, so that a rerun after a crash resumes).
TRAINING_BACKUPS_DIR = ".training_backup"
# The settings that fix the shapes of the weights.
ARCHITECTURE_KEYS = ("resnet_depth", "width_multiplier", "image_size_px", "class_names")


def architecture(config: ModelConfig) -> dict[str, Any]:
    """The ARCHITECTURE_KEYS settings as JSON values, as saved beside earlier models."""
    custom_config = config.to_custom_config()
    return {key: custom_config[key] for key in ARCHITECTURE_KEYS}


def save_training_state(model: tf.keras.Model, config: ModelConfig,
                        serving_model_dir: str) -> None:
    state_dir = os.path.join(os.path.dirname(serving_model_dir), features.TRAINING_STATE_DIR)
    model.save_weights(os.path.join(state_dir, "weights"))
    with tf.io.gfile.GFile(os.path.join(state_dir, "architecture.json"), "w") as file:
        json.dump(architecture(config), file)


@dataclasses.dataclass(frozen=True)
class TrainingSummary:
    """How a training went: the run's console says it (metadata/stage_results.py)."""

    epochs_planned: int
    epochs_trained: int
    steps: int
    stopped_early: bool
    eval_accuracy: float  # the Keras model's own, on the last evaluated epoch


def write_training_summary(serving_model_dir: str, summary: TrainingSummary) -> None:
    path = os.path.join(os.path.dirname(serving_model_dir), features.TRAINING_STATE_DIR,
                        features.TRAINING_SUMMARY_FILE)
    with tf.io.gfile.GFile(path, "w") as file:
        json.dump(dataclasses.asdict(summary), file)


def warm_start(model: tf.keras.Model, config: ModelConfig,
               base_model_dir: Optional[str]) -> str:
    """Loads the base model's weights when its architecture matches; logs and returns
    what it did."""
    state_dir = os.path.join(os.path.dirname(base_model_dir or ""), features.TRAINING_STATE_DIR)
    architecture_file = os.path.join(state_dir, "architecture.json")
    if not base_model_dir:
        outcome = "Training from scratch: no blessed model to start from."
    elif not tf.io.gfile.exists(architecture_file):
        outcome = f"Training from scratch: {base_model_dir} has no saved weights."
    else:
        with tf.io.gfile.GFile(architecture_file) as file:
            base_architecture = json.load(file)
        if base_architecture != architecture(config):
            outcome = (f"Training from scratch: the blessed model's architecture "
                       f"{base_architecture} differs from this one's {architecture(config)}.")
        else:
            # Through an uncompiled twin: loading into `model` itself would also restore
            # the base's optimizer, step count included, and the learning-rate schedule
            # would start where the base's ended, at zero.
            base = build_model(config)
            base.load_weights(os.path.join(state_dir, "weights")).expect_partial()
            model.set_weights(base.get_weights())
            outcome = f"Warm start from the latest blessed model's weights: {state_dir}"
    logging.info(outcome)
    return outcome


def backup_dir(fn_args: tfx.components.FnArgs) -> str:
    """Where an interrupted training of these very inputs left its last epoch.

    Keyed by the inputs, not the execution: a rerun after a crash is a new execution.
    """
    inputs = json.dumps([fn_args.train_files, fn_args.eval_files, fn_args.transform_output,
                         fn_args.train_steps, fn_args.base_model, fn_args.custom_config],
                        sort_keys=True)
    trainer_dir = os.path.dirname(os.path.dirname(fn_args.model_run_dir))
    return os.path.join(backups_root(trainer_dir), hashlib.sha256(inputs.encode()).hexdigest()[:16])


def backups_root(trainer_dir: str) -> str:
    """The folder of every set of inputs' backup, in the Trainer's folder of the pipeline
    root (where TFX puts its outputs' folders)."""
    return os.path.join(trainer_dir, TRAINING_BACKUPS_DIR)
