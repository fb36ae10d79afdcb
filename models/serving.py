"""The exported SavedModel: the TFT graph, then the ResNet, under two signatures.

Both signatures are served (TF Serving exposes every signature of the model), so both
must survive anything a client sends. A decode error inside a batch would fail the whole
batch, and a header claiming billions of pixels would make the decoder allocate them, so
each input is checked first, on its own: for `serving_tf_example`, that it is a
tf.Example with one image; then the image's format by its magic bytes, its pixel count by
its header, and a trial decode. Inputs that pass are turned upright by their EXIF
orientation, as ingestion stores photos, and go through the transform and the model;
every other one gets an `error` saying why, and no prediction. One bad item never costs
the others theirs.

The pixel limit bounds one item; a request of many items is bounded by a decode budget
(`max_request_pixels`, on the raw-bytes signature that clients send): the items are
decoded in order while the pixels their headers claim add up to at most the budget, and
every later one gets an error instead of a decode. The tf.Example signature is TFMA's,
whose batches of ingested eval images (each already within the limit) TFMA sizes itself
(up to 1000 examples): a budget there could refuse eval examples.
"""
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from models import features, image_header, preprocessing
from models.image_header import ERROR_FORMAT, ERROR_HEADER

ERROR_EMPTY = "empty input"
ERROR_DECODE = "corrupt or truncated image data"
ERROR_EXAMPLE = f"not a serialized tf.Example with one {features.IMAGE_KEY} value"
# A model whose training diverged answers NaN: no class to give.
ERROR_NOT_FINITE = "the model's output is not finite (NaN or infinite): no prediction"


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


def check_inputs(image_bytes: tf.Tensor, max_image_pixels: int,
                 max_request_pixels: float = np.inf) -> tf.Tensor:
    """Per input: why it cannot be served, or "" when it can."""
    count = tf.size(image_bytes, tf.int64)
    format_index = image_header.format_index(image_bytes)
    read, sizes_read = _indices_that_pass(tf.where(format_index >= 0)[:, 0],
                                          lambda i: image_header.decoded_size(image_bytes[i]))
    header_read = tf.scatter_nd(read[:, None], tf.ones_like(read, tf.bool), [count])
    sizes = tf.scatter_nd(read[:, None], sizes_read, [count, 3])
    width, height, frames = tf.unstack(sizes, axis=1)
    # In float64: exact up to 2**53, and no int64 overflow beyond.
    pixel_count = tf.reduce_prod(tf.cast(sizes, tf.float64), axis=1)
    within_limit = header_read & (pixel_count <= max_image_pixels)
    # Once the items so far claim more than the budget, nothing after is decoded.
    spent = tf.cumsum(tf.where(within_limit, pixel_count, 0.0))
    within_budget = within_limit & (spent <= max_request_pixels)
    # The decoded height, not a static-shaped result: one the graph optimiser could fold
    # away without decoding.
    decoded, _ = _indices_that_pass(tf.where(within_budget)[:, 0], lambda i: tf.shape(
        preprocessing.decode(image_bytes[i]), tf.int64)[0])
    decodes = tf.scatter_nd(decoded[:, None], tf.ones_like(decoded, tf.bool), [count])

    of_frames = tf.where(frames > 1, tf.strings.join([" x ", tf.strings.as_string(frames),
                                                      " frames"]), "")
    too_large = tf.strings.join([
        "header claims ", tf.strings.as_string(width), "x", tf.strings.as_string(height),
        " pixels", of_frames, f", above the limit of {max_image_pixels}: not decoded"])
    error = tf.where(decodes, "", ERROR_DECODE)
    error = tf.where(within_budget | ~within_limit, error, tf.constant(
        f"the items of the request up to this one claim more than its decode budget of "
        f"{max_request_pixels} pixels: not decoded (send fewer or smaller images)"))
    error = tf.where(within_limit, error, too_large)
    error = tf.where(header_read, error, ERROR_HEADER)
    error = tf.where(format_index >= 0, error, ERROR_FORMAT)
    return tf.where(tf.strings.length(image_bytes) > 0, error, ERROR_EMPTY)


def parse_images(serialized_examples: tf.Tensor, image_spec) -> tuple[tf.Tensor, tf.Tensor]:
    """Per input: (its image bytes, "" or ERROR_EXAMPLE), each example parsed on its own."""
    count = tf.size(serialized_examples, tf.int64)
    parsed, images = _indices_that_pass(tf.range(count), lambda i: tf.reshape(
        tf.io.parse_single_example(serialized_examples[i], {features.IMAGE_KEY: image_spec})[
            features.IMAGE_KEY], []))
    image_bytes = tf.tensor_scatter_nd_update(tf.fill([count], ""), parsed[:, None], images)
    is_parsed = tf.scatter_nd(parsed[:, None], tf.ones_like(parsed, tf.bool), [count])
    return image_bytes, tf.where(is_parsed, "", ERROR_EXAMPLE)


