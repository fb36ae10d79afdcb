"""The exported SavedModel: the TFT graph, then the ResNet, under two signatures.

`serving_default` takes what clients send, raw image bytes, and must survive anything a
client sends. A decode error inside a batch would fail the whole batch, and a header
claiming billions of pixels would make the decoder allocate them, so each input is checked
first, on its own: its format by its magic bytes, its pixel count by its header, then a
trial decode. Inputs that pass go through the transform and the model; every other one gets
an `error` saying why, and no prediction. One bad item never costs the others theirs.
"""
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from models import features, preprocessing

# Magic bytes of the formats tf.io.decode_image reads, in _HEADER_SIZE's order.
_MAGIC_BYTES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF8", b"BM")

ERROR_EMPTY = "empty input"
ERROR_FORMAT = "not a JPEG, PNG, GIF or BMP image"
ERROR_HEADER = "unreadable image header"
ERROR_DECODE = "corrupt or truncated image data"


def _unsigned(image_bytes: tf.Tensor, offset: int, length: int, big_endian: bool) -> tf.Tensor:
    """The unsigned integer at bytes [offset, offset + length) of a header, as int64."""
    digits = tf.cast(tf.io.decode_raw(tf.strings.substr(image_bytes, offset, length), tf.uint8),
                     tf.int64)
    weights = tf.constant([256 ** i for i in range(length)], tf.int64)
    if big_endian:
        weights = tf.reverse(weights, [0])
    # Fails (and so rejects the input) when the header is shorter than the field.
    return tf.reduce_sum(tf.reshape(digits, [length]) * weights)


def _signed_32(value: tf.Tensor) -> tf.Tensor:
    return tf.where(value >= 2 ** 31, value - 2 ** 32, value)


# Each reads (width, height) from a header of its format.
def _jpeg_size(image_bytes):
    height_width = tf.io.extract_jpeg_shape(image_bytes, output_type=tf.int64)[:2]
    return tf.reverse(height_width, [0])


def _png_size(image_bytes):  # IHDR: big-endian uint32s
    return tf.stack([_unsigned(image_bytes, 16, 4, True), _unsigned(image_bytes, 20, 4, True)])


def _gif_size(image_bytes):  # logical screen: little-endian uint16s
    return tf.stack([_unsigned(image_bytes, 6, 2, False), _unsigned(image_bytes, 8, 2, False)])


def _bmp_size(image_bytes):  # DIB header: int32s, a negative height meaning top-down rows
    return tf.abs(tf.stack([_signed_32(_unsigned(image_bytes, 18, 4, False)),
                            _signed_32(_unsigned(image_bytes, 22, 4, False))]))


_HEADER_SIZE = (_jpeg_size, _png_size, _gif_size, _bmp_size)


def _format_index(image_bytes: tf.Tensor) -> tf.Tensor:
    """Per input: the index of its format in _MAGIC_BYTES, or -1 if none matches."""
    index = tf.fill(tf.shape(image_bytes), -1)
    for i, magic in reversed(list(enumerate(_MAGIC_BYTES))):
        matches = tf.strings.substr(image_bytes, 0, len(magic)) == magic
        index = tf.where(matches, i, index)
    return index


def _indices_that_pass(indices: tf.Tensor, check) -> tuple[tf.Tensor, tf.Tensor]:
    """(indices for which `check(index)` runs without error, what it returned for them).

    tf.data isolates each input: an op failing on one is dropped, not raised.
    """
    passing = (tf.data.Dataset.from_tensor_slices(indices)
               .map(lambda i: (i, check(i)))
               .ignore_errors())
    nothing = tf.data.Dataset.from_tensors(tf.nest.map_structure(
        lambda spec: tf.zeros([0, *spec.shape], spec.dtype), passing.element_spec))
    # One batch of everything that passed, or the empty batch when nothing did.
    everything = passing.batch(tf.size(indices, tf.int64) + 1)
    return everything.concatenate(nothing).take(1).get_single_element()


