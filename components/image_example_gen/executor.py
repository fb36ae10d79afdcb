"""ImageExampleGen's executor: checks the layout, runs the Beam transform, writes the
examples as gzipped TFRecords and the ingestion report next to them, then fails the run
if a split rejected too many files, or shares too many images with another split.

Layout errors fail it with a ValueError naming the offending path, before any Beam work
(see layout.py).
"""
import os
import posixpath
from typing import Any, Dict, List

import apache_beam as beam
import tensorflow as tf
from tfx import types
from tfx.components.example_gen import utils as example_gen_utils
from tfx.components.example_gen import write_split
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.components.util import examples_utils
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

from components.image_example_gen.beam_transform import (
    INGESTION_RUN_KEY, ImageToExample, IngestionRun)
from components.image_example_gen.layout import (
    check_no_wildcards, scan_layout, split_folder_from_pattern)
from components.image_example_gen.report import (
    build_report, check_rejected_fraction, check_split_overlap, write_report)
from components.image_example_gen.settings import (
    CLASS_NAMES_CONFIG_KEY,
    MAX_FILE_BYTES_CONFIG_KEY,
    MAX_IMAGE_PIXELS_CONFIG_KEY,
    MAX_REJECTED_FRACTION_CONFIG_KEY,
    MAX_SPLIT_OVERLAP_FRACTION_CONFIG_KEY,
    custom_config_to_dict,
)

# Scratch folder in the output artifact for the outcome lines, removed before Do() returns.
_SCRATCH_DIR_NAME = ".ingestion_tmp"


class Executor(BaseExampleGenExecutor):
    """Image folders -> tf.Examples, plus ingestion_report.json in the output artifact."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        return ImageToExample

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
        # As the component checked and wrote them (component.py: ImageExampleGen).
        configured = settings[CLASS_NAMES_CONFIG_KEY]
        split_folders = {s.name: split_folder_from_pattern(s.pattern) for s in input_config.splits}

        # Layout errors fail here, before any Beam work.
        check_no_wildcards(input_base)
        listed_counts = scan_layout(input_base, split_folders, configured)
        class_names = configured or sorted(next(iter(listed_counts.values())))

        examples_uri = artifact_utils.get_single_uri(
            output_dict[standard_component_specs.EXAMPLES_KEY]
        )
        scratch_dir = os.path.join(examples_uri, _SCRATCH_DIR_NAME)
        if tf.io.gfile.exists(scratch_dir):
            tf.io.gfile.rmtree(scratch_dir)
        outcome_prefixes = {
            s.name: posixpath.join(scratch_dir, f"split{i}", "outcomes")
            for i, s in enumerate(input_config.splits)
        }
        exec_properties = dict(exec_properties)
        exec_properties[INGESTION_RUN_KEY] = IngestionRun(
            input_base=input_base,
            class_names=class_names,
            max_image_pixels=int(settings[MAX_IMAGE_PIXELS_CONFIG_KEY]),
            max_file_bytes=int(settings[MAX_FILE_BYTES_CONFIG_KEY]),
            outcome_prefixes={s.pattern: outcome_prefixes[s.name] for s in input_config.splits},
        ).to_json()

        # The outcome files are scratch: removed whether ingestion succeeds or fails.
        try:
            self._write_examples(input_config, output_dict, exec_properties)
            report = build_report(input_base, class_names, split_folders, outcome_prefixes,
                                  listed_counts)
            write_report(report, examples_uri)
        finally:
            if tf.io.gfile.exists(scratch_dir):
                tf.io.gfile.rmtree(scratch_dir)
        check_rejected_fraction(report, float(settings[MAX_REJECTED_FRACTION_CONFIG_KEY]))
        check_split_overlap(report, float(settings[MAX_SPLIT_OVERLAP_FRACTION_CONFIG_KEY]))