def export_serving_model(model: tf.keras.Model, tf_transform_output: tft.TFTransformOutput,
                         class_names: list[str], max_image_pixels: int,
                         max_request_pixels: int, export_dir: str,
                         test_time_flip: bool) -> None:
    """Saves the model with the TFT graph in front of it, under two signatures.

    With `test_time_flip`, a prediction is the mean of the model's probabilities for the
    image and for its mirror image: trained on random flips, the model errs differently
    on the two, and the mean is right more often (+1-2% eval accuracy on real photos, at
    twice the serving compute).
    """
    # Attached to the model so the SavedModel tracks the transform's assets and variables.
    model.tft_layer = tf_transform_output.transform_features_layer()
    image_spec = tf_transform_output.raw_feature_spec()[features.IMAGE_KEY]
    class_name_table = tf.constant(class_names)
    probability_type = model.outputs[0].dtype

    def predict(raw_features):
        images = model.tft_layer(raw_features)[features.TRANSFORMED_IMAGE_KEY]
        probabilities = model(images, training=False)
        if test_time_flip:
            mirrored = model(tf.image.flip_left_right(images), training=False)
            probabilities = (probabilities + mirrored) / 2
        class_ids = tf.argmax(probabilities, axis=1)
        return {
            features.PROBABILITIES_KEY: probabilities,
            features.POSITIVE_PROBABILITY_KEY: probabilities[:, 1],
            features.PREDICTED_CLASS_KEY: class_ids,
            features.PREDICTED_LABEL_KEY: tf.gather(class_name_table, class_ids),
        }

    def predict_servable(image_bytes, error):
        """Predictions for the inputs without an error, where the model's output is
        finite; the others get none."""
        servable = tf.where(error == "")

        def predict_upright():
            upright = tf.map_fn(image_header.upright, tf.gather_nd(image_bytes, servable),
                                fn_output_signature=tf.string)
            # Shaped like the parsed feature: one value per example.
            return predict({features.IMAGE_KEY: tf.reshape(upright, [-1, 1])})

        # The model fails on an empty batch: a request of only refused items would lose
        # their errors to an InvalidArgumentError.
        nothing = {features.PROBABILITIES_KEY: tf.zeros([0, len(class_names)], probability_type),
                   features.POSITIVE_PROBABILITY_KEY: tf.zeros([0], probability_type),
                   features.PREDICTED_CLASS_KEY: tf.zeros([0], tf.int64),
                   features.PREDICTED_LABEL_KEY: tf.zeros([0], tf.string)}
        predicted = tf.cond(tf.size(servable) > 0, predict_upright, lambda: nothing)
        finite = tf.reduce_all(tf.math.is_finite(predicted[features.PROBABILITIES_KEY]), axis=1)
        error = tf.tensor_scatter_nd_update(error, servable,
                                            tf.where(finite, "", ERROR_NOT_FINITE))
        answered = tf.boolean_mask(servable, finite)
        # Inputs without a prediction: probabilities NaN, class id -1, label "".
        no_prediction = {features.PROBABILITIES_KEY: np.nan,
                         features.POSITIVE_PROBABILITY_KEY: np.nan,
                         features.PREDICTED_CLASS_KEY: -1, features.PREDICTED_LABEL_KEY: ""}
        outputs = {}
        for key, values in predicted.items():
            shape = tf.concat([tf.shape(image_bytes), tf.shape(values)[1:]], axis=0)
            filler = tf.fill(shape, tf.constant(no_prediction[key], values.dtype))
            outputs[key] = tf.tensor_scatter_nd_update(filler, answered,
                                                       tf.boolean_mask(values, finite))
        outputs[features.ERROR_KEY] = error
        return outputs

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")],
                 autograph=False)
    def serve_tf_examples(serialized_examples):
        image_bytes, error = parse_images(serialized_examples, image_spec)
        return predict_servable(image_bytes, tf.where(
            error == "", check_inputs(image_bytes, max_image_pixels), error))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=features.IMAGE_BYTES_INPUT)],
                 autograph=False)
    def serve_image_bytes(image_bytes):
        return predict_servable(image_bytes, check_inputs(image_bytes, max_image_pixels,
                                                          max_request_pixels))

    # Without AutoGraph (see optimization.compile_model) and without a traced function per
    # layer, which only Keras' own loader would use: 35 s -> 9 s on 2 cores. Clients and
    # TFMA call the signatures.
    model.save(export_dir, save_format="tf", save_traces=False, signatures={
        features.IMAGE_BYTES_SIGNATURE: serve_image_bytes,
        features.TF_EXAMPLE_SIGNATURE: serve_tf_examples,
    })
