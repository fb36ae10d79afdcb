"""Tests for components/image_example_gen/: layout, settings, executor and report checks
(fast), and one real TFX run."""
import glob
import io
import json
import os
import re
import shutil

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from tfx import v1 as tfx
from tfx.proto import example_gen_pb2
from tfx.types import standard_artifacts, standard_component_specs
from tfx.utils import io_utils, proto_utils

from components.image_example_gen import executor
from components.image_example_gen.component import ImageExampleGen
from components.image_example_gen.image_example import orientation, size_bucket
from components.image_example_gen.layout import default_input_config, scan_layout
from components.image_example_gen.report import (
    REPORT_FILE_NAME, check_rejected_fraction, check_split_overlap)
from components.image_example_gen.settings import custom_config_to_dict
from data.folders import EVAL_SPLIT_FOLDER, SPAN_COMPLETE_MARKER, TRAIN_SPLIT_FOLDER
from models.features import (
    FILE_NAME_KEY,
    HEIGHT_KEY,
    IMAGE_KEY,
    LABEL_KEY,
    LABEL_NAME_KEY,
    ORIENTATION_KEY,
    SIZE_BUCKET_KEY,
    WIDTH_KEY,
)

SPLIT_FOLDERS = {"train": TRAIN_SPLIT_FOLDER, "eval": EVAL_SPLIT_FOLDER}


