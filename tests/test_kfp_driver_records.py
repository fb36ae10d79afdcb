"""What KFP's own driver handed each task of our spec (tests/testdata/kfp_driver/, recorded
by tests/record_kfp_driver.py from KFP 2.4.0, 2.5.0 and 2.17.0), replayed against
kubeflow/entrypoint.py and against kubeflow/contract_run.py's imitation of the driver.

CI cannot build KFP's driver (the Go module proxy serves no kubeflow/pipelines): these
recordings are the evidence, each naming the KFP commit it came from.
"""
import json
import re
from pathlib import Path

import pytest
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2
from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_entrypoint_utils as tfx_utils
from tfx.types import standard_artifacts

from kubeflow.contract_run import LOGS_OUTPUT, LOGS_TYPE, MetadataStore
from kubeflow.entrypoint import typed_executor_input
from tests.record_kfp_driver import KFP_COMMITS, RECORDINGS

RECORDED = sorted(RECORDINGS.glob("*.json"))
# Added by KFP's launcher (RecordArtifact): its value depends on the store, not the rules.
SESSION_INFO = "store_session_info"


@pytest.fixture(scope="module", params=RECORDED, ids=[path.stem for path in RECORDED])
def recording(request) -> dict:
    return json.loads(request.param.read_text())


def test_there_is_a_recording_of_each_release_with_its_kfp_commit():
    releases = {path.stem for path in RECORDED}
    assert releases == set(KFP_COMMITS)
    for path in RECORDED:
        recording = json.loads(path.read_text())
        assert recording["kfp_commit"] == KFP_COMMITS[recording["kfp_release"]]
        assert {"ImageExampleGen", "StatisticsGen", "Trainer", "Evaluator",
                "Pusher"} <= set(recording["tasks"])


def _input_artifacts(task: dict):
    for key, artifact_list in task["executor_input"]["inputs"].get("artifacts", {}).items():
        for artifact in artifact_list["artifacts"]:
            yield key, artifact


def _parse(artifacts: dict) -> dict:
    executor_input = json_format.ParseDict({"inputs": {"artifacts": artifacts}},
                                           pipeline_spec_pb2.ExecutorInput())
    return tfx_utils.parse_raw_artifact_dict(executor_input.inputs.artifacts)


def test_kfps_driver_hands_on_every_input_untyped_and_named_by_its_mlmd_id(recording):
    inputs = [artifact for task in recording["tasks"].values()
              for _, artifact in _input_artifacts(task)]
    assert len(inputs) >= 10
    for artifact in inputs:
        assert artifact["type"] == {"instanceSchema": ""}
        assert artifact["name"].isdigit()
        assert "display_name" in artifact["metadata"]


def test_the_executor_logs_output_comes_with_kfp_2_5_and_later(recording):
    logs = {name: LOGS_OUTPUT in task["executor_input"]["outputs"]["artifacts"]
            for name, task in recording["tasks"].items()}
    assert set(logs.values()) == {recording["publish_logs"]}
    assert recording["publish_logs"] == (recording["kfp_release"] != "2.4.0")
    for task in recording["tasks"].values():
        if recording["publish_logs"]:
            [logs_artifact] = task["executor_input"]["outputs"]["artifacts"][LOGS_OUTPUT]["artifacts"]
            assert logs_artifact["type"] == LOGS_TYPE


def test_tfxs_own_entrypoint_fails_on_what_kfps_driver_sends(recording):
    """Before kubeflow/entrypoint.py: StatisticsGen failed on its untyped input, and from
    KFP 2.5 every task on the executor-logs output's type."""
    statistics_gen = recording["tasks"]["StatisticsGen"]["executor_input"]
    with pytest.raises(AttributeError, match="'NoneType' object has no attribute 'get'"):
        _parse(statistics_gen["inputs"]["artifacts"])
    if recording["publish_logs"]:
        outputs = json_format.ParseDict(recording["tasks"]["ImageExampleGen"]["executor_input"],
                                        pipeline_spec_pb2.ExecutorInput()).outputs.artifacts
        with pytest.raises(ImportError, match="system"):
            tfx_utils.parse_raw_artifact_dict(outputs)


