"""Trainer: MirroredStrategy over two replicas, augmentation, warm start."""
import dataclasses
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_transform.tf_metadata import schema_utils
from tfx import v1 as tfx
from tfx.components.util import tfxio_utils
from tfx.types import artifact_utils, standard_artifacts

from models import (distribution, features, input_pipeline, optimization, trainer,
                    training_state)
from models.model_config import ModelConfig
from tests.helpers import small_model_config

MODEL_CONFIG = ModelConfig.from_custom_config(small_model_config())


def test_a_training_step_runs_on_two_replicas():
    # Logical devices can only be split before TensorFlow initialises: a fresh process.
    script = textwrap.dedent(f"""
        import json
        import numpy as np
        import tensorflow as tf
        from models import distribution, optimization
        from models.model_config import ModelConfig

        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        config = {MODEL_CONFIG!r}
        strategy = distribution.distribution_strategy(config.distribution_strategy)
        global_batch = config.batch_size_per_replica * strategy.num_replicas_in_sync
        images = np.random.default_rng(0).normal(size=(32, 16, 16, 3)).astype("float32")
        labels = np.arange(32) % 2
        dataset = tf.data.Dataset.from_tensor_slices((images, labels)).repeat().batch(global_batch)
        with strategy.scope():
            model = optimization.build_and_compile_model(config, train_steps=10)
        before = [w.numpy().copy() for w in model.trainable_weights]
        # The first epoch at 8 px (progressive resizing), the second at the full 16.
        traced_sizes = []
        train_step = model.train_step
        model.train_step = lambda data: traced_sizes.append(data[0].shape[1]) or train_step(data)
        resizing = optimization.ProgressiveResizing(model, 8, 16, 1, plateau=None)
        history = model.fit(dataset, steps_per_epoch=2, epochs=2, verbose=0,
                            callbacks=[resizing])
        changed = sum(not np.array_equal(b, w.numpy())
                      for b, w in zip(before, model.trainable_weights))
        print(json.dumps({{"replicas": strategy.num_replicas_in_sync,
                           "variable_devices": len(model.trainable_weights[0].values),
                           "loss": history.history["loss"][-1],
                           "changed": changed, "total": len(before),
                           "traced_sizes": list(dict.fromkeys(traced_sizes))}}))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env={**os.environ, "TF_USE_LEGACY_KERAS": "1"}, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["replicas"] == 2
    assert outcome["variable_devices"] == 2  # each variable mirrored on both devices
    assert np.isfinite(outcome["loss"])
    # Every weight trains, including convs behind the zero-initialised residual BNs.
    assert outcome["changed"] == outcome["total"]
    assert outcome["traced_sizes"] == [8, 16]


def test_augment_keeps_shape_and_varies_per_image():
    tf.random.set_seed(0)
    image = tf.random.normal([1, 12, 12, 3])
    batch = tf.repeat(image, 8, axis=0)
    augmented = input_pipeline.augment(batch)
    assert augmented.shape == batch.shape
    # Each image gets its own crop and flip: identical inputs come out different.
    distinct = {augmented[i].numpy().tobytes() for i in range(8)}
    assert len(distinct) > 1


def test_warm_start_loads_the_blessed_weights_only_when_the_architecture_matches(tmp_path):
    base_model_dir = str(tmp_path / "model" / "Format-Serving")
    images = np.random.default_rng(0).normal(size=(16, 16, 16, 3)).astype("float32")
    labels = np.arange(16) % 2
    base = optimization.build_and_compile_model(MODEL_CONFIG, train_steps=4)
    base.fit(images, labels, batch_size=4, epochs=1, verbose=0)  # to the schedule's end
    training_state.save_training_state(base, MODEL_CONFIG, base_model_dir)
    # As models saved before ModelConfig wrote it, so that they still warm-start.
    with open(tmp_path / "model" / features.TRAINING_STATE_DIR / "architecture.json") as file:
        assert json.load(file) == {"resnet_depth": 18, "width_multiplier": 0.125,
                                   "image_size_px": 16, "class_names": ["cats", "dogs"]}

    same = optimization.build_and_compile_model(MODEL_CONFIG, train_steps=10)
    assert training_state.warm_start(same, MODEL_CONFIG, base_model_dir).startswith("Warm start")
    for loaded, saved in zip(same.weights, base.weights):
        np.testing.assert_array_equal(loaded.numpy(), saved.numpy())
    # The weights, not the base's optimizer: the new schedule starts at its first step
    # (a warm-up from zero), and so the weights move on the second.
    same.fit(images[:8], labels[:8], batch_size=4, epochs=1, verbose=0)
    assert int(same.optimizer.iterations) == 2
    assert any(not np.array_equal(trained.numpy(), saved.numpy())
               for trained, saved in zip(same.trainable_weights, base.trainable_weights))

    wider = dataclasses.replace(MODEL_CONFIG, width_multiplier=0.25)
    assert training_state.warm_start(optimization.build_and_compile_model(wider, train_steps=10), wider,
                              base_model_dir).startswith(
        "Training from scratch: the blessed model's architecture")
    assert training_state.warm_start(same, MODEL_CONFIG, None) == (
        "Training from scratch: no blessed model to start from.")


def test_gpu_speedups_are_off_on_cpu_by_default_and_train_when_forced_on():
    auto = optimization.build_and_compile_model(MODEL_CONFIG, train_steps=10)
    assert auto.compute_dtype == "float32" and not auto._jit_compile  # this machine: no GPU
    try:
        forced = optimization.build_and_compile_model(
            dataclasses.replace(MODEL_CONFIG, mixed_precision="on", jit_compile="on"),
            train_steps=10)
        assert forced.layers[1].compute_dtype == "float16"
        assert forced.layers[1].variable_dtype == "float32"
        assert forced.output.dtype == tf.float32  # the softmax stays in float32
        assert isinstance(forced.optimizer, tf.keras.mixed_precision.LossScaleOptimizer)
        assert forced._jit_compile
        images = np.random.default_rng(0).normal(size=(8, 16, 16, 3)).astype("float32")
        history = forced.fit(images, np.arange(8) % 2, batch_size=4, epochs=1, verbose=0)
        assert np.isfinite(history.history["loss"][-1])
    finally:
        tf.keras.mixed_precision.set_global_policy("float32")


@pytest.fixture
def gpus_found(monkeypatch):
    """The GPUs TensorFlow finds, as the test sets them (none to begin with)."""
    found = []
    monkeypatch.setattr(tf.config, "list_physical_devices",
                        lambda device_type=None: found if device_type == "GPU" else [])
    return found


def test_a_trainer_given_gpus_fails_before_reading_data_if_tensorflow_finds_fewer(
        gpus_found, tmp_path):
    message = (r"The Trainer was given 2 GPU\(s\) \(trainer_gpu_count=2\) but TensorFlow "
               r"found 0: tf.config.list_physical_devices\('GPU'\) = \[\]. Refusing to "
               r"train on the CPU instead.")
    with pytest.raises(RuntimeError, match=message):
        distribution.check_gpus_found(2)
    gpus_found.append(tf.config.PhysicalDevice("/physical_device:GPU:0", "GPU"))
    with pytest.raises(RuntimeError, match=r"found 1: .* = \['/physical_device:GPU:0'\]"):
        distribution.check_gpus_found(2)
    distribution.check_gpus_found(1)
    # run_fn checks first: its inputs, which it could not read, are never read.
    gpus_found.clear()
    (tmp_path / "examples.gz").write_bytes(b"not a TFRecord")
    with pytest.raises(RuntimeError, match=message):
        trainer.run_fn(tfx.components.FnArgs(
            custom_config={**small_model_config(), "trainer_gpu_count": 2},
            transform_output=str(tmp_path / "missing"), train_files=[str(tmp_path / "*.gz")]))


def test_a_trainer_given_no_gpus_trains_on_whatever_it_finds(gpus_found):
    distribution.check_gpus_found(0)  # the local pipeline's default
    assert MODEL_CONFIG.trainer_gpu_count == 0


def test_training_length_follows_the_data_unless_a_step_budget_is_given():
    # 2,000 photos and 200: the same number of passes, not the same number of steps.
    assert input_pipeline.training_length(2000, 32, train_epochs=30, train_steps=None) == (62, 1860)
    assert input_pipeline.training_length(200, 32, train_epochs=30, train_steps=None) == (6, 180)
    assert input_pipeline.training_length(10, 32, train_epochs=3, train_steps=None) == (1, 3)
    assert input_pipeline.training_length(2000, 32, train_epochs=30, train_steps=250) == (62, 250)


def test_a_step_budget_is_trained_exactly_and_the_schedule_reaches_its_end():
    """250 steps in epochs of 100 used to train 200 (the remainder dropped), with the
    learning rate still at a fifth of its cosine when training stopped."""
    train_steps, steps_per_epoch = 25, 10
    images = np.random.default_rng(0).normal(size=(8, 16, 16, 3)).astype("float32")
    dataset = tf.data.Dataset.from_tensor_slices((images, np.arange(8) % 2)).repeat().batch(4)
    model = optimization.build_and_compile_model(MODEL_CONFIG, train_steps)
    history = model.fit(dataset, epochs=3, steps_per_epoch=steps_per_epoch, verbose=0,
                        callbacks=[optimization.StopAtStep(train_steps)])
    assert int(model.optimizer.iterations.numpy()) == train_steps
    assert len(history.history["loss"]) == 3  # the last epoch ended after 5 of its 10 steps
    # The rate of the last step: the cosine's end (5e-5 of 1e-2 here), not its middle.
    assert float(model.optimizer.learning_rate.numpy()) < 1e-4


def test_training_fails_at_the_first_non_finite_loss_naming_the_step_and_the_likely_cause():
    """Keras' TerminateOnNaN would stop silently, and the run export a model that answers
    NaN. An infinite learning rate: the first step's loss is finite, its update is not."""
    config = dataclasses.replace(MODEL_CONFIG, learning_rate=float("inf"))
    images = np.random.default_rng(0).normal(size=(8, 16, 16, 3)).astype("float32")
    dataset = tf.data.Dataset.from_tensor_slices((images, np.arange(8) % 2)).repeat().batch(4)
    model = optimization.build_and_compile_model(config, train_steps=10)
    with pytest.raises(FloatingPointError, match=(
            r"loss is nan at step 2 \(epoch 1, batch 2\)\. Likely too high a learning rate "
            r"\(learning_rate=inf")):
        model.fit(dataset, epochs=2, steps_per_epoch=5, verbose=0,
                  callbacks=[optimization.StopOnNonFiniteLoss(config.learning_rate)])


def test_count_examples_reads_every_record(tmp_path):
    path = str(tmp_path / "examples.gz")
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for index in range(7):
            writer.write(str(index).encode())
    assert input_pipeline.count_examples([str(tmp_path / "*.gz")]) == 7


def write_transformed_examples(path: str, count: int) -> None:
    """`count` transformed examples whose label is their index, in one gzipped file."""
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for index in range(count):
            example = tf.train.Example(features=tf.train.Features(feature={
                features.TRANSFORMED_IMAGE_KEY: tf.train.Feature(
                    float_list=tf.train.FloatList(value=[float(index)] * 12)),
                features.LABEL_KEY: tf.train.Feature(
                    int64_list=tf.train.Int64List(value=[index])),
            }))
            writer.write(example.SerializeToString())


def test_training_input_serves_every_example_once_an_epoch_reshuffled_the_same_everywhere(
        tmp_path):
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path)
    examples.split_names = artifact_utils.encode_split_names(["train"])
    os.makedirs(tmp_path / "Split-train")
    write_transformed_examples(str(tmp_path / "Split-train" / "data.gz"), count=12)
    accessor = tfx.components.DataAccessor(
        tf_dataset_factory=tfxio_utils.get_tf_dataset_factory_from_artifact([examples], []),
        record_batch_factory=None, data_view_decode_fn=None)
    schema = schema_utils.schema_from_feature_spec({
        features.TRANSFORMED_IMAGE_KEY: tf.io.FixedLenFeature([2, 2, 3], tf.float32),
        features.LABEL_KEY: tf.io.FixedLenFeature([], tf.int64),
    })

    def three_epochs_of_labels(shuffle_seed: int) -> list[list[int]]:
        dataset = input_pipeline.training_input([str(tmp_path / "Split-train" / "*")], accessor,
                                         schema, batch_size=4, num_examples=12,
                                         shuffle_seed=shuffle_seed)
        labels = [int(label) for _, batch in dataset.take(9) for label in batch]
        return [labels[start:start + 12] for start in (0, 12, 24)]

    epochs = three_epochs_of_labels(shuffle_seed=0)
    assert all(sorted(epoch) == list(range(12)) for epoch in epochs)
    # Shuffled across the whole split, in a new order each epoch, not in file order.
    assert len({tuple(epoch) for epoch in epochs + [list(range(12))]}) == 4
    # Every worker of a cluster builds the same sequence from the same seed.
    assert three_epochs_of_labels(shuffle_seed=0) == epochs
    assert three_epochs_of_labels(shuffle_seed=1) != epochs