def check_inputs(image_bytes: tf.Tensor, max_image_pixels: int) -> tf.Tensor:
    """Per input: why it cannot be served, or "" when it can."""
    count = tf.size(image_bytes, tf.int64)
    format_index = _format_index(image_bytes)
    known_format = tf.where(format_index >= 0)[:, 0]
    read, sizes = _indices_that_pass(known_format, lambda i: tf.switch_case(
        format_index[i], [lambda f=f: f(image_bytes[i]) for f in _HEADER_SIZE]))
    header_read = tf.scatter_nd(read[:, None], tf.ones_like(read, tf.bool), [count])
    width_height = tf.scatter_nd(read[:, None], sizes, [count, 2])
    # Capped per side so that the product cannot overflow int64.
    pixel_count = tf.reduce_prod(tf.minimum(width_height, 2 ** 31), axis=1)
    within_limit = header_read & (pixel_count <= max_image_pixels)
    # The decoded height, not a static-shaped result: one the graph optimiser could fold
    # away without decoding.
    decoded, _ = _indices_that_pass(tf.where(within_limit)[:, 0], lambda i: tf.shape(
        preprocessing.decode(image_bytes[i]), tf.int64)[0])
    decodes = tf.scatter_nd(decoded[:, None], tf.ones_like(decoded, tf.bool), [count])

    too_large = tf.strings.join([
        "header claims ", tf.strings.as_string(width_height[:, 0]), "x",
        tf.strings.as_string(width_height[:, 1]),
        f" pixels, above the limit of {max_image_pixels}: not decoded"])
    error = tf.where(decodes, "", ERROR_DECODE)
    error = tf.where(within_limit, error, too_large)
    error = tf.where(header_read, error, ERROR_HEADER)
    error = tf.where(format_index >= 0, error, ERROR_FORMAT)
    return tf.where(tf.strings.length(image_bytes) > 0, error, ERROR_EMPTY)


def export_serving_model(model: tf.keras.Model, tf_transform_output: tft.TFTransformOutput,
                         class_names: list[str], max_image_pixels: int, export_dir: str) -> None:
    """Saves the model with the TFT graph in front of it, under two signatures."""
    # Attached to the model so the SavedModel tracks the transform's assets and variables.
    model.tft_layer = tf_transform_output.transform_features_layer()
    image_spec = tf_transform_output.raw_feature_spec()[features.IMAGE_KEY]
    class_name_table = tf.constant(class_names)

    def predict(raw_features):
        transformed = model.tft_layer(raw_features)
        probabilities = model(transformed[features.TRANSFORMED_IMAGE_KEY], training=False)
        class_ids = tf.argmax(probabilities, axis=1)
        return {
            features.PROBABILITIES_KEY: probabilities,
            features.POSITIVE_PROBABILITY_KEY: probabilities[:, 1],
            features.PREDICTED_CLASS_KEY: class_ids,
            features.PREDICTED_LABEL_KEY: tf.gather(class_name_table, class_ids),
        }

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_tf_examples(serialized_examples):
        return predict(tf.io.parse_example(serialized_examples, {features.IMAGE_KEY: image_spec}))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=features.IMAGE_BYTES_INPUT)])
    def serve_image_bytes(image_bytes):
        error = check_inputs(image_bytes, max_image_pixels)
        servable = tf.where(error == "")
        # Shaped like the parsed feature: one value per example.
        predicted = predict({features.IMAGE_KEY: tf.reshape(tf.gather_nd(image_bytes, servable),
                                                            [-1, 1])})
        # Inputs without a prediction: probabilities NaN, class id -1, label "".
        no_prediction = {features.PROBABILITIES_KEY: np.nan,
                         features.POSITIVE_PROBABILITY_KEY: np.nan,
                         features.PREDICTED_CLASS_KEY: -1, features.PREDICTED_LABEL_KEY: ""}
        outputs = {}
        for key, values in predicted.items():
            shape = tf.concat([tf.shape(image_bytes), tf.shape(values)[1:]], axis=0)
            filler = tf.fill(shape, tf.constant(no_prediction[key], values.dtype))
            outputs[key] = tf.tensor_scatter_nd_update(filler, servable, values)
        outputs[features.ERROR_KEY] = error
        return outputs

    model.save(export_dir, save_format="tf", signatures={
        features.IMAGE_BYTES_SIGNATURE: serve_image_bytes,
        features.TF_EXAMPLE_SIGNATURE: serve_tf_examples,
    })