def test_our_entrypoint_hands_tfx_every_recorded_task_typed(recording):
    for name, task in recording["tasks"].items():
        typed = typed_executor_input(task["executor_input"], task["inputs_spec"],
                                     task["outputs_spec"])
        executor_input = json_format.ParseDict(typed, pipeline_spec_pb2.ExecutorInput())
        inputs = tfx_utils.parse_raw_artifact_dict(executor_input.inputs.artifacts)
        outputs = tfx_utils.parse_raw_artifact_dict(executor_input.outputs.artifacts)
        assert set(inputs) == set(task["inputs_spec"].get("artifacts", {})), name
        assert set(outputs) == set(task["outputs_spec"].get("artifacts", {})), name
        for key, [artifact] in inputs.items():
            title = task["inputs_spec"]["artifacts"][key]["artifactType"]["instanceSchema"]
            assert title.startswith(f"title: tfx.{artifact.TYPE_NAME}\n"), (name, key)
            assert not artifact.has_custom_property("display_name")
            if isinstance(artifact, standard_artifacts.Examples):
                assert sorted(json.loads(artifact.split_names)) == ["eval", "train"]


def test_the_imitation_gives_consumers_what_kfps_driver_gives_them(recording):
    """Each output as the launcher merged and recorded it, read back as the driver does:
    kubeflow/contract_run.py's rules against KFP's own code."""
    received = {artifact["uri"]: artifact for task in recording["tasks"].values()
                for _, artifact in _input_artifacts(task)}
    produced = set()
    for name, task in recording["tasks"].items():
        written = task["executor_output"].get("artifacts", {})
        for key, [provisioned] in ((key, artifact_list["artifacts"]) for key, artifact_list
                                   in task["executor_input"]["outputs"]["artifacts"].items()):
            reported = written.get(key, {}).get("artifacts", [{}])[0]
            merged = {"uri": reported.get("uri") or provisioned["uri"],
                      "metadata": {**provisioned.get("metadata", {}),
                                   **reported.get("metadata", {})}}
            store = MetadataStore()
            imitated = store.input_artifact(store.record(key, merged))
            real = task["as_input"][key]
            assert imitated["uri"] == real["uri"], (name, key)
            assert imitated["type"] == real["type"] == {"instanceSchema": ""}, (name, key)
            assert _without_session_info(imitated["metadata"]) == \
                _without_session_info(real["metadata"]), (name, key)
            assert real["name"].isdigit()
            if real["uri"] in received:  # what a consumer's driver really sent
                assert received[real["uri"]] == real, (name, key)
            produced.add(real["uri"])
    # Every input a task received is an output some task of the run recorded.
    assert set(received) <= produced and len(received) >= 7


def _without_session_info(metadata: dict) -> dict:
    return {key: value for key, value in metadata.items() if key != SESSION_INFO}


def test_the_imitation_provisions_outputs_where_and_as_kfps_driver_does(recording):
    root = re.escape(recording["pipeline_root"].rstrip("/"))
    for name, task in recording["tasks"].items():
        outputs = task["executor_input"]["outputs"]["artifacts"]
        declared = set(task["outputs_spec"].get("artifacts", {}))
        assert set(outputs) == declared | ({LOGS_OUTPUT} if recording["publish_logs"] else set())
        for key, artifact_list in outputs.items():
            [artifact] = artifact_list["artifacts"]
            # driver.go provisionOutputs: <root>/<pipeline>/<run>/<task>/<salt>/<output>
            assert re.fullmatch(rf"{root}/kfp-record/[^/]+/{re.escape(name)}/[0-9a-f-]+/"
                                rf"{re.escape(key)}", artifact["uri"]), artifact["uri"]
            if key != LOGS_OUTPUT:
                assert artifact["type"] == task["outputs_spec"]["artifacts"][key]["artifactType"]
