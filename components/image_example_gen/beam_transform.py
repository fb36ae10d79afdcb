"""The Beam transform: the files of one split pattern -> serialized tf.Examples, and one
outcome line per file (written, rejected or ignored, with the reason) for the report.

Every Beam worker process imports this module, and what it imports, to run the DoFn:
nothing here imports TFX's component code, which would add seconds to each worker's start.
"""
import dataclasses
import json
import os
from typing import Any, Dict, Sequence

import apache_beam as beam
import tensorflow as tf
from absl import logging

from components.image_example_gen.image_example import image_example
from components.image_example_gen.image_file import RejectedFile, describe_error, read_image
from components.image_example_gen.layout import (
    class_and_file_name, display_name, ignore_reason, is_utf8, list_split_files,
    split_folder_from_pattern)
from components.image_example_gen.report import IGNORED, REJECTED, WRITTEN, outcome_line

# The DoFn's side output: the outcome lines.
OUTCOMES_TAG = "outcomes"
# The exec property through which the executor hands the transform its IngestionRun:
# TFX's base executor calls the transform with the exec properties alone.
INGESTION_RUN_KEY = "_image_example_gen_ingestion_run"


@dataclasses.dataclass(frozen=True)
class IngestionRun:
    """What the executor resolved before any Beam work, for the transform."""
    input_base: str
    class_names: Sequence[str]
    max_image_pixels: int
    max_file_bytes: int
    # Split pattern -> the prefix of the files its outcome lines go to.
    outcome_prefixes: Dict[str, str]

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "IngestionRun":
        return cls(**json.loads(text))


class ImageToExampleDoFn(beam.DoFn):
    """One file path -> a serialized tf.Example (main output) and an outcome line (side
    output). Serialized here, in the worker that built it, so that writing needs no
    other step. Paths travel as bytes (`os.fsencode`): a name that is not UTF-8 holds
    surrogates as a str, which Beam's str coder cannot encode."""

    def __init__(self, class_names: Sequence[str], data_root: str, max_image_pixels: int,
                 max_file_bytes: int):
        self._class_index = {name: i for i, name in enumerate(class_names)}
        self._data_root = data_root
        self._max_image_pixels = max_image_pixels
        self._max_file_bytes = max_file_bytes

    def process(self, encoded_path: bytes):
        path = os.fsdecode(encoded_path)
        class_name, file_name = class_and_file_name(path)
        content_sha256 = None
        if class_name not in self._class_index:
            outcome, reason = IGNORED, "not in a class folder"
        elif reason := ignore_reason(path):
            outcome = IGNORED
        elif not is_utf8(file_name):
            # The example and the report store the name as text.
            outcome, reason = REJECTED, "file name is not valid UTF-8"
        else:
            try:
                image = read_image(path, self._data_root, self._max_image_pixels,
                                   self._max_file_bytes)
            except (RejectedFile, OSError, tf.errors.OpError) as error:
                outcome, reason = REJECTED, describe_error(error)
            else:
                outcome, content_sha256 = WRITTEN, image.content_sha256
                yield image_example(image, self._class_index[class_name], class_name,
                                    file_name).SerializeToString()
        yield beam.pvalue.TaggedOutput(OUTCOMES_TAG, outcome_line(
            display_name(file_name), display_name(class_name), outcome, reason,
            content_sha256))


@beam.ptransform_fn
@beam.typehints.with_input_types(beam.Pipeline)
@beam.typehints.with_output_types(bytes)
def ImageToExample(  # pylint: disable=invalid-name
    pipeline: beam.Pipeline, exec_properties: Dict[str, Any], split_pattern: str
) -> beam.pvalue.PCollection:
    """Reads `<input_base>/<split folder>/<class>/<file>` into serialized tf.Examples; the
    outcome lines go to the split's prefix in the executor's IngestionRun."""
    run = IngestionRun.from_json(exec_properties[INGESTION_RUN_KEY])
    paths = list_split_files(run.input_base, split_folder_from_pattern(split_pattern))
    logging.info("ImageExampleGen: %d files match %s", len(paths), split_pattern)
    results = (
        pipeline
        | "ListFiles" >> beam.Create([os.fsencode(path) for path in paths])
        | "Reshuffle" >> beam.Reshuffle()
        | "DecodeToExample"
        >> beam.ParDo(ImageToExampleDoFn(run.class_names, run.input_base,
                                         run.max_image_pixels, run.max_file_bytes)
                      ).with_outputs(OUTCOMES_TAG, main="examples")
    )
    _ = results[OUTCOMES_TAG] | "WriteOutcomes" >> beam.io.WriteToText(
        run.outcome_prefixes[split_pattern], file_name_suffix=".jsonl"
    )
    return results.examples
