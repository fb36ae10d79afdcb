"""Transform: decode, resize, normalise with full-pass statistics, and the same at serving."""
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from models import features
from models.preprocessing import decode_and_resize
from tests.helpers import TEST_IMAGE_SIZE_PX, analyze_and_transform, encode_image


def test_decode_and_resize_makes_a_fixed_size_rgb_float_image():
    for width, height in [(40, 30), (7, 90), (1, 1)]:
        image = decode_and_resize(tf.constant(encode_image(width, height)), TEST_IMAGE_SIZE_PX)
        assert image.shape == (TEST_IMAGE_SIZE_PX, TEST_IMAGE_SIZE_PX, 3)
        assert image.dtype == tf.float32
        assert 0.0 <= float(tf.reduce_min(image)) and float(tf.reduce_max(image)) <= 1.0


def test_png_and_grayscale_inputs_become_three_channels():
    png = decode_and_resize(tf.constant(encode_image(20, 20, fmt="PNG")), TEST_IMAGE_SIZE_PX)
    gray = decode_and_resize(tf.io.encode_png(tf.zeros([10, 12, 1], tf.uint8)), TEST_IMAGE_SIZE_PX)
    assert png.shape == gray.shape == (TEST_IMAGE_SIZE_PX, TEST_IMAGE_SIZE_PX, 3)


def test_images_are_normalised_with_full_pass_channel_statistics(tmp_path):
    # Skewed, varied content so per-channel mean and std are far from 0 and 1 before.
    raw = []
    for index in range(12):
        pixels = np.full((20 + index, 30, 3), [200, 40, 120], np.uint8)
        pixels[: 5 + index] = [20 * index, 255, 10]
        raw.append({features.IMAGE_KEY: [tf.io.encode_png(pixels).numpy()],
                    features.LABEL_KEY: [index % 2]})
    transformed, _, _ = analyze_and_transform(raw, tmp_path)

    images = np.stack([example[features.TRANSFORMED_IMAGE_KEY] for example in transformed])
    assert images.shape == (12, TEST_IMAGE_SIZE_PX, TEST_IMAGE_SIZE_PX, 3)
    pixels = images.reshape(-1, 3)
    np.testing.assert_allclose(pixels.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(pixels.std(axis=0), 1.0, atol=1e-3)
    assert [int(example[features.LABEL_KEY]) for example in transformed] == [i % 2 for i in range(12)]


def test_saved_transform_applies_the_same_transform_to_raw_bytes(transformed_dataset):
    raw, transformed, transform_output_dir = transformed_dataset
    layer = tft.TFTransformOutput(transform_output_dir).transform_features_layer()
    served = layer({features.IMAGE_KEY: tf.constant([example[features.IMAGE_KEY]
                                                     for example in raw])})
    np.testing.assert_allclose(
        served[features.TRANSFORMED_IMAGE_KEY].numpy(),
        np.stack([example[features.TRANSFORMED_IMAGE_KEY] for example in transformed]),
        atol=1e-5)
