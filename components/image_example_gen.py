"""ImageExampleGen: a file-based TFX ExampleGen for class-per-folder image datasets.

Expected layout (the Kaggle cats-vs-dogs one)::

    <input_base>/training_set/<class>/<file>     -> split "train"
    <input_base>/test_set/<class>/<file>         -> split "eval"

Every file becomes one tf.Example with the raw encoded bytes (exactly as on disk), the
class index (into the sorted class names), the class folder name, the path relative to
the split folder, the decoded height and width, and two slicing features derived from
them (size bucket and orientation, see models/features.py). Decodability is decided with the
decoder Transform uses later, ``tf.io.decode_image(data, channels=3,
expand_animations=False)``; a file that fails is not written, and it is listed with its
reason in ``ingestion_report.json`` at the root of the output Examples artifact (next
to ``Split-train/`` and ``Split-eval/``)::

    {
      "input_base": "...",
      "class_names": ["cats", "dogs"],
      "splits": {
        "train": {
          "split_folder": "training_set",
          "seen": 10, "written": 8, "rejected": 2,
          "classes": {"cats": {"seen": 5, "written": 4, "rejected": 1}, ...},
          "rejected_files": [{"file": "cats/bad.jpg", "class": "cats",
                              "reason": "Unknown image file format. ..."}]
        },
        "eval": {...}
      }
    }

Per class ``seen == written + rejected``; per split ``written`` equals the number of
records written to that split. (If an ``output_config`` re-splits a single input split
by hash, the report stays keyed by the *input* split.)

Layout errors (missing split folder, no class folders, an empty class folder, class
folders differing between splits or from ``class_names``, a file lying directly in a
split folder) fail the executor with a ValueError naming the offending path, before
any Beam work.
"""
import collections
import json
import os
import posixpath
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Union

import apache_beam as beam
import tensorflow as tf
from absl import logging
from google.protobuf import json_format, struct_pb2
from tfx import types
from tfx.components.example_gen import utils as example_gen_utils
from tfx.components.example_gen import write_split
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.components.util import examples_utils
from tfx.dsl.components.base import executor_spec
from tfx.orchestration import data_types
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

from components.image_examples import OUTCOMES_TAG, ImageToExampleDoFn
from components.image_files import ignore_reason, is_ignored
from pipeline.config import GLOB_CHARACTERS

REPORT_FILE_NAME = "ingestion_report.json"
TRAIN_SPLIT_FOLDER = "training_set"
EVAL_SPLIT_FOLDER = "test_set"
# New data arrives as numbered drops, each in the layout above: span-1/, span-2/, ...
SPAN_FOLDER_PATTERN = "span-{SPAN}"
CLASS_NAMES_CONFIG_KEY = "class_names"
MAX_IMAGE_PIXELS_CONFIG_KEY = "max_image_pixels"
MAX_REJECTED_FRACTION_CONFIG_KEY = "max_rejected_fraction"
MAX_FILE_BYTES_CONFIG_KEY = "max_file_bytes"
DEFAULT_MAX_IMAGE_PIXELS = 50_000_000  # larger than any photo; decoding it would take 150 MB
# Larger than any photo's file (a 50-megapixel JPEG is ~25 MB); each file is read whole.
DEFAULT_MAX_FILE_BYTES = 64 * 2 ** 20
DEFAULT_MAX_REJECTED_FRACTION = 0.05

# Split patterns must be "<split folder>/*/*": one level of class folders, then files.
_PATTERN_SUFFIX = "/*/*"
# Private exec property the executor hands to its own PTransform (JSON string).
_RUNTIME_KEY = "_image_example_gen_runtime"
_TMP_DIR_NAME = ".ingestion_tmp"


# ----------------------------------------------------------------------------- config


def default_input_config(in_spans: bool = False) -> example_gen_pb2.Input:
    """Split "train" from training_set/<class>/<file>, "eval" from test_set/<class>/<file>;
    in spans, under the newest `span-<N>/` folder (TFX resolves {SPAN} to the largest N)."""
    prefix = SPAN_FOLDER_PATTERN + "/" if in_spans else ""
    return example_gen_pb2.Input(
        splits=[
            example_gen_pb2.Input.Split(
                name="train", pattern=prefix + TRAIN_SPLIT_FOLDER + _PATTERN_SUFFIX),
            example_gen_pb2.Input.Split(
                name="eval", pattern=prefix + EVAL_SPLIT_FOLDER + _PATTERN_SUFFIX),
        ]
    )


