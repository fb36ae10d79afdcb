"""kubeflow/entrypoint.py: what KFP's driver sends, made into what TFX's entrypoint reads.

The artifacts here are written by TFX's own code (`to_runtime_artifact`, as its entrypoint
writes the executor output file) and carried as kubeflow/contract_run.py carries them
through ML Metadata; tests/test_kfp_driver_records.py replays what KFP's own driver sent.
"""
import json

import pytest
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2
from tfx.orchestration.kubeflow.v2 import compiler_utils
from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_entrypoint_utils as tfx_utils
from tfx.types import standard_artifacts

from kubeflow.contract_run import LOGS_OUTPUT, LOGS_TYPE, MetadataStore
from kubeflow.entrypoint import (EntrypointError, recordable_executor_output,
                                 restored_metadata, typed_executor_input)



def _spec_type(artifact_class) -> dict:
    """An artifact type as TFX's V2 compiler writes it into the spec."""
    schema = compiler_utils.get_artifact_schema(artifact_class)  # bytes, for TFX's own types
    return {"instanceSchema": schema.decode() if isinstance(schema, bytes) else schema}


def _written_by_tfx(artifact) -> dict:
    """The runtime artifact TFX's entrypoint writes to the executor output file."""
    return json_format.MessageToDict(tfx_utils.to_runtime_artifact(artifact, {}))


def _examples(uri="/pipeline/ImageExampleGen/examples") -> standard_artifacts.Examples:
    examples = standard_artifacts.Examples()
    examples.uri = uri
    examples.split_names = '["train", "eval"]'
    examples.span = 3
    examples.version = 1
    examples.set_string_custom_property("tfx_version", "1.16.0")
    return examples


def _as_kfp_hands_it_on(runtime_artifact: dict, output_name: str = "examples") -> dict:
    store = MetadataStore()
    return store.input_artifact(store.record(output_name, runtime_artifact))


def _parse_with_tfx(artifacts: dict) -> dict:
    """TFX's own parsing of ExecutorInput artifacts (kubeflow_v2_run_executor)."""
    executor_input = json_format.ParseDict({"inputs": {"artifacts": artifacts}},
                                           pipeline_spec_pb2.ExecutorInput())
    return tfx_utils.parse_raw_artifact_dict(executor_input.inputs.artifacts)


def _statistics_gen_input(examples_artifact: dict, with_logs: bool = True) -> dict:
    outputs = {"statistics": {"artifacts": [{
        "uri": "/root/StatisticsGen/salt/statistics",
        "type": _spec_type(standard_artifacts.ExampleStatistics)}]}}
    if with_logs:
        outputs[LOGS_OUTPUT] = {"artifacts": [{"uri": "/root/StatisticsGen/salt/executor-logs",
                                               "type": LOGS_TYPE}]}
    return {"inputs": {"artifacts": {"examples": {"artifacts": [examples_artifact]}},
                       "parameterValues": {"exclude_splits": "[]"}},
            "outputs": {"artifacts": outputs, "outputFile": "/tmp/kfp_outputs/output_metadata.json"}}


@pytest.fixture(scope="module")
def specs():
    """StatisticsGen's input and output definitions, as the compiled spec holds them."""
    inputs = {"artifacts": {"examples": {"artifactType": _spec_type(standard_artifacts.Examples)}},
              "parameters": {"exclude_splits": {"parameterType": "STRING"}}}
    outputs = {"artifacts": {"statistics": {
        "artifactType": _spec_type(standard_artifacts.ExampleStatistics)}}}
    return inputs, outputs


def test_tfx_alone_fails_on_the_untyped_artifact_kfps_driver_sends():
    """tensorflow/tfx#7768: the reason every task after ImageExampleGen failed on KFP."""
    received = _as_kfp_hands_it_on(_written_by_tfx(_examples()))
    assert received["type"] == {"instanceSchema": ""}
    with pytest.raises(AttributeError, match="'NoneType' object has no attribute 'get'"):
        _parse_with_tfx({"examples": {"artifacts": [received]}})


def test_an_input_gets_its_type_from_the_spec_and_its_properties_back(specs):
    inputs_spec, outputs_spec = specs
    received = _as_kfp_hands_it_on(_written_by_tfx(_examples()))
    assert received["name"].isdigit()  # an MLMD id, not the producer's name
    typed = typed_executor_input(_statistics_gen_input(received), inputs_spec, outputs_spec)

    [examples] = _parse_with_tfx(typed["inputs"]["artifacts"])["examples"]
    assert isinstance(examples, standard_artifacts.Examples)
    assert examples.uri == "/pipeline/ImageExampleGen/examples"
    assert json.loads(examples.split_names) == ["train", "eval"]
    assert (examples.span, examples.version) == (3, 1)
    assert examples.get_string_custom_property("tfx_version") == "1.16.0"
    # What KFP's launcher added is not TFX's.
    assert not examples.has_custom_property("display_name")
    assert not examples.has_custom_property("store_session_info")


