"""The exported model's signatures, what its raw-bytes signature does with bad input, and
the Evaluator's per-example predictions made with them; the REST request the README
shows, and `cats-dogs-predict`."""
import base64
import io
import json
import os
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from tfx.utils import path_utils

from components.evaluator import predict_split
from components.image_example_gen.image_file import read_image
from metadata import eval_predictions
from models import features, optimization, serving
from models.model_config import ModelConfig
from pipeline import predict
from pipeline.config import PipelineConfig
from tests import bad_inputs
from tests.helpers import REPO_ROOT, encode_image, small_model_config

MODEL_CONFIG = ModelConfig.from_custom_config(small_model_config())
MAX_IMAGE_PIXELS = 1_000_000
MAX_REQUEST_PIXELS = 2_500_000


def export(tmp_path_factory, transform_output_dir: str, test_time_flip: bool,
           diverged: bool = False) -> Path:
    """An untrained model, exported as the Trainer exports it: the Model artifact's folder.
    `diverged`: every weight NaN, as after a training that diverged."""
    import tensorflow_transform as tft

    model = optimization.build_and_compile_model(MODEL_CONFIG, train_steps=10)
    if diverged:
        model.set_weights([np.full_like(weights, np.nan) for weights in model.get_weights()])
    model_uri = tmp_path_factory.mktemp("model")
    serving.export_serving_model(model, tft.TFTransformOutput(transform_output_dir),
                                 list(MODEL_CONFIG.class_names), MAX_IMAGE_PIXELS,
                                 MAX_REQUEST_PIXELS,
                                 path_utils.serving_model_path(str(model_uri)), test_time_flip)
    return model_uri


@pytest.fixture(scope="module")
def exported_model_uri(tmp_path_factory, transformed_dataset) -> Path:
    _, _, transform_output_dir = transformed_dataset
    assert MODEL_CONFIG.test_time_flip, "the default exports with test-time flips"
    return export(tmp_path_factory, transform_output_dir, test_time_flip=True)


@pytest.fixture(scope="module")
def diverged_model_uri(tmp_path_factory, transformed_dataset) -> Path:
    _, _, transform_output_dir = transformed_dataset
    return export(tmp_path_factory, transform_output_dir, test_time_flip=True, diverged=True)


def load(model_uri: Path):
    return tf.saved_model.load(path_utils.serving_model_path(str(model_uri)))


@pytest.fixture(scope="module")
def exported_model(exported_model_uri):
    return load(exported_model_uri)


def serve(exported_model, images: list[bytes]) -> dict[str, np.ndarray]:
    outputs = exported_model.signatures[features.IMAGE_BYTES_SIGNATURE](
        **{features.IMAGE_BYTES_INPUT: tf.constant(images, tf.string)})
    return {key: value.numpy() for key, value in outputs.items()}


def errors(outputs) -> list[str]:
    return [error.decode() for error in outputs[features.ERROR_KEY]]


def assert_predicted_or_refused(outputs) -> None:
    """Each input has a prediction and no error, or an error and no prediction."""
    for i, error in enumerate(errors(outputs)):
        probabilities = outputs[features.PROBABILITIES_KEY][i]
        if error:
            assert np.isnan(probabilities).all()
            assert outputs[features.PREDICTED_CLASS_KEY][i] == -1
            assert outputs[features.PREDICTED_LABEL_KEY][i] == b""
        else:
            np.testing.assert_allclose(probabilities.sum(), 1.0, atol=1e-5)
            class_id = outputs[features.PREDICTED_CLASS_KEY][i]
            assert outputs[features.PREDICTED_LABEL_KEY][i].decode() == \
                MODEL_CONFIG.class_names[class_id]


def with_header_size(image: bytes, fmt: str, width: int, height: int) -> bytes:
    """`image` with its header rewritten to claim width x height (the pixel data unchanged)."""
    data = bytearray(image)
    if fmt == "JPEG":  # SOF0 segment: marker, length, precision, height, width
        sof = data.index(b"\xff\xc0")
        data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    elif fmt == "BMP":
        data[18:26] = struct.pack("<ii", width, height)
    return bytes(data)


def encode(fmt: str, width: int = 30, height: int = 20) -> bytes:
    buffer = io.BytesIO()
    pixels = np.random.default_rng(width).integers(0, 256, (height, width, 3), np.uint8)
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