def make_custom_config(
    class_names: Sequence[str] = (),
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    max_rejected_fraction: float = DEFAULT_MAX_REJECTED_FRACTION,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
) -> example_gen_pb2.CustomConfig:
    """Packs the settings (a JSON dict, as a Struct) into ExampleGen's CustomConfig."""
    struct = struct_pb2.Struct()
    struct.update({
        CLASS_NAMES_CONFIG_KEY: list(class_names),
        MAX_IMAGE_PIXELS_CONFIG_KEY: max_image_pixels,
        MAX_REJECTED_FRACTION_CONFIG_KEY: max_rejected_fraction,
        MAX_FILE_BYTES_CONFIG_KEY: max_file_bytes,
    })
    config = example_gen_pb2.CustomConfig()
    config.custom_config.Pack(struct)
    return config


def custom_config_to_dict(value: Any) -> Dict[str, Any]:
    """Reads the custom_config exec property (JSON string, CustomConfig or dict) back to a dict."""
    if value is None or value == "":
        return {}
    if isinstance(value, example_gen_pb2.CustomConfig):
        config = value
    elif isinstance(value, str):
        config = proto_utils.json_to_proto(value, example_gen_pb2.CustomConfig())
    elif isinstance(value, dict):
        config = proto_utils.dict_to_proto(value, example_gen_pb2.CustomConfig())
    else:
        raise TypeError(f"Unsupported custom_config value of type {type(value).__name__}")
    if not config.HasField("custom_config"):
        return {}
    struct = struct_pb2.Struct()
    if not config.custom_config.Unpack(struct):
        raise ValueError(
            "ImageExampleGen expects custom_config to hold a google.protobuf.Struct, got "
            f"{config.custom_config.type_url}"
        )
    return json_format.MessageToDict(struct)


def _check_class_names(class_names: Sequence[str]) -> List[str]:
    names = list(class_names)
    if any(not isinstance(n, str) or not n or "/" in n for n in names):
        raise ValueError(f"class_names must be non-empty folder names, got {names}")
    if len(set(names)) != len(names):
        raise ValueError(f"class_names has duplicates: {names}")
    if names != sorted(names):
        raise ValueError(
            f"class_names must be in sorted order (labels index the sorted names): got {names}, "
            f"expected {sorted(names)}"
        )
    return names


def _check_no_glob(input_base: str) -> None:
    """The data root is joined into file patterns: a wildcard in it would match other
    files, or none (Beam's glob finds nothing under `/data/cats[1]`)."""
    wildcards = sorted(set(GLOB_CHARACTERS) & set(input_base))
    if wildcards:
        raise ValueError(
            f"Data root {input_base} contains {' '.join(wildcards)}, which file pattern "
            "matching reads as wildcards: rename the folder, or link to it from a path "
            f"without any of {' '.join(GLOB_CHARACTERS)}.")


def split_folder_from_pattern(pattern: str) -> str:
    """"training_set/*/*" -> "training_set"."""
    if not pattern.endswith(_PATTERN_SUFFIX) or len(pattern) == len(_PATTERN_SUFFIX):
        raise ValueError(
            f"ImageExampleGen split patterns must look like '<split folder>/*/*', got {pattern!r}"
        )
    folder = pattern[: -len(_PATTERN_SUFFIX)]
    if any(ch in folder for ch in GLOB_CHARACTERS):
        raise ValueError(f"ImageExampleGen split folder must not contain a glob: {pattern!r}")
    return folder


# ----------------------------------------------------------------------------- layout


def _listdir(path: str) -> List[str]:
    # GCS lists sub-directories with a trailing slash.
    return sorted(name.rstrip("/") for name in tf.io.gfile.listdir(path))


