"""Trainer: the ResNet trained under MirroredStrategy on the transformed examples.

TFX calls `run_fn(fn_args)`; every knob arrives in `fn_args.custom_config`, a
`ModelConfig` as JSON (built by `PipelineConfig.model_config()`). Under
MultiWorkerMirroredStrategy every worker of the cluster runs `run_fn` with the same
arguments; only the chief's outputs are kept.
"""
import contextlib
import dataclasses
import hashlib
import json
import math
import os
import tempfile
import time
from typing import Any, Iterator, Optional

import tensorflow as tf
import tensorflow_transform as tft
from absl import logging
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx import v1 as tfx
from tfx_bsl.public import tfxio

from models import console, features, resnet, serving
from models.model_config import ModelConfig

# Beside the Trainer's outputs: a training's last epoch, kept until it completes (a folder
# per set of inputs, so that a rerun after a crash resumes).
TRAINING_BACKUPS_DIR = ".training_backup"
# The settings that fix the shapes of the weights.
ARCHITECTURE_KEYS = ("resnet_depth", "width_multiplier", "image_size_px", "class_names")

# Augmentation for photos: a random crop of 25-100% of the area with an aspect ratio in
# [3/4, 4/3], resized back (the paper's "scale augmentation"), a horizontal flip, and a
# small brightness and contrast jitter. A few thousand photos are memorised within ~15
# epochs without it (train accuracy 0.97, eval 0.76).
_CROP_AREA_RANGE = (0.25, 1.0)
_CROP_ASPECT_RANGE = (3 / 4, 4 / 3)
# In units of the normalised pixels (one standard deviation of the training split).
_BRIGHTNESS_JITTER = 0.2
_CONTRAST_JITTER = 0.2
# Eval accuracy is measured over the whole eval split about this many times a run.
_EVALUATIONS_PER_RUN = 10
# custom_config keys of TFX's Vertex training launcher (ai_platform_training_args...).
VERTEX_LAUNCHER_KEY_PREFIX = "ai_platform_"


def distribution_strategy(name: str) -> tf.distribute.Strategy:
    """The strategy `name` (ModelConfig.distribution_strategy) names.

    "mirrored": all visible GPUs of this machine, else the CPU's logical devices.
    "multi_worker_mirrored": all GPUs of every worker of the cluster that this process's
    TF_CONFIG environment variable describes (set per worker by its launcher).
    """
    if name == "multi_worker_mirrored":
        return tf.distribute.MultiWorkerMirroredStrategy()
    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy(devices=[device.name for device in devices])


def check_gpus_found(expected_gpu_count: int) -> None:
    """Fails unless TensorFlow finds at least the GPUs this worker was given.

    Without its CUDA libraries (the CPU image) or a node's driver, TensorFlow finds none
    and would train on the CPU, saying so in one INFO line among thousands.
    """
    found = tf.config.list_physical_devices("GPU")
    if len(found) < expected_gpu_count:
        raise RuntimeError(
            f"The Trainer was given {expected_gpu_count} GPU(s) (trainer_gpu_count="
            f"{expected_gpu_count}) but TensorFlow found {len(found)}: "
            f"tf.config.list_physical_devices('GPU') = {[gpu.name for gpu in found]}. "
            "Refusing to train on the CPU instead. TensorFlow's CUDA libraries are in the "
            "GPU image only (the tag ending in -gpu, built by make kubeflow-image), and the "
            "node needs the NVIDIA driver and device plugin (kubeflow/README.md).")


def augment(images: tf.Tensor) -> tf.Tensor:
    """A random resized crop, flip and brightness/contrast jitter per image of a
    [batch, h, w, 3] batch of normalised images."""
    batch = tf.shape(images)[0]
    size = tf.shape(images)[1:3]
    area = tf.random.uniform([batch, 1], *_CROP_AREA_RANGE)
    log_aspect = tf.random.uniform([batch, 1], *[math.log(r) for r in _CROP_ASPECT_RANGE])
    aspect = tf.exp(log_aspect)  # width / height
    height = tf.minimum(tf.sqrt(area / aspect), 1.0)
    width = tf.minimum(tf.sqrt(area * aspect), 1.0)
    top_left = tf.random.uniform([batch, 2]) * (1.0 - tf.concat([height, width], axis=1))
    boxes = tf.concat([top_left, top_left + tf.concat([height, width], axis=1)], axis=1)
    cropped = tf.image.crop_and_resize(images, boxes, tf.range(batch), size)
    flipped = tf.image.random_flip_left_right(cropped)
    brightness = tf.random.uniform([batch, 1, 1, 1], -_BRIGHTNESS_JITTER, _BRIGHTNESS_JITTER)
    contrast = tf.random.uniform([batch, 1, 1, 1], 1 - _CONTRAST_JITTER, 1 + _CONTRAST_JITTER)
    mean = tf.reduce_mean(flipped, axis=[1, 2, 3], keepdims=True)
    return (flipped - mean) * contrast + mean + brightness