def _image_bytes(width: int, height: int, fmt: str = "JPEG", seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, size=(height, width, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt)
    return buf.getvalue()


def _write(path, data: bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


# Known good files (relative to input_base) and their (width, height).
GOOD = {
    "training_set/cats/cat.1.jpg": (16, 10),
    "training_set/cats/cat.2.jpg": (12, 12),
    "training_set/cats/cat.3.jpg": (8, 14),  # a PNG named .jpg: decodes fine
    "training_set/dogs/dog.1.jpg": (20, 12),
    "training_set/dogs/dog.2.jpg": (9, 7),
    "training_set/dogs/dog.3.jpg": (11, 13),
    "test_set/cats/cat.100.jpg": (10, 10),
    "test_set/cats/cat.101.jpg": (6, 9),
    "test_set/dogs/dog.100.jpg": (13, 5),
    "test_set/dogs/dog.101.jpg": (7, 7),
}
CORRUPT = "training_set/cats/cat.666.jpg"  # random bytes
EMPTY = "training_set/dogs/dog.0.jpg"  # zero bytes
CORRUPT_EVAL = "test_set/dogs/dog.999.jpg"  # random bytes
# A name that is not UTF-8 (byte 0xE9, as Latin-1 writes "é"; as Python lists it, a
# surrogate): an image, rejected for its name.
NOT_UTF8 = "training_set/dogs/dog.\udce9.jpg"
# A hidden file in a class folder, and a folder that is not a configured class.
IGNORED = ["training_set/cats/.DS_Store", "training_set/birds/bird.1.jpg",
           "training_set/birds/bird.\udce9.jpg"]


def make_dataset(root) -> str:
    root = str(root)
    for i, (rel, (w, h)) in enumerate(sorted(GOOD.items())):
        fmt = "PNG" if rel.endswith("cat.3.jpg") else "JPEG"
        _write(os.path.join(root, rel), _image_bytes(w, h, fmt, seed=i))
    rng = np.random.default_rng(42)
    _write(os.path.join(root, CORRUPT), rng.integers(0, 255, 300, dtype=np.uint8).tobytes())
    _write(os.path.join(root, CORRUPT_EVAL), rng.integers(0, 255, 200, dtype=np.uint8).tobytes())
    _write(os.path.join(root, EMPTY), b"")
    _write(os.path.join(root, NOT_UTF8), _image_bytes(8, 8, seed=99))
    for rel in IGNORED:
        _write(os.path.join(root, rel), b"not an image")
    return root


def make_minimal(root, layout) -> str:
    """layout: relative file paths (a trailing '/' makes an empty folder)."""
    root = str(root)
    for rel in layout:
        if rel.endswith("/"):
            os.makedirs(os.path.join(root, rel), exist_ok=True)
        else:
            _write(os.path.join(root, rel), b"x")
    return root


VALID = ["training_set/cats/a.jpg", "training_set/dogs/b.jpg", "test_set/cats/c.jpg", "test_set/dogs/d.jpg"]


# ----------------------------------------------------------------------------- fast tests


def test_scan_layout_counts_files_per_class(tmp_path):
    root = make_dataset(tmp_path)
    # Hidden files and the unlisted "birds" folder are not counted.
    counts = scan_layout(root, SPLIT_FOLDERS, ["cats", "dogs"])
    assert counts == {"train": {"cats": 4, "dogs": 5}, "eval": {"cats": 2, "dogs": 3}}


@pytest.mark.parametrize(
    "layout, class_names, offending, extra",
    [
        pytest.param(VALID[:2], (), "test_set", "not found", id="missing-split-folder"),
        pytest.param(VALID[:2] + ["test_set/"], (), "test_set", "No class folders", id="no-class-folders"),
        pytest.param(VALID + ["test_set/birds/"], (), "test_set/birds", "Empty class folder", id="empty-class"),
        pytest.param(
            VALID + ["test_set/birds/e.jpg"], (), "test_set", "differ between splits", id="classes-differ"
        ),
        pytest.param(
            VALID, ("cats", "foxes"), "training_set", "missing in", id="configured-class-missing",
        ),
        pytest.param(
            [VALID[0], "training_set/dogs/.DS_Store", *VALID[2:]], (), "training_set/dogs",
            "Empty class folder",
            id="only-hidden-files",
        ),
        pytest.param(VALID + ["training_set/stray.jpg"], (), "training_set/stray.jpg", "directly", id="stray-file"),
    ],
)
def test_layout_errors_name_the_path(tmp_path, layout, class_names, offending, extra):
    root = make_minimal(tmp_path / "data", layout)
    with pytest.raises(ValueError) as info:
        scan_layout(root, SPLIT_FOLDERS, class_names)
    message = str(info.value)
    assert os.path.join(root, offending) in message
    assert extra in message


def test_files_that_are_not_regular_files_are_not_counted(tmp_path):
    root = make_minimal(tmp_path / "data", VALID + ["training_set/cats/album/"])
    os.mkfifo(os.path.join(root, "training_set/cats/cat.2.jpg"))
    assert scan_layout(root, SPLIT_FOLDERS, ["cats", "dogs"]) == {
        "train": {"cats": 1, "dogs": 1}, "eval": {"cats": 1, "dogs": 1}}


def test_hidden_files_and_unlisted_folders_are_not_classes(tmp_path):
    layout = VALID + ["training_set/.DS_Store", "training_set/birds/e.jpg", "test_set/Thumbs.db"]
    root = make_minimal(tmp_path / "data", layout)
    assert scan_layout(root, SPLIT_FOLDERS, ["cats", "dogs"]) == {
        "train": {"cats": 1, "dogs": 1}, "eval": {"cats": 1, "dogs": 1}}
    with pytest.raises(ValueError, match="differ between splits"):
        scan_layout(root, SPLIT_FOLDERS)  # without class_names, birds would be a class


def _exec_properties(root, class_names=()):
    # The component spec already holds its protos as JSON, as the orchestrator hands them over.
    return dict(ImageExampleGen(input_base=root, class_names=class_names).exec_properties)


def test_executor_fails_on_layout_before_beam(tmp_path):
    root = make_minimal(tmp_path / "data", VALID[:2])  # no test_set
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "out")
    with pytest.raises(ValueError, match="test_set"):
        executor.Executor().Do({}, {standard_component_specs.EXAMPLES_KEY: [examples]},
                               _exec_properties(root))
    assert not os.path.exists(tmp_path / "out")  # nothing written: no Beam work happened


@pytest.mark.parametrize("folder", ["cats[1]", "cats*"])
def test_a_data_root_with_a_wildcard_is_refused_before_beam(tmp_path, folder):
    root = make_dataset(tmp_path / folder)
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "out")
    with pytest.raises(ValueError, match=rf"Data root {re.escape(root)} contains .*wildcards"):
        executor.Executor().Do({}, {standard_component_specs.EXAMPLES_KEY: [examples]},
                      _exec_properties(root, ["cats", "dogs"]))
    assert not os.path.exists(tmp_path / "out")