def truncated(image: bytes) -> bytes:
    """The header and half the pixel data."""
    return image[:len(image) // 2]


def test_raw_bytes_and_tf_examples_give_the_same_predictions(exported_model):
    images = [encode_image(40, 30, seed=7), encode_image(17, 60, seed=8, fmt="PNG")]
    by_bytes = serve(exported_model, images)
    examples = [tf_example(image) for image in images]
    by_example = exported_model.signatures[features.TF_EXAMPLE_SIGNATURE](
        examples=tf.constant(examples))

    probabilities = by_bytes[features.PROBABILITIES_KEY]
    assert probabilities.shape == (2, 2)
    assert errors(by_bytes) == ["", ""]
    np.testing.assert_allclose(probabilities, by_example[features.PROBABILITIES_KEY].numpy(),
                               atol=1e-6)
    np.testing.assert_allclose(by_bytes[features.POSITIVE_PROBABILITY_KEY], probabilities[:, 1])
    assert_predicted_or_refused(by_bytes)


def mirrored_png_pair(width: int, height: int) -> list[bytes]:
    """A random image and its mirror image, losslessly encoded."""
    pixels = np.random.default_rng(width).integers(0, 256, (height, width, 3), np.uint8)
    encoded = []
    for image in (pixels, pixels[:, ::-1]):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        encoded.append(buffer.getvalue())
    return encoded


def test_with_test_time_flip_a_photo_and_its_mirror_image_get_the_same_prediction(
        exported_model, tmp_path_factory, transformed_dataset):
    images = mirrored_png_pair(37, 29)
    flipped = serve(exported_model, images)[features.PROBABILITIES_KEY]
    np.testing.assert_allclose(flipped[0], flipped[1], atol=1e-6)

    _, _, transform_output_dir = transformed_dataset
    plain_model = load(export(tmp_path_factory, transform_output_dir, test_time_flip=False))
    plain = serve(plain_model, images)[features.PROBABILITIES_KEY]
    assert np.abs(plain[0] - plain[1]).max() > 1e-4, "the model alone is not mirror-symmetric"


def test_every_image_that_ingestion_accepts_gets_a_prediction(exported_model):
    accepted = bad_inputs.accepted_files()
    outputs = serve(exported_model, [data for data, _ in accepted.values()])
    assert dict(zip(accepted, errors(outputs))) == {name: "" for name in accepted}
    assert_predicted_or_refused(outputs)


@pytest.mark.parametrize("image, reason", [
    (b"", serving.ERROR_EMPTY),
    (b"this is not an image\n" * 20, serving.ERROR_FORMAT),
    (encode("WEBP"), serving.ERROR_FORMAT),
    (np.random.default_rng(0).bytes(3000), serving.ERROR_FORMAT),
    (encode("JPEG")[:10], serving.ERROR_HEADER),
    (encode("PNG")[:20], serving.ERROR_HEADER),
    (truncated(encode("JPEG", 200, 150)), serving.ERROR_DECODE),
    (truncated(encode("PNG", 200, 150)), serving.ERROR_DECODE),
    (bad_inputs.png_claiming_size(100_000, 100_000),
     "header claims 100000x100000 pixels, above the limit of 1000000: not decoded"),
    (with_header_size(encode("JPEG"), "JPEG", 60_000, 60_000), "header claims 60000x60000"),
    # TF decodes onto a canvas of the largest frame, whatever the GIF's logical screen,
    # any "GIF8..." signature (Pillow reads only GIF87a and GIF89a), and every frame.
    (bad_inputs.gif(2000, 2000, screen=(10, 10)), "header claims 2000x2000 pixels, above"),
    (bad_inputs.gif(1100, 1000, signature=b"GIF80a"), "header claims 1100x1000 pixels, above"),
    (bad_inputs.gif(600, 600, frames=3), "header claims 600x600 pixels x 3 frames, above"),
    (with_header_size(encode("BMP"), "BMP", 2_000_000_000, -2_000_000_000),
     "header claims 2000000000x2000000000"),
], ids=["empty", "text", "webp", "random", "jpeg_header_cut", "png_header_cut",
        "truncated_jpeg", "truncated_png", "png_bomb", "jpeg_bomb", "gif_frame_bomb",
        "gif_unusual_signature_bomb", "gif_frames_bomb", "bmp_bomb"])
def test_a_bad_item_in_a_batch_is_named_and_the_others_are_served(exported_model, image, reason):
    good = [encode_image(30 + i, 20, seed=i) for i in range(4)]
    outputs = serve(exported_model, good[:2] + [image] + good[2:])
    assert errors(outputs)[:2] == ["", ""] and errors(outputs)[3:] == ["", ""]
    assert errors(outputs)[2].startswith(reason)
    assert_predicted_or_refused(outputs)
    alone = serve(exported_model, good)[features.PROBABILITIES_KEY]
    np.testing.assert_allclose(np.delete(outputs[features.PROBABILITIES_KEY], 2, axis=0), alone,
                               atol=1e-6)


def test_a_request_of_only_refused_items_gets_their_errors(exported_model):
    outputs = serve(exported_model, [b"", truncated(encode("PNG"))])
    assert errors(outputs) == [serving.ERROR_EMPTY, serving.ERROR_DECODE]
    assert_predicted_or_refused(outputs)


def test_the_items_of_a_request_past_its_decode_budget_are_refused_undecoded(exported_model):
    """Each item within the pixel limit; together they claim more than the budget."""
    buffer = io.BytesIO()
    Image.new("RGB", (1000, 1000), (200, 120, 40)).save(buffer, format="PNG")
    megapixel, small = buffer.getvalue(), encode_image(30, 20)
    outputs = serve(exported_model, [small, megapixel, megapixel, megapixel, small])
    # 600 + 1M + 1M pixels are within the 2.5M budget; the third megapixel is past it.
    assert errors(outputs)[:3] == ["", "", ""]
    assert errors(outputs)[3:] == [
        "the items of the request up to this one claim more than its decode budget of "
        f"{MAX_REQUEST_PIXELS} pixels: not decoded (send fewer or smaller images)"] * 2
    assert_predicted_or_refused(outputs)


def bytes_feature(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def tf_example(image: bytes) -> bytes:
    return tf.train.Example(features=tf.train.Features(feature={
        features.IMAGE_KEY: bytes_feature(image)})).SerializeToString()


def test_the_tf_example_signature_checks_each_item_as_the_raw_one_does(exported_model):
    good = [encode_image(30 + i, 20, seed=i) for i in range(2)]
    examples = [tf_example(good[0]), tf_example(bad_inputs.png_claiming_size(100_000, 100_000)),
                b"not a tf.Example", tf.train.Example().SerializeToString(), tf_example(good[1])]
    outputs = {key: value.numpy() for key, value in exported_model.signatures[
        features.TF_EXAMPLE_SIGNATURE](examples=tf.constant(examples)).items()}
    assert errors(outputs) == [
        "", "header claims 100000x100000 pixels, above the limit of 1000000: not decoded",
        serving.ERROR_EXAMPLE, serving.ERROR_EXAMPLE, ""]
    assert_predicted_or_refused(outputs)
    np.testing.assert_allclose(outputs[features.PROBABILITIES_KEY][[0, 4]],
                               serve(exported_model, good)[features.PROBABILITIES_KEY], atol=1e-6)


def test_a_rotated_photo_sent_raw_is_served_as_ingestion_stored_it(exported_model, tmp_path):
    # A phone photo: pixels stored sideways, an EXIF orientation saying to turn them.
    photo = bad_inputs.jpeg_with_exif_orientation(40, 24, orientation=6)
    (tmp_path / "phone.jpg").write_bytes(photo)
    trained_on = read_image(str(tmp_path / "phone.jpg"), str(tmp_path), MAX_IMAGE_PIXELS,
                            max_file_bytes=2 ** 20).data
    sideways = tf.io.encode_png(tf.io.decode_jpeg(photo)).numpy()  # the orientation ignored

    by_bytes = serve(exported_model, [photo, trained_on, sideways])[features.PROBABILITIES_KEY]
    by_example = exported_model.signatures[features.TF_EXAMPLE_SIGNATURE](
        examples=tf.constant([tf_example(trained_on)]))[features.PROBABILITIES_KEY].numpy()
    np.testing.assert_allclose(by_bytes[0], by_bytes[1], atol=1e-6)
    np.testing.assert_allclose(by_bytes[0], by_example[0], atol=1e-6)
    # The model tells the two apart: served sideways, the photo would get another answer.
    assert np.abs(by_bytes[2] - by_bytes[1]).max() > 1e-4


def mutations(rng: np.random.Generator, count: int) -> list[bytes]:
    """Random byte strings and damaged copies of valid images in every format."""
    valid = [encode(fmt, int(rng.integers(8, 80)), int(rng.integers(8, 80)))
             for fmt in ("JPEG", "PNG", "GIF", "BMP") for _ in range(3)]
    inputs = []
    for _ in range(count):
        image = bytearray(valid[rng.integers(len(valid))])
        kind = rng.integers(5)
        if kind == 0:  # noise, sometimes behind a valid magic number
            prefix = [b"", b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"BM"]
            image = bytearray(prefix[rng.integers(5)] + rng.bytes(int(rng.integers(0, 400))))
        elif kind == 1:  # flipped bits
            for position in rng.integers(0, len(image), size=rng.integers(1, 20)):
                image[position] ^= 1 << int(rng.integers(8))
        elif kind == 2:  # truncated
            image = image[:rng.integers(0, len(image))]
        elif kind == 3:  # a run of bytes overwritten, often in the header
            start = int(rng.integers(0, min(len(image), 40)))
            image[start:start + 8] = rng.bytes(8)
        inputs.append(bytes(image))  # kind 4: left valid
    return inputs


def test_fuzzed_inputs_each_get_a_prediction_or_an_error(exported_model):
    inputs = mutations(np.random.default_rng(2024), count=300)
    outcomes = []
    for start in range(0, len(inputs), 50):
        outputs = serve(exported_model, inputs[start:start + 50])
        assert_predicted_or_refused(outputs)
        outcomes += errors(outputs)
    assert len(outcomes) == len(inputs)
    served = outcomes.count("")
    # The mix holds both, and every refusal says which of the known reasons it is.
    assert 0 < served < len(inputs)
    known = (serving.ERROR_EMPTY, serving.ERROR_FORMAT, serving.ERROR_HEADER,
             serving.ERROR_DECODE, "header claims ")
    assert all(error.startswith(known) for error in outcomes if error)


def write_eval_split(split_dir: Path, images: list[bytes], labels: list[str]) -> None:
    """ExampleGen's eval split of these images, with these label names."""
    split_dir.mkdir()
    with tf.io.TFRecordWriter(str(split_dir / "data_tfrecord-00000-of-00001.gz"),
                              options="GZIP") as writer:
        for i, (image, label) in enumerate(zip(images, labels)):
            writer.write(tf.train.Example(features=tf.train.Features(feature={
                features.IMAGE_KEY: bytes_feature(image),
                features.LABEL_KEY: tf.train.Feature(int64_list=tf.train.Int64List(
                    value=[MODEL_CONFIG.class_names.index(label)])),
                features.LABEL_NAME_KEY: bytes_feature(label.encode()),
                features.FILE_NAME_KEY: bytes_feature(f"{label}/{i}.jpg".encode()),
            })).SerializeToString())


def test_a_model_that_answers_nan_says_so_in_error_and_predicts_nothing(diverged_model_uri):
    """It used to answer `cats` (argmax of NaNs) with NaN probabilities and no error."""
    outputs = serve(load(diverged_model_uri), [encode_image(30, 20, seed=1), b""])
    assert errors(outputs) == [serving.ERROR_NOT_FINITE, serving.ERROR_EMPTY]
    assert_predicted_or_refused(outputs)


def test_the_evaluator_refuses_a_candidate_that_answers_nan_before_tfma_sees_it(
        diverged_model_uri, tmp_path):
    """TFMA failed deep in its metrics (`cannot convert float NaN to integer`)."""
    write_eval_split(tmp_path / "Split-eval", [encode_image(30, 20, seed=1)] * 2,
                     ["cats", "dogs"])
    with pytest.raises(ValueError, match=re.escape(
            f"gives 2 of 2 eval examples no prediction, e.g. cats/0.jpg: "
            f"{serving.ERROR_NOT_FINITE}. It is not evaluated, nor blessed. Its training "
            "diverged: lower learning_rate")):
        predict_split(str(diverged_model_uri), str(tmp_path / "Split-eval"))


def test_the_evaluator_keeps_each_eval_images_prediction_and_the_mistakes_pictures(
        exported_model, exported_model_uri, tmp_path):
    images = [encode_image(30 + i, 20 + 3 * i, seed=i) for i in range(5)]
    served = serve(exported_model, images)
    served_labels = [label.decode() for label in served[features.PREDICTED_LABEL_KEY]]
    # Every other image labelled with the class the model does not give it: two mistakes.
    other = {name: next(n for n in MODEL_CONFIG.class_names if n != name)
             for name in MODEL_CONFIG.class_names}
    true_labels = [other[label] if i % 2 else label for i, label in enumerate(served_labels)]
    split_dir = tmp_path / "Split-eval"
    write_eval_split(split_dir, images, true_labels)
    predictions = predict_split(str(exported_model_uri), str(split_dir))
    evaluation_dir = tmp_path / "evaluation"
    evaluation_dir.mkdir()
    (evaluation_dir / eval_predictions.FILE_NAME).write_text(
        eval_predictions.to_lines(predictions))
    read_back = eval_predictions.read_predictions(str(evaluation_dir))

    assert read_back == predictions
    assert [p.file_name for p in read_back] == [f"{label}/{i}.jpg"
                                                for i, label in enumerate(true_labels)]
    assert [p.predicted_label for p in read_back] == served_labels
    assert [p.true_label for p in read_back] == true_labels
    np.testing.assert_allclose([p.confidence for p in read_back],
                               served[features.PROBABILITIES_KEY].max(axis=1), atol=1e-6)
    assert [p.wrong for p in read_back] == [False, True, False, True, False]
    assert [p.image for p in read_back] == [None, images[1], None, images[3], None]


def tf_serving_inputs(request: dict, signature) -> dict[str, tf.Tensor]:
    """The signature's inputs TF Serving's REST API makes of a predict request in its row
    format ("instances"): with a single input, each instance is that input's value, else
    an object by input name; {"b64": ...} is base64 bytes, for a string input only."""
    _, input_specs = signature.structured_input_signature
    values = {name: [] for name in input_specs}
    for instance in request["instances"]:
        named = (instance if isinstance(instance, dict) and "b64" not in instance
                 else {next(iter(input_specs)): instance})
        assert len(input_specs) == 1 or named.keys() == input_specs.keys()
        for name, value in named.items():
            assert input_specs[name].dtype == tf.string and value.keys() == {"b64"}
            values[name].append(base64.b64decode(value["b64"], validate=True))
    return {name: tf.constant(items, tf.string) for name, items in values.items()}


def test_the_readme_s_rest_request_is_one_the_served_signature_takes(exported_model):
    """The curl command of README.md's "The exported model", with its file's base64."""
    command = re.search(r"^curl -d '(.*)' \\$", (REPO_ROOT / "README.md").read_text(),
                        re.MULTILINE).group(1)
    image = encode("JPEG")
    request = json.loads(re.sub(r"'\$\(base64 -w0 \S+\)'",
                                base64.b64encode(image).decode(), command))
    signature = exported_model.signatures[request.get("signature_name", "serving_default")]
    outputs = signature(**tf_serving_inputs(request, signature))
    assert errors({key: value.numpy() for key, value in outputs.items()}) == [""]
    assert outputs[features.PREDICTED_LABEL_KEY].numpy()[0].decode() in MODEL_CONFIG.class_names


def test_predict_classifies_each_file_with_the_newest_pushed_model(
        exported_model_uri, tmp_path, monkeypatch, capsys):
    serving_model_dir = PipelineConfig(output_dir=str(tmp_path / "outputs")).serving_model_dir
    os.makedirs(serving_model_dir)
    # Highest by number (12 > 5), and never a staging folder or another name.
    os.symlink(path_utils.serving_model_path(str(exported_model_uri)),
               os.path.join(serving_model_dir, "12"))
    for not_served in ("5", ".staging-99", "latest"):
        os.makedirs(os.path.join(serving_model_dir, not_served))
    monkeypatch.setenv("OUTPUT_DIR", str(tmp_path / "outputs"))
    photo, corrupt = tmp_path / "cat.jpg", tmp_path / "corrupt.png"
    photo.write_bytes(encode("JPEG"))
    corrupt.write_bytes(truncated(encode("PNG")))
    assert predict.main([str(photo), str(corrupt), str(tmp_path / "missing.jpg")]) == 1
    model_line, *lines = capsys.readouterr().out.splitlines()
    assert model_line == f"Model: {os.path.join(serving_model_dir, '12')}"
    assert re.fullmatch(rf"{photo}: ({'|'.join(MODEL_CONFIG.class_names)}) (0\.[5-9]\d\d|1\.000)",
                        lines[0])
    assert lines[1:] == [f"{corrupt}: error: {serving.ERROR_DECODE}",
                         f"{tmp_path / 'missing.jpg'}: error: No such file or directory"]


def test_predict_without_a_pushed_model_says_where_it_looked(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OUTPUT_DIR", str(tmp_path))
    assert predict.main(["cat.jpg"]) == 1
    assert capsys.readouterr().err == (
        f"No prediction: no pushed model in {tmp_path}/serving_model/cats-dogs-resnet: "
        "a blessed run of make pipeline pushes one\n")