def test_a_typed_input_keeps_its_own_type(specs):
    """Vertex AI Pipelines, and any driver that sends the type, are passed through."""
    inputs_spec, outputs_spec = specs
    sent = {**_written_by_tfx(_examples()), "type": {"schemaTitle": "tfx.Examples"}}
    typed = typed_executor_input(_statistics_gen_input(sent), inputs_spec, outputs_spec)
    assert typed["inputs"]["artifacts"]["examples"]["artifacts"][0]["type"] == {
        "schemaTitle": "tfx.Examples"}


def test_lists_and_structs_come_out_of_mlmds_wrappers():
    metadata = {"split_names": "[]", "sizes": [1, 2], "counts": {"train": 4},
                "blessed": True, "display_name": "examples"}
    received = _as_kfp_hands_it_on({"uri": "/a", "metadata": metadata})["metadata"]
    assert received["sizes"] == {"list": [1, 2]} and received["counts"] == {"struct": {"train": 4}}
    assert received["blessed"] == 1.0
    assert restored_metadata(received) == {"split_names": "[]", "sizes": [1, 2],
                                           "counts": {"train": 4}, "blessed": 1.0}


def test_outputs_the_component_does_not_declare_are_kfps_not_tfxs(specs):
    inputs_spec, outputs_spec = specs
    received = _as_kfp_hands_it_on(_written_by_tfx(_examples()))
    typed = typed_executor_input(_statistics_gen_input(received, with_logs=True),
                                 inputs_spec, outputs_spec)
    assert set(typed["outputs"]["artifacts"]) == {"statistics"}
    # TFX's parsing of the outputs now succeeds (system.Artifact is no class it can import).
    executor_input = json_format.ParseDict(typed, pipeline_spec_pb2.ExecutorInput())
    [statistics] = tfx_utils.parse_raw_artifact_dict(
        executor_input.outputs.artifacts)["statistics"]
    assert isinstance(statistics, standard_artifacts.ExampleStatistics)
    assert typed["outputs"]["outputFile"] == "/tmp/kfp_outputs/output_metadata.json"


def test_an_executor_input_that_does_not_fit_the_component_is_refused(specs):
    inputs_spec, outputs_spec = specs
    received = _as_kfp_hands_it_on(_written_by_tfx(_examples()))
    wrong_input = _statistics_gen_input(received)
    wrong_input["inputs"]["artifacts"]["model"] = wrong_input["inputs"]["artifacts"]["examples"]
    with pytest.raises(EntrypointError, match="'model' is not an input of this component"):
        typed_executor_input(wrong_input, inputs_spec, outputs_spec)
    no_output = _statistics_gen_input(received)
    del no_output["outputs"]["artifacts"]["statistics"]
    with pytest.raises(EntrypointError, match=r"no URI for the outputs \['statistics'\]"):
        typed_executor_input(no_output, inputs_spec, outputs_spec)


def test_what_tfx_writes_is_recordable_by_kfps_launcher():
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = "s3://mlpipeline/v2/artifacts/Evaluator/salt/blessing"
    blessing.set_int_custom_property("blessed", 1)
    written = {"artifacts": {"blessing": {"artifacts": [
        {**_written_by_tfx(blessing), "metadata": {"blessed": 1.0, "baseline_model": None}}]}}}
    kfp_uri = "minio://mlpipeline/v2/artifacts/Evaluator/salt/blessing"
    recordable = recordable_executor_output(written, {"blessing": kfp_uri})
    [artifact] = recordable["artifacts"]["blessing"]["artifacts"]
    assert artifact["uri"] == kfp_uri
    assert artifact["metadata"] == {"blessed": 1.0}
    # The launcher's conversion accepts every value now, and refused the null before.
    assert _as_kfp_hands_it_on(artifact, "blessing")["metadata"]["blessed"] == 1.0
    from kubeflow.contract_run import TaskFailed
    with pytest.raises(TaskFailed, match="refuses null"):
        _as_kfp_hands_it_on(written["artifacts"]["blessing"]["artifacts"][0], "blessing")


def test_kfps_minio_uris_reach_tfx_as_the_s3_uris_tensorflow_opens(specs):
    inputs_spec, outputs_spec = specs
    received = _as_kfp_hands_it_on(_written_by_tfx(_examples("minio://mlpipeline/run/examples")))
    sent = _statistics_gen_input(received)
    sent["inputs"]["parameterValues"]["data_root"] = "minio://mlpipeline/datasets/new"
    typed = typed_executor_input(sent, inputs_spec, outputs_spec)
    assert typed["inputs"]["artifacts"]["examples"]["artifacts"][0]["uri"] == \
        "s3://mlpipeline/run/examples"
    assert typed["inputs"]["parameterValues"]["data_root"] == "s3://mlpipeline/datasets/new"
    assert typed["inputs"]["parameterValues"]["exclude_splits"] == "[]"