def test_a_failed_ingestion_leaves_no_scratch_files(tmp_path, monkeypatch):
    root = make_dataset(tmp_path / "data")
    real_scan_layout = executor.scan_layout

    def scan_then_add_a_file(*args, **kwargs):  # a file arrives while ingestion runs
        counts = real_scan_layout(*args, **kwargs)
        _write(os.path.join(root, "training_set/cats/late.jpg"), _image_bytes(8, 8))
        return counts

    monkeypatch.setattr(executor, "scan_layout", scan_then_add_a_file)
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "out")
    with pytest.raises(RuntimeError, match="changed during ingestion"):
        executor.Executor().Do({}, {standard_component_specs.EXAMPLES_KEY: [examples]},
                      _exec_properties(root, ["cats", "dogs"]))
    assert not os.path.exists(tmp_path / "out" / ".ingestion_tmp")


@pytest.mark.parametrize("link, target", [
    ("test_set", "training_set"),  # the eval split is the training split
    ("test_set/cats", "../training_set/cats"),  # one class of it
    ("training_set/dogs", "cats"),  # one class labelled as the other too
])
def test_split_or_class_folders_that_are_one_folder_are_refused(tmp_path, link, target):
    root = make_minimal(tmp_path / "data", VALID)
    shutil.rmtree(os.path.join(root, link))
    os.symlink(target, os.path.join(root, link))
    with pytest.raises(ValueError, match=rf"{re.escape(os.path.join(root, link))} and .* are "
                                         "one folder"):
        scan_layout(root, SPLIT_FOLDERS, ["cats", "dogs"])


def test_an_image_in_two_splits_fails_the_run_and_is_listed_in_the_report(tmp_path):
    root = make_dataset(tmp_path / "data")
    # Byte for byte a training image, under another name: a leak no name or link shows.
    with open(os.path.join(root, "training_set/cats/cat.1.jpg"), "rb") as f:
        _write(os.path.join(root, "test_set/cats/cat.102.jpg"), f.read())
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "out")
    exec_properties = dict(ImageExampleGen(input_base=root, class_names=["cats", "dogs"],
                                           max_rejected_fraction=0.5).exec_properties)
    with pytest.raises(ValueError, match=r"eval 1 of its 5 \(20.0%\), above "
                                         r"max_split_overlap_fraction=0.0"):
        executor.Executor().Do({}, {standard_component_specs.EXAMPLES_KEY: [examples]},
                               exec_properties)
    with open(tmp_path / "out" / REPORT_FILE_NAME) as f:
        report = json.load(f)
    assert report["splits"]["eval"]["overlapping_files"] == [
        {"file": "cats/cat.102.jpg", "class": "cats",
         "same_as": [{"split": "train", "file": "cats/cat.1.jpg"}]}]
    assert report["splits"]["train"]["overlapping_files"] == [
        {"file": "cats/cat.1.jpg", "class": "cats",
         "same_as": [{"split": "eval", "file": "cats/cat.102.jpg"}]}]
    check_split_overlap(report, max_split_overlap_fraction=0.2)  # within a tolerance


def test_the_driver_takes_the_newest_complete_span_whatever_its_file_names(tmp_path):
    root = tmp_path / "data"
    for span in (1, 2, 3):  # span-3 is still being copied: no marker yet
        make_minimal(root / f"span-{span}", VALID)
    for span in (1, 2):
        (root / f"span-{span}" / SPAN_COMPLETE_MARKER).touch()
    _write(os.path.join(root, "span-2/training_set/cats/cat.\udce9.jpg"), b"x")
    splits = default_input_config(in_spans=True).splits
    processor = ImageExampleGen.DRIVER_CLASS(None).get_input_processor(
        splits=splits, input_base_uri=str(root))
    assert processor.resolve_span_and_version() == (2, None)
    # TFX's fingerprint of the files, as TFX computes it where its glob can.
    train, eval_ = processor.get_input_fingerprint(2, None).split("\n")
    assert train.startswith("split:train,num_files:3,")
    assert eval_ == io_utils.generate_fingerprint("eval", str(root / "span-2/test_set/*/*"))
    with pytest.raises(ValueError, match="No complete span folder"):
        ImageExampleGen.DRIVER_CLASS(None).get_input_processor(
            splits=splits, input_base_uri=str(root / "span-3")).resolve_span_and_version()


