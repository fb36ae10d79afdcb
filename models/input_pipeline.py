"""The Trainer's input pipeline: Transform's examples as (image, label) batches, the
training split augmented and reshuffled each epoch, and how long an epoch is."""
import math
from typing import Optional

import tensorflow as tf
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx import v1 as tfx
from tfx_bsl.public import tfxio

from models import features

# Augmentation for photos: a random crop of 25-100% of the area with an aspect ratio in
# [3/4, 4/3], resized back (the paper's "scale augmentation"), a horizontal flip, and a
# small brightness and contrast jitter. A few thousand photos are memorised within ~15
# epochs without it (train accuracy 0.97, eval 0.76).
_CROP_AREA_RANGE = (0.25, 1.0)
_CROP_ASPECT_RANGE = (3 / 4, 4 / 3)
# In units of the normalised pixels (one standard deviation of the training split).
_BRIGHTNESS_JITTER = 0.2
_CONTRAST_JITTER = 0.2


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
    """The eval split's (image, label) batches, one pass each time it is iterated.

    Parsed once and kept in memory (num_examples x image_size_px^2 x 12 bytes: 39 MB for
    200 at 128 px), as the training split is: evaluated up to every epoch, it was otherwise
    unzipped and parsed again each time, which doubled an epoch's time on the default data.
    """
    return images_and_labels(
        transformed_batches(file_pattern, data_accessor, schema, batch_size).cache(),
        augmented=False)


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
