"""The model and how it is optimised: the ResNet with its precision policy, AdamW on a
warm-up, cosine and cooldown schedule, the smoothed loss, the size its training images
are seen at, and when training stops."""
import math
from typing import Optional

import tensorflow as tf
from absl import logging

from models import resnet
from models.model_config import ModelConfig


def switched_on(setting: str) -> bool:
    """A GPU speed-up setting: "on", "off", or "auto" (on when a GPU is visible)."""
    return setting == "on" or (setting == "auto" and bool(tf.config.list_logical_devices("GPU")))


def build_model(config: ModelConfig) -> tf.keras.Model:
    """The ResNet the config describes, not compiled."""
    # Float16 compute with float32 weights; set before any layer is built.
    tf.keras.mixed_precision.set_global_policy(
        "mixed_float16" if switched_on(config.mixed_precision) else "float32")
    # Any height and width (the ResNet ends in a global pool): training images change size
    # during a run (ProgressiveResizing); evaluation and serving give image_size_px.
    return resnet.build_resnet(
        depth=config.resnet_depth,
        num_classes=len(config.class_names),
        input_shape=(None, None, 3),
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
    stopped improving: from the first epoch with train accuracy at least
    `min_train_accuracy`, eval accuracy is measured every epoch; after `patience_epochs`
    of them without a new best, the learning rate decays linearly to zero over
    `cooldown_epochs`, then training stops, measured once more.

    The generated default set is learnt within ~15 epochs of the 80 that real photos
    need. On real photos eval accuracy over a few hundred images goes flat for stretches
    of ten epochs while it still climbs on average; a model that does not yet fit its
    (augmented) training split has not converged, so it trains on, and its eval split is
    not evaluated each epoch for nothing (a tenth of an epoch's time on the dev photos).
    Every worker of a cluster sees the same global metrics, and so decides alike.
    """

    def __init__(self, schedule: WarmupCosineWithCooldown, eval_dataset: tf.data.Dataset,
                 patience_epochs: int, cooldown_epochs: int, steps_per_epoch: int,
                 min_train_accuracy: float):
        super().__init__()
        self.schedule = schedule
        self.eval_dataset = eval_dataset
        self.patience_epochs = patience_epochs
        self.cooldown_steps = cooldown_epochs * steps_per_epoch
        self.min_train_accuracy = min_train_accuracy
        self.best_accuracy = -1.0
        self.epochs_without_improvement = 0
        self.cooldown_end_step: Optional[int] = None
        self.stopped_early_at_epoch: Optional[int] = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        step = int(self.model.optimizer.iterations.numpy())
        if self.cooldown_end_step is not None:
            if step >= self.cooldown_end_step:
                self.model.stop_training = True
                self.stopped_early_at_epoch = epoch + 1
                self.evaluate(logs)  # the accuracy the run ends with
            return
        if logs.get("accuracy", 0.0) < self.min_train_accuracy:
            return
        accuracy = self.evaluate(logs)
        if accuracy > self.best_accuracy:
            self.best_accuracy, self.epochs_without_improvement = accuracy, 0
            return
        self.epochs_without_improvement += 1
        if self.epochs_without_improvement >= self.patience_epochs:
            self.schedule.start_cooldown(step, self.cooldown_steps)
            self.cooldown_end_step = step + self.cooldown_steps
            logging.info("Eval accuracy has not improved on %.3f for %d epochs, and train "
                         "accuracy is %.3f: the learning rate decays to zero over the next "
                         "%d steps, then training stops.", self.best_accuracy,
                         self.epochs_without_improvement, logs["accuracy"], self.cooldown_steps)

    def evaluate(self, logs: dict) -> float:
        """The epoch's eval accuracy, measured unless fit() already did (validation_freq);
        added to the epoch's logs as fit() adds its own, for the callbacks after this one
        and the run's history."""
        if "val_accuracy" not in logs:
            results = self.model.evaluate(self.eval_dataset, verbose=0, return_dict=True)
            logs.update({f"val_{name}": value for name, value in results.items()})
        return logs["val_accuracy"]


class ProgressiveResizing(tf.keras.callbacks.Callback):
    """Progressive resizing: epochs before `full_size_from_epoch` train on their batches
    resized to `early_size_px`; the later ones, and an early stop's cooldown, at the
    batches' own size, the one the model is evaluated and served at, so that it ends
    adapted to it.

    An epoch of the dev photos at 96 px costs ~0.64 of one at 128 px, and the accuracy it
    buys is about the same (benchmarks/RESULTS.md, section 11). The size is a constant of
    the traced train step (XLA needs static shapes), traced again when it changes: twice a
    run. A resumed training resumes at its epoch's size.
    """

    def __init__(self, model: tf.keras.Model, early_size_px: int, full_size_px: int,
                 full_size_from_epoch: int, plateau: Optional["CooldownOnPlateau"]):
        super().__init__()
        self.early_size_px = early_size_px
        # Early epochs at the full size: no resizing at all.
        self.full_size_from_epoch = 0 if early_size_px == full_size_px else full_size_from_epoch
        self.plateau = plateau
        self.size_px: Optional[int] = None  # None: the batches' own size
        train_step = model.train_step

        def train_step_at_size(data):
            images, labels = data
            if self.size_px is not None:
                # Bilinear: the augmentation's crop has just resampled the batch, and an
                # antialiased 0.75x costs ~5x as much (0.3 s an epoch of the dev photos).
                images = tf.image.resize(images, [self.size_px, self.size_px])
            return train_step((images, labels))

        model.train_step = tf.autograph.experimental.do_not_convert(train_step_at_size)

    @classmethod
    def for_run(cls, model: tf.keras.Model, config: ModelConfig, epochs: int,
                plateau: Optional["CooldownOnPlateau"]) -> "ProgressiveResizing":
        """The config's resizing over a run of `epochs`: the last full_size_epochs at full
        size."""
        return cls(model, config.early_image_size_px, config.image_size_px,
                   epochs - config.full_size_epochs, plateau)

    def on_epoch_begin(self, epoch, logs=None):
        cooling_down = self.plateau is not None and self.plateau.cooldown_end_step is not None
        full_size = epoch >= self.full_size_from_epoch or cooling_down
        size_px = None if full_size else self.early_size_px
        if size_px != self.size_px:
            self.size_px = size_px
            logging.info("Epoch %d on: training images at %s.", epoch + 1,
                         f"{size_px} px" if size_px else "their full size")
            self.model.make_train_function(force=True)