def transformed_batches(file_pattern: list[str], data_accessor: tfx.components.DataAccessor,
                        schema: schema_pb2.Schema, batch_size: int) -> tf.data.Dataset:
    """One pass over transformed examples (of Transform's output `schema`), in file
    order: ({features}, label) batches."""
    return data_accessor.tf_dataset_factory(
        file_pattern,
        tfxio.TensorFlowDatasetOptions(batch_size=batch_size, label_key=features.LABEL_KEY,
                                       shuffle=False, num_epochs=1),
        schema,
    )


def images_and_labels(batches: tf.data.Dataset, augmented: bool) -> tf.data.Dataset:
    """({features}, label) batches -> (image, label) batches, ready for the strategy."""

    def image_and_label(batch, labels):
        images = batch[features.TRANSFORMED_IMAGE_KEY]
        return (augment(images) if augmented else images), labels

    # Under a multi-worker strategy each worker reads every file and keeps its own part of
    # each global batch (sharding by data, not by file: a split is a handful of files, too
    # few to deal out to the workers).
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return batches.map(image_and_label, num_parallel_calls=tf.data.AUTOTUNE).prefetch(
        tf.data.AUTOTUNE).with_options(options)


def training_input(file_pattern: list[str], data_accessor: tfx.components.DataAccessor,
                   schema: schema_pb2.Schema, batch_size: int, num_examples: int,
                   shuffle_seed: int) -> tf.data.Dataset:
    """The training split's augmented (image, label) batches of the global batch size,
    reshuffled each epoch, forever.

    The split is parsed once and kept in memory (its float images: num_examples x
    image_size_px^2 x 12 bytes, 0.39 GB for 2,000 at 128 px): unzipping and parsing it
    again each epoch cost a third of the train step's time on 2 cores. Kept whole, it is
    also shuffled whole, so the class-sorted order the files are written in never shows.
    The shuffle is seeded: every worker of a cluster, keeping its own part of each global
    batch, must draw the same order.
    """
    examples = transformed_batches(file_pattern, data_accessor, schema,
                                   batch_size).unbatch().cache()
    batches = (examples.shuffle(num_examples, seed=shuffle_seed).repeat()
               .batch(batch_size, drop_remainder=True))
    return images_and_labels(batches, augmented=True)


def eval_input(file_pattern: list[str], data_accessor: tfx.components.DataAccessor,
               schema: schema_pb2.Schema, batch_size: int) -> tf.data.Dataset:
    """The eval split's (image, label) batches, one pass."""
    return images_and_labels(
        transformed_batches(file_pattern, data_accessor, schema, batch_size), augmented=False)


def switched_on(setting: str) -> bool:
    """A GPU speed-up setting: "on", "off", or "auto" (on when a GPU is visible)."""
    return setting == "on" or (setting == "auto" and bool(tf.config.list_logical_devices("GPU")))


def build_model(config: ModelConfig) -> tf.keras.Model:
    """The ResNet the config describes, not compiled."""
    # Float16 compute with float32 weights; set before any layer is built.
    tf.keras.mixed_precision.set_global_policy(
        "mixed_float16" if switched_on(config.mixed_precision) else "float32")
    size = config.image_size_px
    return resnet.build_resnet(
        depth=config.resnet_depth,
        num_classes=len(config.class_names),
        input_shape=(size, size, 3),
        width_multiplier=config.width_multiplier,
        bn_momentum=config.bn_momentum,
    )


def build_and_compile_model(config: ModelConfig, train_steps: int) -> tf.keras.Model:
    """The ResNet with its optimizer, its schedule ending at train_steps; call inside the
    strategy's scope."""
    return compile_model(build_model(config), config, learning_rate_schedule(config, train_steps))