def scan_layout(
    input_base: str,
    split_folders: Mapping[str, str],
    class_names: Sequence[str] = (),
) -> Dict[str, Dict[str, int]]:
    """Validates the folder layout; returns {split name: {class name: number of files}}.

    Cheap: lists folders, reads no file. Raises ValueError naming the offending path.
    Hidden and system files and files that are not regular files (see
    image_files.ignore_reason) are ignored. With `class_names`, other folders are ignored
    too; without, every folder is a class.
    """
    class_names = list(class_names)
    counts: Dict[str, Dict[str, int]] = {}
    classes_by_split: Dict[str, List[str]] = {}
    for split_name, folder in split_folders.items():
        split_dir = os.path.join(input_base, folder)
        if not tf.io.gfile.isdir(split_dir):
            raise ValueError(f"Split folder for split {split_name!r} not found: {split_dir}")
        found: List[str] = []
        for name in _listdir(split_dir):
            path = os.path.join(split_dir, name)
            if is_ignored(name):
                continue
            if not tf.io.gfile.isdir(path):
                raise ValueError(
                    f"File lying directly in split folder (expected only class folders): {path}"
                )
            found.append(name)
        if not found:
            raise ValueError(f"No class folders in split folder: {split_dir}")
        missing = sorted(set(class_names) - set(found))
        if missing:
            raise ValueError(
                f"Class folders missing in {split_dir}: {missing} (class_names expects "
                f"{class_names}, found {found})"
            )
        counts[split_name] = {}
        for name in class_names or found:
            class_dir = os.path.join(split_dir, name)
            n_files = sum(ignore_reason(os.path.join(class_dir, file.rstrip("/"))) is None
                          for file in tf.io.gfile.listdir(class_dir))
            if n_files == 0:
                raise ValueError(f"Empty class folder: {class_dir}")
            counts[split_name][name] = n_files
        classes_by_split[split_name] = found

    splits = [] if class_names else list(classes_by_split)
    first = splits[0] if splits else None
    for other in splits[1:]:
        if classes_by_split[other] != classes_by_split[first]:
            raise ValueError(
                "Class folders differ between splits: "
                f"{os.path.join(input_base, split_folders[first])} has {classes_by_split[first]}, "
                f"{os.path.join(input_base, split_folders[other])} has {classes_by_split[other]}"
            )
    return counts


# ----------------------------------------------------------------------------- Beam


@beam.ptransform_fn
@beam.typehints.with_input_types(beam.Pipeline)
@beam.typehints.with_output_types(bytes)
def _ImageToExample(  # pylint: disable=invalid-name
    pipeline: beam.Pipeline, exec_properties: Dict[str, Any], split_pattern: str
) -> beam.pvalue.PCollection:
    """Reads `<input_base>/<split folder>/<class>/<file>` into serialized tf.Examples.

    Per-file outcomes (written or rejected with a reason; no image bytes) go to JSON-lines
    files under the prefix Executor.Do() chose, for the ingestion report.
    """
    input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
    # Set by Executor.Do(), after it has checked the layout.
    runtime = json.loads(exec_properties[_RUNTIME_KEY])

    paths = sorted(tf.io.gfile.glob(os.path.join(input_base, split_pattern)))
    logging.info("ImageExampleGen: %d files match %s", len(paths), split_pattern)
    results = (
        pipeline
        | "ListFiles" >> beam.Create(paths)
        | "Reshuffle" >> beam.Reshuffle()
        | "DecodeToExample"
        >> beam.ParDo(ImageToExampleDoFn(runtime["class_names"], input_base,
                                         runtime["max_image_pixels"],
                                         runtime["max_file_bytes"])).with_outputs(
            OUTCOMES_TAG, main="examples")
    )
    _ = results[OUTCOMES_TAG] | "WriteOutcomes" >> beam.io.WriteToText(
        runtime["outcomes"][split_pattern], file_name_suffix=".jsonl"
    )
    return results.examples


# ----------------------------------------------------------------------------- executor


def _read_outcomes(prefix: str) -> Iterable[Dict[str, Any]]:
    for path in sorted(tf.io.gfile.glob(prefix + "*")):
        with tf.io.gfile.GFile(path, "r") as f:
            for line in f:
                if line.strip():
                    yield json.loads(line)


_OUTCOMES = ("written", "rejected", "ignored")


def build_split_report(
    split_folder: str,
    class_names: Sequence[str],
    outcomes: Iterable[Mapping[str, Any]],
) -> Dict[str, Any]:
    """Counts per split and per class (seen = written + rejected + ignored), and the files
    not written with their reasons."""
    totals = collections.Counter()
    classes = {name: collections.Counter() for name in class_names}
    not_written = {"rejected": [], "ignored": []}
    for outcome in outcomes:
        kind = outcome["outcome"]
        for counter in (totals, classes.get(outcome["class"], collections.Counter())):
            counter["seen"] += 1
            counter[kind] += 1
        if kind != "written":
            not_written[kind].append(
                {"file": outcome["file"], "class": outcome["class"], "reason": outcome["reason"]}
            )
    keys = ("seen", *_OUTCOMES)
    return {
        "split_folder": split_folder,
        **{key: totals[key] for key in keys},
        "classes": {name: {key: c[key] for key in keys} for name, c in classes.items()},
        "rejected_files": sorted(not_written["rejected"], key=lambda r: r["file"]),
        "ignored_files": sorted(not_written["ignored"], key=lambda r: r["file"]),
    }