def test_a_plateau_in_eval_accuracy_anneals_the_rate_to_zero_then_stops_training():
    """The generated default set is learnt within ~15 of the 80 epochs that real photos
    need: once eval accuracy stops improving, the run cools down and ends, instead of
    training on, or stopping on a cosine cut off at a high rate."""
    config = dataclasses.replace(MODEL_CONFIG, warmup_steps=0)
    images = np.random.default_rng(0).normal(size=(8, 16, 16, 3)).astype("float32")
    dataset = tf.data.Dataset.from_tensor_slices((images, np.arange(8) % 2)).repeat().batch(4)
    # One image under both labels: eval accuracy is 0.5 whatever the model answers, so
    # epochs 2 and 3 bring no new best.
    same_image_twice = tf.data.Dataset.from_tensor_slices(
        (np.repeat(images[:1], 2, axis=0), np.array([0, 1]))).batch(2)
    steps_per_epoch, planned_epochs = 3, 20
    schedule = optimization.learning_rate_schedule(config, planned_epochs * steps_per_epoch)
    model = optimization.compile_model(optimization.build_model(config), config, schedule)
    plateau = optimization.CooldownOnPlateau(
        schedule, same_image_twice, patience_epochs=2, cooldown_epochs=2,
        steps_per_epoch=steps_per_epoch, min_train_accuracy=0.0)
    # fit() itself evaluates no epoch: the callback measures the ones it watches.
    history = model.fit(dataset, epochs=planned_epochs, steps_per_epoch=steps_per_epoch,
                        verbose=0, callbacks=[plateau])
    # Best at epoch 1, no better at 2 and 3: cooldown over epochs 4 and 5, then the end.
    assert len(history.epoch) == 5 and plateau.stopped_early_at_epoch == 5
    assert int(model.optimizer.iterations.numpy()) == 15
    cooldown_start_rate = float(schedule.cosine(9))
    assert float(schedule(12)) == pytest.approx(cooldown_start_rate / 2)
    assert float(schedule(15)) == 0.0
    # Before the cooldown, the cosine itself.
    assert float(schedule(5)) == pytest.approx(float(schedule.cosine(5)))
    # Measured on the watched epochs and at the stop, in the run's history as fit()'s own.
    assert history.history["val_accuracy"] == [0.5, 0.5, 0.5, 0.5]