def test_component_config(tmp_path):
    component = ImageExampleGen(input_base=str(tmp_path), class_names=["cats", "dogs"])
    props = component.exec_properties
    input_config = proto_utils.json_to_proto(
        props[standard_component_specs.INPUT_CONFIG_KEY], example_gen_pb2.Input()
    )
    assert input_config == default_input_config()
    custom = props[standard_component_specs.CUSTOM_CONFIG_KEY]
    assert custom_config_to_dict(custom) == {
        "class_names": ["cats", "dogs"], "max_image_pixels": 50_000_000,
        "max_rejected_fraction": 0.05, "max_file_bytes": 64 * 2 ** 20,
        "max_split_overlap_fraction": 0.0}
    default = ImageExampleGen(input_base=str(tmp_path)).exec_properties
    assert custom_config_to_dict(default[standard_component_specs.CUSTOM_CONFIG_KEY])[
        "class_names"] == []
    with pytest.raises(ValueError, match="sorted"):
        ImageExampleGen(input_base=str(tmp_path), class_names=["dogs", "cats"])
    with pytest.raises(ValueError, match="<split folder>"):
        ImageExampleGen(
            input_base=str(tmp_path),
            input_config=example_gen_pb2.Input(
                splits=[example_gen_pb2.Input.Split(name="train", pattern="training_set/*")]
            ),
        )


# ----------------------------------------------------------------------------- real run


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    """Runs ImageExampleGen once with LocalDagRunner; returns (data root, examples uri)."""
    base = tmp_path_factory.mktemp("image_example_gen")
    root = make_dataset(base / "data")
    pipeline_root = str(base / "pipeline_root")
    pipeline = tfx.dsl.Pipeline(
        pipeline_name="image-example-gen-test",
        pipeline_root=pipeline_root,
        components=[ImageExampleGen(input_base=root, class_names=["cats", "dogs"],
                                    max_rejected_fraction=0.5)],
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            str(base / "metadata.sqlite")
        ),
        beam_pipeline_args=["--direct_num_workers=1", "--direct_running_mode=in_memory"],
    )
    tfx.orchestration.LocalDagRunner().run(pipeline)
    reports = glob.glob(os.path.join(pipeline_root, "**", REPORT_FILE_NAME), recursive=True)
    assert len(reports) == 1, reports
    return root, os.path.dirname(reports[0])


def _read_split(examples_uri, split):
    files = glob.glob(os.path.join(examples_uri, f"Split-{split}", "*.gz"))
    assert files
    return [
        tf.train.Example.FromString(r.numpy())
        for r in tf.data.TFRecordDataset(files, compression_type="GZIP")
    ]


def _feature(example, key):
    feature = example.features.feature[key]
    return feature.int64_list.value[0] if feature.HasField("int64_list") else feature.bytes_list.value[0]


def test_records_per_split_are_files_minus_rejected(ingested):
    root, uri = ingested
    train, eval_ = _read_split(uri, "train"), _read_split(uri, "eval")
    assert len(train) == (4 + 5) - 3
    assert len(eval_) == (2 + 3) - 1
    names = {s: sorted(_feature(e, FILE_NAME_KEY).decode() for e in ex) for s, ex in
             {"training_set": train, "test_set": eval_}.items()}
    for split_folder, got in names.items():
        assert got == sorted(
            rel.split("/", 1)[1] for rel in GOOD if rel.startswith(split_folder + "/")
        )
    assert not os.path.exists(os.path.join(uri, ".ingestion_tmp"))


def test_features_of_a_known_file(ingested):
    root, uri = ingested
    by_name = {_feature(e, FILE_NAME_KEY).decode(): e for e in _read_split(uri, "train")}
    dog = by_name["dogs/dog.1.jpg"]
    assert _feature(dog, LABEL_KEY) == 1
    assert _feature(dog, LABEL_NAME_KEY) == b"dogs"
    assert (_feature(dog, WIDTH_KEY), _feature(dog, HEIGHT_KEY)) == GOOD["training_set/dogs/dog.1.jpg"]
    with open(os.path.join(root, "training_set/dogs/dog.1.jpg"), "rb") as f:
        assert _feature(dog, IMAGE_KEY) == f.read()  # as on disk: it has no EXIF orientation
    png = by_name["cats/cat.3.jpg"]
    assert _feature(png, LABEL_KEY) == 0
    assert _feature(png, LABEL_NAME_KEY) == b"cats"
    assert (_feature(png, WIDTH_KEY), _feature(png, HEIGHT_KEY)) == GOOD["training_set/cats/cat.3.jpg"]
    assert set(dog.features.feature) == {
        IMAGE_KEY, LABEL_KEY, LABEL_NAME_KEY, FILE_NAME_KEY, HEIGHT_KEY, WIDTH_KEY,
        SIZE_BUCKET_KEY, ORIENTATION_KEY,
    }