def check_rejected_fraction(report: Mapping[str, Any], max_rejected_fraction: float) -> None:
    """Fails rather than train on a gutted dataset, naming the worst offenders."""
    for split_name, split in report["splits"].items():
        candidates = split["written"] + split["rejected"]
        fraction = split["rejected"] / candidates if candidates else 0.0
        if fraction <= max_rejected_fraction:
            continue
        worst_classes = sorted(split["classes"].items(), key=lambda item: -item[1]["rejected"])
        by_class = ", ".join(f"{name} {counts['rejected']}" for name, counts in worst_classes)
        first = "; ".join(f"{r['file']}: {r['reason']}" for r in split["rejected_files"][:5])
        raise ValueError(
            f"Split {split_name!r} rejected {split['rejected']} of {candidates} image files "
            f"({fraction:.1%}), above max_rejected_fraction={max_rejected_fraction}. "
            f"Rejected by class: {by_class}. First rejected: {first}. "
            "Every rejected file and its reason is in the ingestion report."
        )


class Executor(BaseExampleGenExecutor):
    """Image folders -> tf.Examples, plus ingestion_report.json in the output artifact."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        return _ImageToExample

    def _write_examples(
        self,
        input_config: example_gen_pb2.Input,
        output_dict: Dict[str, List[types.Artifact]],
        exec_properties: Dict[str, Any],
    ) -> None:
        """Writes each split as gzipped TFRecords, as the base executor's Do() does, minus
        two costs: its shuffle before writing, which sends every image through the
        DirectRunner's single runner process (the files are read in shuffled order, and
        the Trainer shuffles anyway), and its serializing step, which makes every Beam
        worker import TFX (seconds each; our DoFn yields serialized examples)."""
        output_config = proto_utils.json_to_proto(
            exec_properties[standard_component_specs.OUTPUT_CONFIG_KEY], example_gen_pb2.Output())
        examples = output_dict[standard_component_specs.EXAMPLES_KEY]
        artifact_utils.get_single_instance(examples).split_names = (
            artifact_utils.encode_split_names(
                example_gen_utils.generate_output_split_names(input_config, output_config)))
        with self._make_beam_pipeline() as pipeline:
            for split_name, split in self.GenerateExamplesByBeam(pipeline, exec_properties).items():
                split_prefix = os.path.join(artifact_utils.get_split_uri(examples, split_name),
                                            write_split.DEFAULT_TF_RECORD_FILE_NAME)
                _ = split | f"WriteSplit[{split_name}]" >> beam.io.WriteToTFRecord(
                    split_prefix, file_name_suffix=".gz")
        for artifact in examples:
            examples_utils.set_payload_format(artifact, example_gen_pb2.FORMAT_TF_EXAMPLE)
            examples_utils.set_file_format(
                artifact, write_split.to_file_format_str(example_gen_pb2.FORMAT_TFRECORDS_GZIP))

    def Do(
        self,
        input_dict: Dict[str, List[types.Artifact]],
        output_dict: Dict[str, List[types.Artifact]],
        exec_properties: Dict[str, Any],
    ) -> None:
        input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
        input_config = proto_utils.json_to_proto(
            exec_properties[standard_component_specs.INPUT_CONFIG_KEY], example_gen_pb2.Input()
        )
        settings = custom_config_to_dict(
            exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY))
        configured = _check_class_names(settings.get(CLASS_NAMES_CONFIG_KEY, []))
        split_folders = {s.name: split_folder_from_pattern(s.pattern) for s in input_config.splits}

        # Layout errors fail here, before any Beam work.
        _check_no_glob(input_base)
        expected_counts = scan_layout(input_base, split_folders, configured)
        class_names = configured or sorted(next(iter(expected_counts.values())))

        examples_uri = artifact_utils.get_single_uri(
            output_dict[standard_component_specs.EXAMPLES_KEY]
        )
        tmp_dir = os.path.join(examples_uri, _TMP_DIR_NAME)
        if tf.io.gfile.exists(tmp_dir):
            tf.io.gfile.rmtree(tmp_dir)
        outcome_prefixes = {
            s.name: posixpath.join(tmp_dir, f"split{i}", "outcomes")
            for i, s in enumerate(input_config.splits)
        }
        exec_properties = dict(exec_properties)
        exec_properties[_RUNTIME_KEY] = json.dumps(
            {
                "class_names": class_names,
                "max_image_pixels": int(
                    settings.get(MAX_IMAGE_PIXELS_CONFIG_KEY, DEFAULT_MAX_IMAGE_PIXELS)),
                "max_file_bytes": int(
                    settings.get(MAX_FILE_BYTES_CONFIG_KEY, DEFAULT_MAX_FILE_BYTES)),
                "outcomes": {s.pattern: outcome_prefixes[s.name] for s in input_config.splits},
            }
        )

        # The outcome files are scratch: removed whether ingestion succeeds or fails.
        try:
            self._write_examples(input_config, output_dict, exec_properties)

            report = {"input_base": input_base, "class_names": class_names, "splits": {}}
            for split in input_config.splits:
                split_report = build_split_report(split_folders[split.name], class_names,
                                                  _read_outcomes(outcome_prefixes[split.name]))
                seen = {name: c["seen"] - c["ignored"]
                        for name, c in split_report["classes"].items()}
                if seen != expected_counts[split.name]:
                    raise RuntimeError(
                        f"Files under {os.path.join(input_base, split_folders[split.name])} "
                        f"changed during ingestion: listed {expected_counts[split.name]}, "
                        f"processed {seen}")
                report["splits"][split.name] = split_report
                logging.info(
                    "ImageExampleGen split %r (%s): seen %d, written %d, rejected %d, "
                    "ignored %d; %s",
                    split.name,
                    split_folders[split.name],
                    split_report["seen"],
                    split_report["written"],
                    split_report["rejected"],
                    split_report["ignored"],
                    ", ".join(
                        f"{name} {c['written']}/{c['seen']}"
                        for name, c in split_report["classes"].items()
                    ),
                )
            with tf.io.gfile.GFile(os.path.join(examples_uri, REPORT_FILE_NAME), "w") as f:
                f.write(json.dumps(report, indent=2, sort_keys=True))
        finally:
            if tf.io.gfile.exists(tmp_dir):
                tf.io.gfile.rmtree(tmp_dir)
        check_rejected_fraction(report, float(
            settings.get(MAX_REJECTED_FRACTION_CONFIG_KEY, DEFAULT_MAX_REJECTED_FRACTION)))


# ----------------------------------------------------------------------------- component


class ImageExampleGen(FileBasedExampleGen):
    """ExampleGen for `<input_base>/{training_set,test_set}/<class>/<file>` image folders."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)

    def __init__(
        self,
        input_base: str,
        class_names: Sequence[str] = (),
        max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
        max_rejected_fraction: float = DEFAULT_MAX_REJECTED_FRACTION,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        input_config: Optional[Union[example_gen_pb2.Input, data_types.RuntimeParameter]] = None,
        output_config: Optional[Union[example_gen_pb2.Output, data_types.RuntimeParameter]] = None,
    ):
        """
        Args:
          input_base: folder holding one folder per split (`training_set`, `test_set`).
          class_names: expected class folder names, sorted; labels are their indices;
            other folders are ignored. Empty: every folder is a class, in sorted order.
          max_image_pixels: files whose header claims more pixels are rejected undecoded.
          max_rejected_fraction: the run fails when a split rejects a larger fraction.
          max_file_bytes: larger files are rejected unread.
          input_config: splits as `<split folder>/*/*` patterns; default
            train=`training_set/*/*`, eval=`test_set/*/*`.
          output_config: optional; by default the output splits are the input splits.
        """
        input_config = input_config or default_input_config()
        if isinstance(input_config, example_gen_pb2.Input):
            for split in input_config.splits:
                split_folder_from_pattern(split.pattern)
        super().__init__(
            input_base=input_base,
            input_config=input_config,
            output_config=output_config,
            custom_config=make_custom_config(
                _check_class_names(class_names), max_image_pixels, max_rejected_fraction,
                max_file_bytes),
        )
