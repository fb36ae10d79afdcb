"""Trainer: the ResNet trained under MirroredStrategy on the transformed examples.

TFX calls `run_fn(fn_args)`; every knob arrives in `fn_args.custom_config`, a
`ModelConfig` as JSON (built by `PipelineConfig.model_config()`). Under
MultiWorkerMirroredStrategy every worker of the cluster runs `run_fn` with the same
arguments; only the chief's outputs are kept.
"""
import math
import os
import time
from typing import Optional

import tensorflow as tf
import tensorflow_transform as tft
from absl import logging
from tfx import v1 as tfx

from models import console, serving
from models.distribution import (check_gpus_found, distribution_strategy,
                                 this_workers_output_dir, wait_for_every_worker,
                                 weights_digest)
from models.input_pipeline import count_examples, eval_input, training_input, training_length
from models.model_config import ModelConfig
from models.optimization import (CooldownOnPlateau, ProgressiveResizing, StopAtStep,
                                 StopOnNonFiniteLoss, build_model, compile_model,
                                 learning_rate_schedule)
from models.training_state import (TrainingSummary, backup_dir, save_training_state,
                                   warm_start, write_training_summary)

# Eval accuracy is measured over the whole eval split about this many times a run.
_EVALUATIONS_PER_RUN = 10


class TrainingProgress(tf.keras.callbacks.Callback):
    """The console's progress line: the epoch, the last eval accuracy and the time left
    if every planned epoch runs (an early stop makes it shorter)."""

    def __init__(self, epochs: int):
        super().__init__()
        self.epochs = epochs
        self.eval_accuracy: Optional[float] = None
        self.started = 0.0

    def on_train_begin(self, logs=None):
        self.started = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        self.eval_accuracy = (logs or {}).get("val_accuracy", self.eval_accuracy)
        done = epoch + 1
        elapsed = time.monotonic() - self.started
        left = elapsed / done * (self.epochs - done)
        accuracy = ("" if self.eval_accuracy is None
                    else f", eval accuracy {self.eval_accuracy:.3f}")
        console.show_progress(f"  Trainer: epoch {done}/{self.epochs}{accuracy}, "
                              f"{console.duration(elapsed)} so far, at most "
                              f"{console.duration(left)} left")


class TrainEvalAccuracyLog(tf.keras.callbacks.Callback):
    """Logs train and eval accuracy side by side, so a gap (e.g. unsettled BN) shows."""

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if "val_accuracy" not in logs:  # not an evaluated epoch (validation_freq)
            logging.info("Epoch %d: train accuracy %.3f (train loss %.3f)", epoch + 1,
                         logs.get("accuracy", float("nan")), logs.get("loss", float("nan")))
            return
        logging.info(
            "Epoch %d: train accuracy %.3f, eval accuracy %.3f (train loss %.3f, eval loss %.3f)",
            epoch + 1, logs["accuracy"], logs["val_accuracy"], logs["loss"], logs["val_loss"])


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    """TFX Trainer entry point: the steps of a training, in order."""
    config = ModelConfig.from_custom_config(fn_args.custom_config)
    # Before any data is read: a missing GPU is a setup error, not a slow run.
    check_gpus_found(config.trainer_gpu_count)
    strategy = distribution_strategy(config.distribution_strategy)

    # The run's length follows the data: epochs of the cluster's global batch.
    global_batch_size = config.batch_size_per_replica * strategy.num_replicas_in_sync
    num_examples = count_examples(fn_args.train_files)
    steps_per_epoch, train_steps = training_length(
        num_examples, global_batch_size, config.train_epochs, fn_args.train_steps)
    epochs = math.ceil(train_steps / steps_per_epoch)
    logging.info("Training on %d replica(s), global batch %d: %d steps (%d epochs of %d "
                 "examples).", strategy.num_replicas_in_sync, global_batch_size, train_steps,
                 epochs, num_examples)

    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    schema = tf_transform_output.transformed_metadata.schema
    train_dataset = training_input(fn_args.train_files, fn_args.data_accessor, schema,
                                   global_batch_size, num_examples, config.shuffle_seed)
    eval_dataset = eval_input(fn_args.eval_files, fn_args.data_accessor, schema,
                              global_batch_size)

    with strategy.scope():
        schedule = learning_rate_schedule(config, train_steps)
        model = compile_model(build_model(config), config, schedule)
        warm_start(model, config, fn_args.base_model)

    plateau = CooldownOnPlateau(schedule, eval_dataset, config.plateau_patience_epochs,
                                config.cooldown_epochs, steps_per_epoch,
                                config.plateau_min_train_accuracy)
    resizing = ProgressiveResizing.for_run(model, config, epochs, plateau)
    history = model.fit(
        train_dataset,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        validation_data=eval_dataset,
        validation_freq=evaluated_epochs(epochs),
        callbacks=training_callbacks(fn_args, config, train_steps, epochs, plateau, resizing),
        verbose=0,
    )
    logging.info("Trained %d steps; weights digest %s.", int(model.optimizer.iterations.numpy()),
                 weights_digest(model))

    with this_workers_output_dir(strategy, fn_args.serving_model_dir) as serving_model_dir:
        serving.export_serving_model(model, tf_transform_output, list(config.class_names),
                                     config.max_image_pixels, config.max_request_pixels,
                                     serving_model_dir, config.test_time_flip)
        save_training_state(model, config, serving_model_dir)
        write_training_summary(serving_model_dir, TrainingSummary(
            epochs_planned=epochs, epochs_trained=len(history.epoch),
            steps=int(model.optimizer.iterations.numpy()),
            stopped_early=plateau.stopped_early_at_epoch is not None,
            eval_accuracy=history.history["val_accuracy"][-1]))
    # TFX's executor checks on every worker that the serving model exists: none returns
    # before the chief has written it.
    wait_for_every_worker(strategy)


def evaluated_epochs(epochs: int) -> list[int]:
    """Keras' validation_freq: about _EVALUATIONS_PER_RUN epochs, the last always (Keras
    counts from 1). Watching for a plateau, CooldownOnPlateau evaluates more."""
    return [epoch for epoch in range(1, epochs + 1)
            if (epochs - epoch) % max(1, epochs // _EVALUATIONS_PER_RUN) == 0]


def training_callbacks(fn_args: tfx.components.FnArgs, config: ModelConfig, train_steps: int,
                       epochs: int, plateau: CooldownOnPlateau,
                       resizing: ProgressiveResizing) -> list[tf.keras.callbacks.Callback]:
    backup = backup_dir(fn_args)
    # BackupAndRestore keeps the chief's checkpoints in chief/ until fit() completes
    # (other workers write theirs to temporary folders): every worker resumes from them.
    checkpoint = tf.train.latest_checkpoint(os.path.join(backup, "chief"))
    if checkpoint:
        logging.info("Resuming an interrupted training from its last checkpoint: %s",
                     checkpoint)
    return [
        # Saves each epoch, restores after a crash, and deletes its files when done.
        # First, so that the epoch is saved before it is logged.
        tf.keras.callbacks.BackupAndRestore(backup),
        StopAtStep(train_steps),
        StopOnNonFiniteLoss(config.learning_rate),
        *([plateau] if config.plateau_patience_epochs else []),
        resizing,
        # Workers other than the chief log to temporary folders it then removes.
        tf.keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir, update_freq="epoch"),
        TrainEvalAccuracyLog(),
        TrainingProgress(epochs),
    ]
