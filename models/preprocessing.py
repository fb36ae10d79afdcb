"""Transform: decode, resize and normalise the images with full-pass statistics.

The same graph is saved by Transform and applied by both serving signatures, so a
client's raw JPEG bytes go through exactly the transform the model was trained on.
"""
from typing import Any

import tensorflow as tf
import tensorflow_transform as tft

from models import features
from models.model_config import TransformConfig

# Keeps the division finite for a channel with (near) zero variance.
_VARIANCE_EPSILON = 1e-6


def decode(image_bytes: tf.Tensor) -> tf.Tensor:
    """One encoded image (JPEG, PNG, GIF or BMP) -> uint8 [height, width, 3]."""
    return tf.io.decode_image(image_bytes, channels=3, expand_animations=False)


def decode_and_resize(image_bytes: tf.Tensor, image_size_px: int) -> tf.Tensor:
    """One encoded image -> float32 [size, size, 3] in [0, 1]."""
    image = tf.image.convert_image_dtype(decode(image_bytes), tf.float32)
    return tf.image.resize(image, [image_size_px, image_size_px])


def preprocessing_fn(inputs: dict[str, tf.Tensor], custom_config: dict[str, Any]):
    """TFT entry point: raw image bytes -> normalised float image; label passed through."""
    size = TransformConfig.from_custom_config(custom_config).image_size_px
    image_bytes = tf.reshape(inputs[features.IMAGE_KEY], [-1])
    images = tf.map_fn(
        lambda encoded: decode_and_resize(encoded, size),
        image_bytes,
        fn_output_signature=tf.TensorSpec([size, size, 3], tf.float32),
    )
    # Per-channel statistics over every pixel of the training split (one Beam pass).
    pixels = tf.reshape(images, [-1, 3])
    channel_mean = tft.mean(pixels, reduce_instance_dims=False)
    channel_variance = tft.var(pixels, reduce_instance_dims=False)
    normalised = (images - channel_mean) / tf.sqrt(channel_variance + _VARIANCE_EPSILON)
    return {
        features.TRANSFORMED_IMAGE_KEY: normalised,
        features.LABEL_KEY: tf.reshape(inputs[features.LABEL_KEY], [-1]),
    }