def test_progressive_resizing_trains_early_epochs_small_and_the_last_and_a_cooldown_full_size():
    images = np.random.default_rng(0).normal(size=(8, 16, 16, 3)).astype("float32")
    dataset = tf.data.Dataset.from_tensor_slices((images, np.arange(8) % 2)).repeat().batch(4)

    def train(epochs, full_size_from_epoch, start_cooldown_after_epoch=None):
        schedule = optimization.learning_rate_schedule(MODEL_CONFIG, train_steps=2 * epochs)
        model = optimization.compile_model(optimization.build_model(MODEL_CONFIG), MODEL_CONFIG,
                                           schedule)
        traced_sizes, epoch_sizes = [], []
        train_step = model.train_step

        def recording_train_step(data):
            traced_sizes.append(data[0].shape[1])  # runs as the step is traced
            return train_step(data)

        model.train_step = recording_train_step
        plateau = optimization.CooldownOnPlateau(schedule, None, 1, 1, 2, 0.0)
        resizing = optimization.ProgressiveResizing(model, 8, 16, full_size_from_epoch, plateau)

        class Record(tf.keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                epoch_sizes.append(resizing.size_px or 16)
                if epoch == start_cooldown_after_epoch:
                    plateau.cooldown_end_step = 100  # as CooldownOnPlateau sets it

        model.fit(dataset, epochs=epochs, steps_per_epoch=2, verbose=0,
                  callbacks=[resizing, Record()])
        # In the order traced (the first trace also runs a second time, after it created
        # the optimizer's variables).
        return list(dict.fromkeys(traced_sizes)), epoch_sizes

    # The step sees the early size, then the full size for the last epochs.
    assert train(epochs=4, full_size_from_epoch=3) == ([8, 16], [8, 8, 8, 16])
    # An early stop's cooldown runs at the full size, however early it starts.
    assert train(epochs=4, full_size_from_epoch=10, start_cooldown_after_epoch=1)[1] == [
        8, 8, 16, 16]
    # Early size = full size: no resizing.
    resizing = optimization.ProgressiveResizing(
        optimization.build_model(MODEL_CONFIG), 16, 16, 3, plateau=None)
    resizing.set_model(tf.keras.Sequential())
    resizing.on_epoch_begin(0)
    assert resizing.size_px is None


def test_before_the_model_fits_its_training_split_it_trains_on_without_evaluating_each_epoch():
    """Real photos: train accuracy stays far from fitting the augmented training split for
    the whole run, so watching eval accuracy each epoch would cost time and stop nothing."""
    config = dataclasses.replace(MODEL_CONFIG, warmup_steps=0)
    schedule = optimization.learning_rate_schedule(config, train_steps=40)
    model = optimization.compile_model(optimization.build_model(config), config, schedule)
    evaluated = []
    model.evaluate = lambda *args, **kwargs: evaluated.append(args) or {"accuracy": 0.5}
    plateau = optimization.CooldownOnPlateau(schedule, "eval split", patience_epochs=2,
                                             cooldown_epochs=2, steps_per_epoch=4,
                                             min_train_accuracy=0.97)
    plateau.set_model(model)
    for epoch in range(9):
        plateau.on_epoch_end(epoch, {"accuracy": 0.6 + epoch / 50})
    assert evaluated == [] and plateau.cooldown_end_step is None and not model.stop_training
    assert float(schedule(30)) == pytest.approx(float(schedule.cosine(30)))
    # Once it fits, each epoch is measured (fit()'s own measurement, where it made one,
    # is not repeated) and a plateau of `patience_epochs` starts the cooldown.
    plateau.on_epoch_end(9, {"accuracy": 0.98})
    plateau.on_epoch_end(10, {"accuracy": 0.98, "val_accuracy": 0.5})
    plateau.on_epoch_end(11, {"accuracy": 0.99})
    assert evaluated == [("eval split",), ("eval split",)]
    assert plateau.cooldown_end_step is not None


def test_an_unknown_distribution_strategy_is_an_error_not_mirrored():
    with pytest.raises(ValueError, match="Unknown distribution strategy 'tpu': expected one of "
                                         "mirrored, multi_worker_mirrored"):
        distribution.distribution_strategy("tpu")
