"""DataFingerprint: the fingerprint of what a data root holds, as a String output that a
consumer takes as an execution parameter, and so as part of its KFP cache key.

TFX's Kubeflow V2 compiler turns such a parameter (`channel.future()[0].value`) into a
task output parameter of the producer (tfx/orchestration/kubeflow/v2/pipeline_builder.py,
dynamic_exec_properties), which TFX's container entrypoint writes from the String
artifact (kubeflow_v2_run_executor.py).
"""
import os
from typing import Any, Dict, List

from absl import logging
from tfx import types
from tfx.dsl.components.base import base_component, base_executor, executor_spec
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_artifacts, standard_component_specs
from tfx.types.component_spec import ChannelParameter, ExecutionParameter
from tfx.utils import proto_utils

from components.data_fingerprint.fingerprint import data_fingerprint

FINGERPRINT_KEY = "fingerprint"
# The execution parameter a consumer gets it as.
DATA_FINGERPRINT_KEY = "data_fingerprint"
INPUT_BASE_KEY = standard_component_specs.INPUT_BASE_KEY
INPUT_CONFIG_KEY = standard_component_specs.INPUT_CONFIG_KEY


class DataFingerprintExecutor(base_executor.BaseExecutor):
    def Do(self, input_dict: Dict[str, List[types.Artifact]],
           output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        input_config = proto_utils.json_to_proto(exec_properties[INPUT_CONFIG_KEY],
                                                 example_gen_pb2.Input())
        fingerprint = data_fingerprint(exec_properties[INPUT_BASE_KEY], input_config)
        logging.info("Data under %s: %s", exec_properties[INPUT_BASE_KEY], fingerprint)
        output = artifact_utils.get_single_instance(output_dict[FINGERPRINT_KEY])
        fileio.makedirs(os.path.dirname(output.uri))  # a local folder: nothing made it
        output.write(fingerprint)


class DataFingerprintSpec(types.ComponentSpec):
    PARAMETERS = {INPUT_BASE_KEY: ExecutionParameter(type=str),
                  INPUT_CONFIG_KEY: ExecutionParameter(type=example_gen_pb2.Input)}
    INPUTS = {}
    OUTPUTS = {FINGERPRINT_KEY: ChannelParameter(type=standard_artifacts.String)}


class DataFingerprint(base_component.BaseComponent):
    """The fingerprint of the files an ImageExampleGen with the same `input_base` and
    `input_config` would ingest (fingerprint.py)."""

    SPEC_CLASS = DataFingerprintSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(DataFingerprintExecutor)

    def __init__(self, input_base, input_config: example_gen_pb2.Input):
        super().__init__(spec=DataFingerprintSpec(
            input_base=input_base, input_config=input_config,
            fingerprint=types.Channel(type=standard_artifacts.String)))

    @property
    def as_parameter(self):
        """The fingerprint as a consumer's execution parameter (resolved at run time)."""
        return self.outputs[FINGERPRINT_KEY].future()[0].value


def give_fingerprint_to(example_gen: base_component.BaseComponent,
                        fingerprint: DataFingerprint) -> None:
    """Makes the fingerprint one of ExampleGen's execution parameters.

    TFX's FileBasedExampleGen builds its spec itself, with no room for another parameter,
    and its executor reads only the parameters it knows: the fingerprint is added to the
    built spec's parameters, where the pipeline finds the dependency and the compiler the
    parameter (both read `exec_properties`).
    """
    if DATA_FINGERPRINT_KEY in example_gen.exec_properties:
        raise ValueError(f"{example_gen.id} already has a {DATA_FINGERPRINT_KEY} parameter.")
    example_gen.exec_properties[DATA_FINGERPRINT_KEY] = fingerprint.as_parameter