def learning_rate_schedule(config: ModelConfig,
                           train_steps: int) -> "WarmupCosineWithCooldown":
    return WarmupCosineWithCooldown(config.learning_rate, config.warmup_steps, train_steps)


def compile_model(model: tf.keras.Model, config: ModelConfig,
                  schedule: tf.keras.optimizers.schedules.LearningRateSchedule) -> tf.keras.Model:
    """AdamW on the schedule; the train step XLA-compiled if set."""
    optimizer = tf.keras.optimizers.AdamW(learning_rate=schedule,
                                          weight_decay=config.weight_decay)
    # Decaying BatchNorm's scale and shift only fights the normalisation.
    optimizer.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
    # Under mixed_float16, compile() wraps the optimizer with dynamic loss scaling.
    model.compile(
        optimizer=optimizer,
        loss=SmoothedSparseCrossentropy(config.label_smoothing),
        metrics=[tf.keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        jit_compile=switched_on(config.jit_compile),
    )
    # AutoGraph leaves Keras alone but not tf_keras (TF 2.16 lists only `keras`), so each
    # first call of fit / evaluate / predict rewrote all of Keras' Python: ~45 s of the
    # first epoch on 2 cores. Keras' steps have no tensor-dependent Python to convert.
    for step in ("train_step", "test_step", "predict_step"):
        setattr(model, step, tf.autograph.experimental.do_not_convert(getattr(model, step)))
    return model


class WarmupCosineWithCooldown(tf.keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to the peak, then cosine decay to zero at train_steps; or, once
    `start_cooldown(step, steps)` is called (eval accuracy stopped improving), a linear
    decay from that step's rate to zero over `steps`.

    A run that stops early thus still ends on an annealed model, not on a cosine cut off
    at a high rate. Create it inside the strategy's scope: the cooldown's start is a
    variable that every replica reads.
    """

    def __init__(self, peak_learning_rate: float, warmup_steps: int, train_steps: int):
        super().__init__()
        self.peak_learning_rate = peak_learning_rate
        self.warmup_steps = min(warmup_steps, train_steps - 1)
        self.train_steps = train_steps
        self.cosine = tf.keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=0.0, decay_steps=train_steps - self.warmup_steps,
            warmup_target=peak_learning_rate, warmup_steps=self.warmup_steps)
        # (first step, length) of the cooldown; a length of 0: none started.
        self.cooldown = tf.Variable([0, 0], dtype=tf.int64, trainable=False,
                                    name="cooldown", aggregation=tf.VariableAggregation.NONE)

    def start_cooldown(self, step: int, steps: int) -> None:
        self.cooldown.assign([step, steps])

    def __call__(self, step):
        step = tf.cast(step, tf.int64)
        rate = self.cosine(step)
        start, length = self.cooldown[0], self.cooldown[1]
        remaining = 1.0 - tf.cast(step - start, tf.float32) / tf.cast(tf.maximum(length, 1),
                                                                      tf.float32)
        cooled = self.cosine(start) * tf.clip_by_value(remaining, 0.0, 1.0)
        # Never above the cosine: a cooldown reaching past train_steps ends with it.
        return tf.where((length > 0) & (step >= start), tf.minimum(rate, cooled), rate)

    def get_config(self):
        return {"peak_learning_rate": self.peak_learning_rate,
                "warmup_steps": self.warmup_steps, "train_steps": self.train_steps}


class SmoothedSparseCrossentropy(tf.keras.losses.Loss):
    """Cross-entropy against one-hot labels smoothed towards uniform (integer labels in).

    Keras' sparse loss has no label smoothing; smoothing keeps a from-scratch model from
    driving its logits to extremes on a few thousand photos.
    """

    def __init__(self, label_smoothing: float, name: str = "smoothed_crossentropy"):
        super().__init__(name=name)
        self.label_smoothing = label_smoothing

    def call(self, labels, probabilities):
        one_hot = tf.one_hot(tf.cast(tf.reshape(labels, [-1]), tf.int32),
                             tf.shape(probabilities)[-1])
        return tf.keras.losses.categorical_crossentropy(
            one_hot, probabilities, label_smoothing=self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


class StopAtStep(tf.keras.callbacks.Callback):
    """Ends training after exactly `steps` optimizer steps, mid-epoch if need be."""

    def __init__(self, steps: int):
        super().__init__()
        self.steps = steps

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) >= self.steps:
            self.model.stop_training = True


class StopOnNonFiniteLoss(tf.keras.callbacks.Callback):
    """Fails the training at the first step whose loss is NaN or infinite, naming it.
    Keras' TerminateOnNaN only stops: the run would go on to export and evaluate a model
    that answers NaN."""

    def __init__(self, learning_rate: float):
        super().__init__()
        self.learning_rate = learning_rate
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = float((logs or {}).get("loss", 0.0))
        if not math.isfinite(loss):
            raise FloatingPointError(
                f"Training diverged: the loss is {loss} at step "
                f"{int(self.model.optimizer.iterations.numpy())} (epoch {self.epoch + 1}, "
                f"batch {batch + 1}). Likely too high a learning rate (learning_rate="
                f"{self.learning_rate}: try a tenth), else non-finite input values.")


class CooldownOnPlateau(tf.keras.callbacks.Callback):
    """Ends training early once the model fits its training split and eval accuracy has
    stopped improving: after `patience_epochs` evaluated epochs without a new best, with
    train accuracy at least `min_train_accuracy`, the learning rate decays linearly to
    zero over `cooldown_epochs`, then training stops.

    The generated default set is learnt within ~15 epochs of the 150 that real photos
    need. On real photos eval accuracy over a few hundred images goes flat for stretches
    of ten epochs while it still climbs on average; a model that does not yet fit its
    (augmented) training split has not converged, so it trains on. Every worker of a
    cluster sees the same global metrics, and so decides alike.
    """

    def __init__(self, schedule: WarmupCosineWithCooldown, patience_epochs: int,
                 cooldown_epochs: int, steps_per_epoch: int, min_train_accuracy: float):
        super().__init__()
        self.schedule = schedule
        self.patience_epochs = patience_epochs
        self.cooldown_steps = cooldown_epochs * steps_per_epoch
        self.min_train_accuracy = min_train_accuracy
        self.best_accuracy = -1.0
        self.epochs_without_improvement = 0
        self.cooldown_end_step: Optional[int] = None
        self.stopped_early_at_epoch: Optional[int] = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        step = int(self.model.optimizer.iterations.numpy())
        if self.cooldown_end_step is not None:
            if step >= self.cooldown_end_step:
                self.model.stop_training = True
                self.stopped_early_at_epoch = epoch + 1
            return
        if "val_accuracy" not in logs:
            return
        if logs["val_accuracy"] > self.best_accuracy:
            self.best_accuracy, self.epochs_without_improvement = logs["val_accuracy"], 0
            return
        self.epochs_without_improvement += 1
        if (self.epochs_without_improvement >= self.patience_epochs
                and logs.get("accuracy", 0.0) >= self.min_train_accuracy):
            self.schedule.start_cooldown(step, self.cooldown_steps)
            self.cooldown_end_step = step + self.cooldown_steps
            logging.info("Eval accuracy has not improved on %.3f for %d epochs, and train "
                         "accuracy is %.3f: the learning rate decays to zero over the next "
                         "%d steps, then training stops.", self.best_accuracy,
                         self.epochs_without_improvement, logs["accuracy"], self.cooldown_steps)


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
    return os.path.join(trainer_dir, TRAINING_BACKUPS_DIR,
                        hashlib.sha256(inputs.encode()).hexdigest()[:16])


def count_examples(file_pattern: list[str]) -> int:
    """Records in gzipped TFRecord files (a read, no parsing)."""
    files = [path for pattern in file_pattern for path in tf.io.gfile.glob(pattern)]
    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP")
    return int(dataset.reduce(tf.constant(0, tf.int64), lambda count, _: count + 1))


def training_length(num_examples: int, global_batch_size: int, train_epochs: int,
                    train_steps: Optional[int]) -> tuple[int, int]:
    """(steps per epoch, total steps): epochs over the training split, unless a step
    budget is given (TrainArgs.num_steps), which is then trained exactly."""
    steps_per_epoch = max(1, num_examples // global_batch_size)
    return steps_per_epoch, train_steps or train_epochs * steps_per_epoch


@contextlib.contextmanager
def this_workers_output_dir(strategy: tf.distribute.Strategy,
                            serving_model_dir: str) -> Iterator[str]:
    """Where this worker writes the serving model and the training state (beside it).

    The chief writes to the Trainer's output; any other worker of a multi-worker cluster
    to a temporary folder of its own, removed afterwards. Every worker must save all the
    same: saving reads the variables, which runs collective operations on all of them.
    """
    if strategy.extended.should_checkpoint:
        yield serving_model_dir
        return
    with tempfile.TemporaryDirectory(prefix="trainer-worker-") as temporary:
        yield os.path.join(temporary, os.path.basename(serving_model_dir))


def wait_for_every_worker(strategy: tf.distribute.Strategy) -> None:
    """Returns once every replica of the cluster got here (a collective sum)."""
    ones = strategy.run(tf.function(lambda: tf.constant(1.0)))
    strategy.reduce(tf.distribute.ReduceOp.SUM, ones, axis=None)


def weights_digest(model: tf.keras.Model) -> str:
    """A short hash of the weights: equal on every worker of a cluster that trained in
    lockstep."""
    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(weight.tobytes())
    return digest.hexdigest()[:16]


def model_config(custom_config: dict[str, Any]) -> ModelConfig:
    """The Trainer's custom_config read back, past the keys TFX's Vertex training launcher
    adds and passes on to the workers."""
    return ModelConfig.from_custom_config(
        {key: value for key, value in custom_config.items()
         if not key.startswith(VERTEX_LAUNCHER_KEY_PREFIX)})


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    """TFX Trainer entry point."""
    config = model_config(fn_args.custom_config)
    # Before any data is read: a missing GPU is a setup error, not a slow run.
    check_gpus_found(config.trainer_gpu_count)
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    strategy = distribution_strategy(config.distribution_strategy)
    # Replicas of every worker: the global batch, and so the steps, are the cluster's.
    global_batch_size = config.batch_size_per_replica * strategy.num_replicas_in_sync
    num_examples = count_examples(fn_args.train_files)
    steps_per_epoch, train_steps = training_length(
        num_examples, global_batch_size, config.train_epochs, fn_args.train_steps)
    epochs = math.ceil(train_steps / steps_per_epoch)
    logging.info("Training on %d replica(s), global batch %d: %d steps (%d epochs of %d "
                 "examples).", strategy.num_replicas_in_sync, global_batch_size, train_steps,
                 epochs, num_examples)

    schema = tf_transform_output.transformed_metadata.schema
    train_dataset = training_input(fn_args.train_files, fn_args.data_accessor, schema,
                                   global_batch_size, num_examples, config.shuffle_seed)
    eval_dataset = eval_input(fn_args.eval_files, fn_args.data_accessor, schema,
                              global_batch_size)
    with strategy.scope():
        schedule = learning_rate_schedule(config, train_steps)
        model = compile_model(build_model(config), config, schedule)
        warm_start(model, config, fn_args.base_model)

    backup = backup_dir(fn_args)
    # BackupAndRestore keeps the chief's checkpoints in chief/ until fit() completes
    # (other workers write theirs to temporary folders): every worker resumes from them.
    checkpoint = tf.train.latest_checkpoint(os.path.join(backup, "chief"))
    if checkpoint:
        logging.info("Resuming an interrupted training from its last checkpoint: %s",
                     checkpoint)
    plateau = CooldownOnPlateau(schedule, config.plateau_patience_epochs, config.cooldown_epochs,
                                steps_per_epoch, config.plateau_min_train_accuracy)
    history = model.fit(
        train_dataset,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        validation_data=eval_dataset,
        # Every epoch while watching for a plateau, else about _EVALUATIONS_PER_RUN times;
        # the last epoch always (Keras counts from 1).
        validation_freq=(1 if config.plateau_patience_epochs else
                         [e for e in range(1, epochs + 1)
                          if (epochs - e) % max(1, epochs // _EVALUATIONS_PER_RUN) == 0]),
        callbacks=[
            # Saves each epoch, restores after a crash, and deletes its files when done.
            # First, so that the epoch is saved before it is logged.
            tf.keras.callbacks.BackupAndRestore(backup),
            StopAtStep(train_steps),
            StopOnNonFiniteLoss(config.learning_rate),
            *([plateau] if config.plateau_patience_epochs else []),
            # Workers other than the chief log to temporary folders it then removes.
            tf.keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir, update_freq="epoch"),
            TrainEvalAccuracyLog(),
            TrainingProgress(epochs),
        ],
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