def test_report_lists_rejects_and_reconciles(ingested):
    root, uri = ingested
    with open(os.path.join(uri, REPORT_FILE_NAME)) as f:
        report = json.load(f)
    assert report["class_names"] == ["cats", "dogs"]
    assert set(report["splits"]) == {"train", "eval"}

    train = report["splits"]["train"]
    assert train["split_folder"] == "training_set"
    assert train["classes"] == {
        "cats": {"seen": 5, "written": 3, "rejected": 1, "ignored": 1},
        "dogs": {"seen": 5, "written": 3, "rejected": 2, "ignored": 0},
    }
    # Names that are not UTF-8 by the repr of their bytes, wherever they are.
    assert {r["file"]: r["reason"] for r in train["ignored_files"]} == {
        "cats/.DS_Store": "hidden or system file", "birds/bird.1.jpg": "not in a class folder",
        "b'birds/bird.\\xe9.jpg'": "not in a class folder"}
    rejected = {r["file"]: r for r in train["rejected_files"]}
    assert set(rejected) == {"cats/cat.666.jpg", "dogs/dog.0.jpg", "b'dogs/dog.\\xe9.jpg'"}
    assert rejected["b'dogs/dog.\\xe9.jpg'"]["reason"] == "file name is not valid UTF-8"
    assert rejected["cats/cat.666.jpg"]["class"] == "cats"
    assert rejected["cats/cat.666.jpg"]["reason"] == "not a JPEG, PNG, GIF or BMP image"
    assert rejected["dogs/dog.0.jpg"]["class"] == "dogs"
    assert "empty" in rejected["dogs/dog.0.jpg"]["reason"]

    eval_ = report["splits"]["eval"]
    assert [r["file"] for r in eval_["rejected_files"]] == ["dogs/dog.999.jpg"]
    assert eval_["rejected_files"][0]["reason"]

    for split, split_report in report["splits"].items():
        for counts in [split_report, *split_report["classes"].values()]:
            assert counts["seen"] == counts["written"] + counts["rejected"] + counts["ignored"]
        for key in ("written", "rejected"):
            assert split_report[key] == sum(c[key] for c in split_report["classes"].values())
        assert split_report["rejected"] == len(split_report["rejected_files"])
        assert split_report["ignored"] == len(split_report["ignored_files"])
        assert split_report["written"] == len(_read_split(uri, split))
        assert (split_report["overlapping"], split_report["overlapping_files"]) == (0, [])


def test_too_many_rejections_fail_naming_the_worst_offenders():
    def split(rejected_cats, rejected_dogs):
        rejected = [{"file": f"cats/cat.{i}.jpg", "reason": "empty file (0 bytes)"}
                    for i in range(rejected_cats)]
        return {"written": 90, "rejected": rejected_cats + rejected_dogs, "rejected_files": rejected,
                "classes": {"cats": {"rejected": rejected_cats}, "dogs": {"rejected": rejected_dogs}}}

    check_rejected_fraction({"splits": {"train": split(2, 0)}}, max_rejected_fraction=0.05)
    with pytest.raises(ValueError) as info:
        check_rejected_fraction({"splits": {"train": split(8, 2)}}, max_rejected_fraction=0.05)
    message = str(info.value)
    assert "rejected 10 of 100 image files (10.0%)" in message
    assert "Rejected by class: cats 8, dogs 2" in message
    assert "cats/cat.0.jpg: empty file (0 bytes)" in message


@pytest.mark.parametrize("height, width, bucket, shape", [
    (120, 199, "small", "landscape"),
    (200, 150, "medium", "portrait"),
    (400, 390, "large", "square"),
])
def test_images_are_bucketed_by_longer_side_and_shape(height, width, bucket, shape):
    assert (size_bucket(height, width), orientation(height, width)) == (bucket, shape)
