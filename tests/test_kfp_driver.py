"""Kubeflow Pipelines' own driver against a real ML Metadata server, on this machine.

kubeflow/mlmd_server.py serves MLMD's C++ store over MLMD's gRPC service; kubeflow/kfp_driver/
runs KFP's driver code (driver.RootDAG, driver.Container, the metadata client) against it,
and records outputs as KFP's launcher does. A producer task's outputs, recorded with the
metadata TFX writes, come back to its consumer as KFP hands them over: what the consumer
gets is checked here. The Go tool is built from KFP_SRC, a kubeflow/pipelines source tree
(2.4.0, 2.5.0 or 2.17.0: kubeflow/kfp_driver/README.md).
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
import yaml
from ml_metadata import errors
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2, metadata_store_service_pb2

from kubeflow.mlmd_server import SERVICE, running_server

REPO = Path(__file__).resolve().parents[1]
PIPELINE_ROOT = "gs://bucket-this-machine-cannot-reach/root"
EXAMPLES_SCHEMA = ("title: tfx.Examples\ntype: object\nproperties:\n  span:\n    type: integer\n"
                   "  version:\n    type: integer\n  split_names:\n    type: string\n")
BLESSING_SCHEMA = "title: tfx.ModelBlessing\ntype: object\n"
SCHEMA_SCHEMA = "title: tfx.Schema\ntype: object\n"
STATISTICS_SCHEMA = "title: tfx.ExampleStatistics\ntype: object\n"


def _client(address: str) -> metadata_store.MetadataStore:
    host, port = address.split(":")
    return metadata_store.MetadataStore(
        metadata_store_pb2.MetadataStoreClientConfig(host=host, port=int(port)))


def test_mlmd_server_serves_ml_metadata_own_grpc_client(tmp_path):
    with running_server(str(tmp_path / "mlmd.sqlite")) as address:
        store = _client(address)
        type_id = store.put_artifact_type(metadata_store_pb2.ArtifactType(name="tfx.Examples"))
        [artifact_id] = store.put_artifacts([metadata_store_pb2.Artifact(
            type_id=type_id, uri="gs://b/examples",
            custom_properties={"span": metadata_store_pb2.Value(int_value=3)})])
        [stored] = store.get_artifacts_by_id([artifact_id])
        assert (stored.type, stored.uri, stored.custom_properties["span"].int_value) == (
            "tfx.Examples", "gs://b/examples", 3)
        # The C++ store's status is the gRPC status.
        with pytest.raises(errors.NotFoundError):
            store.get_artifact_type("tfx.Model")
        with pytest.raises(errors.AlreadyExistsError):
            store.put_artifact_type(metadata_store_pb2.ArtifactType(
                name="tfx.Examples", properties={"span": metadata_store_pb2.INT}))
        # RPCs the C++ module does not bind are refused, not dropped.
        request = metadata_store_service_pb2.GetLineageGraphRequest
        with grpc.insecure_channel(address) as channel:
            call = channel.unary_unary(
                f"/{SERVICE.full_name}/GetLineageGraph",
                request_serializer=request.SerializeToString,
                response_deserializer=metadata_store_service_pb2.GetLineageGraphResponse.FromString)
            with pytest.raises(grpc.RpcError) as refused:
                call(request())
            assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
    # The store outlives the server: it is the SQLite file.
    with running_server(str(tmp_path / "mlmd.sqlite")) as address:
        assert [a.uri for a in _client(address).get_artifacts()] == ["gs://b/examples"]


def test_mlmd_server_command_prints_its_port_and_serves_until_killed(tmp_path):
    server = subprocess.Popen(
        [sys.executable, "-m", "kubeflow.mlmd_server", "--port", "0", "--db", str(tmp_path / "db")],
        cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        port = int(server.stdout.readline())
        store = _client(f"127.0.0.1:{port}")
        assert store.put_context_type(metadata_store_pb2.ContextType(name="system.Pipeline")) > 0
    finally:
        server.terminate()
    assert server.wait(timeout=30) == 0


# --- KFP's driver (kubeflow/kfp_driver/) ------------------------------------------------

def _tfx_like_spec() -> dict:
    """A spec as TFX's KubeflowV2DagRunner writes one (instance schemas, {{$}} in args):
    an importer, a producer of Examples and a ModelBlessing, and their consumer."""
    def container(*args):
        return {"container": {
            "image": "cats-dogs-resnet:test", "command": ["python", "-m", "kubeflow.entrypoint"],
            "args": ["--json_serialized_invocation_args", "{{$}}", *args]}}

    def artifacts(**schemas):
        return {name: {"artifactType": {"instanceSchema": schema}}
                for name, schema in schemas.items()}

    def output_of(task, key):
        return {"taskOutputArtifact": {"producerTask": task, "outputArtifactKey": key}}

    def task(name, **fields):
        return {"taskInfo": {"name": name}, "componentRef": {"name": name}, **fields}

    return {
        "pipelineInfo": {"name": "kfp-driver-check"},
        "schemaVersion": "2.1.0",
        "sdkVersion": "tfx-1.16.0",
        "root": {
            "inputDefinitions": {"parameters": {
                "data_root": {"parameterType": "STRING", "defaultValue": "gs://bucket/data"}}},
            "dag": {"tasks": {
                "schema-importer": task("schema-importer", inputs={"parameters": {
                    "artifact_uri": {"runtimeValue": {"constant": "gs://bucket/schema"}}}}),
                "Producer": task("Producer", cachingOptions={"enableCache": True}, inputs={
                    "parameters": {
                        "input_base": {"componentInputParameter": "data_root"},
                        "output_config": {"runtimeValue": {"constant": '{"split_config": {}}'}}}}),
                "Consumer": task(
                    "Consumer", dependentTasks=["Producer", "schema-importer"], inputs={
                        "artifacts": {"examples": output_of("Producer", "examples"),
                                      "blessing": output_of("Producer", "blessing"),
                                      "schema": output_of("schema-importer", "result")}}),
            }},
        },
        "components": {
            "schema-importer": {
                "executorLabel": "schema-importer_executor",
                "inputDefinitions": {"parameters": {"artifact_uri": {"parameterType": "STRING"}}},
                "outputDefinitions": {"artifacts": artifacts(result=SCHEMA_SCHEMA)}},
            "Producer": {
                "executorLabel": "Producer_executor",
                "inputDefinitions": {"parameters": {
                    "input_base": {"parameterType": "STRING"},
                    "output_config": {"parameterType": "STRING"},
                    "seed": {"parameterType": "NUMBER_INTEGER", "isOptional": True,
                             "defaultValue": 7}}},
                "outputDefinitions": {"artifacts": artifacts(
                    examples=EXAMPLES_SCHEMA, blessing=BLESSING_SCHEMA)}},
            "Consumer": {
                "executorLabel": "Consumer_executor",
                "inputDefinitions": {"artifacts": artifacts(
                    examples=EXAMPLES_SCHEMA, blessing=BLESSING_SCHEMA, schema=SCHEMA_SCHEMA)},
                "outputDefinitions": {"artifacts": artifacts(statistics=STATISTICS_SCHEMA)}},
        },
        "deploymentSpec": {"executors": {
            "schema-importer_executor": {"importer": {
                "artifactUri": {"constant": "gs://bucket/schema"},
                "typeSchema": {"instanceSchema": SCHEMA_SCHEMA}}},
            "Producer_executor": container("--producer"),
            "Consumer_executor": container("--consumer"),
        }},
    }


def _tfx_executor_output(executor_input: dict) -> dict:
    """What TFX's V2 entrypoint writes for the producer (translate_executor_output): integer
    properties as numbers, split_names as a JSON string, blessed as 1; and, on the blessing,
    the JSON types TFX does not write (a bool, a list, an object)."""
    def reported(name, **metadata):
        uri = _single(executor_input, "outputs", name)["uri"]
        return {"artifacts": [{"uri": uri, "metadata": metadata}]}

    return {"artifacts": {
        "examples": reported("examples", split_names='["train", "eval"]', span=0.0, version=3.0,
                             tfx_version="1.16.0"),
        "blessing": reported("blessing", blessed=1.0, current_model="gs://bucket/model",
                             current_model_id="4", validated=True, slices=["cats", "dogs"],
                             thresholds={"accuracy": 0.5}),
    }}


@pytest.fixture(scope="module")
def kfp_driver():
    """(binary, release): the tool built from KFP_SRC by its make target."""
    if not os.environ.get("KFP_SRC"):
        pytest.skip("KFP_SRC is not set: it names the kubeflow/pipelines source tree to build "
                    "KFP's driver from (the Go module proxy refuses github.com/kubeflow/pipelines)")
    if not shutil.which("go"):
        pytest.skip("no Go toolchain on this machine to build KFP's driver")
    release = (Path(os.environ["KFP_SRC"]) / "VERSION").read_text().strip()
    result = subprocess.run(["make", "-C", str(REPO), "kfp-driver"], capture_output=True,
                            text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return REPO / "outputs" / "bin" / f"kfp-driver-{release}", release


def _driver(binary: Path, address: str, spec_file: Path):
    """Calls `binary COMMAND` on the spec: its JSON output, or the process with check=False."""
    def drive(command, *args, run_id="run-1", check=True):
        result = subprocess.run(
            [str(binary), command, "--mlmd", address, "--spec", str(spec_file),
             "--run-id", run_id, *args], capture_output=True, text=True, timeout=120)
        if not check:
            return result
        assert result.returncode == 0, result.stderr[-3000:]
        return json.loads(result.stdout)
    return drive


def _publish(drive, work: Path, task: str, driven: dict, executor_output: dict, *args,
             check=True):
    """Publishes a task's outputs: the driver's ExecutorInput and what the task reported."""
    executor_input_file = work / f"{task}.executor_input.json"
    executor_input_file.write_text(json.dumps(driven["executor_input"]))
    executor_output_file = work / f"{task}.executor_output.json"
    executor_output_file.write_text(json.dumps(executor_output))
    return drive("publish", "--task", task, "--execution-id", str(driven["execution_id"]),
                 "--executor-input", str(executor_input_file),
                 "--executor-output", str(executor_output_file), *args, check=check)


@pytest.fixture(scope="module")
def run(kfp_driver, tmp_path_factory):
    """A run of the TFX-like spec through KFP's driver, and a second one: {step: its output}."""
    binary, release = kfp_driver
    work = tmp_path_factory.mktemp("kfp_driver")
    spec_file = work / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(_tfx_like_spec()))
    # The cache entries the KFP API server would hold, shared by the two runs.
    cache = ("--cache-db", str(work / "cache.jsonl"))

    with running_server(str(work / "mlmd.sqlite")) as address:
        drive = _driver(binary, address, spec_file)

        def root(run_id):
            return drive("root-dag", "--pipeline-root", PIPELINE_ROOT,
                         "--param", "data_root=gs://bucket/new-images", run_id=run_id)

        steps = {"root": root("run-1")}
        dag = ("--dag-execution-id", str(steps["root"]["execution_id"]))
        steps["importer"] = drive("importer", "--task", "schema-importer", *dag)
        steps["producer"] = drive("container", "--task", "Producer", *dag, *cache)
        steps["published"] = _publish(drive, work, "Producer", steps["producer"],
                                      _tfx_executor_output(steps["producer"]["executor_input"]),
                                      *cache)
        steps["consumer"] = drive("container", "--task", "Consumer", *dag)
        # The consumer reports a null in its metadata, which MLMD cannot hold.
        statistics = _single(steps["consumer"]["executor_input"], "outputs", "statistics")
        steps["null_published"] = _publish(
            drive, work, "Consumer", steps["consumer"],
            {"artifacts": {"statistics": {"artifacts": [
                {"uri": statistics["uri"], "metadata": {"span": None}}]}}}, check=False)
        [steps["null_execution"]] = _client(address).get_executions_by_id(
            [steps["consumer"]["execution_id"]])

        # A second run with the same inputs: the producer's cache entry serves it.
        second = ("--dag-execution-id", str(root("run-2")["execution_id"]))
        steps["cached_producer"] = drive("container", "--task", "Producer", *second, *cache,
                                         run_id="run-2")
        drive("importer", "--task", "schema-importer", *second, run_id="run-2")
        steps["cached_consumer"] = drive("container", "--task", "Consumer", *second,
                                         run_id="run-2")
    return {"release": release, **steps}


def _single(executor_input: dict, side: str, name: str) -> dict:
    [artifact] = executor_input[side]["artifacts"][name]["artifacts"]
    return artifact


def _release(run) -> tuple[int, ...]:
    return tuple(int(part) for part in run["release"].split("."))


def test_the_producer_gets_its_parameters_and_output_uris_under_the_run_root(run):
    executor_input = run["producer"]["executor_input"]
    assert executor_input["inputs"]["parameterValues"] == {
        "input_base": "gs://bucket/new-images", "output_config": '{"split_config": {}}'}
    examples = _single(executor_input, "outputs", "examples")
    assert examples["type"] == {"instanceSchema": EXAMPLES_SCHEMA}
    assert examples["uri"].startswith(f"{PIPELINE_ROOT}/kfp-driver-check/run-1/Producer/")
    task_root = examples["uri"].rsplit("/", 1)[0]
    if _release(run) >= (2, 17):
        # In the task root's local path, and each output named by its key (provisionOutputs).
        assert executor_input["outputs"]["outputFile"] == (
            task_root.replace("gs://", "/gcs/", 1) + "/output_metadata.json")
        assert examples["name"] == "examples"
    else:
        assert executor_input["outputs"]["outputFile"] == "/tmp/kfp_outputs/output_metadata.json"
        assert "name" not in examples
    # The optional parameter's default reaches the command through the launcher only.
    assert run["producer"]["launcher_executor_input"]["inputs"]["parameterValues"]["seed"] == 7
    launcher = run["producer"]["pod_spec_patch"]["containers"][0]["command"]
    assert launcher[0] == "/kfp-launcher/launch"
    assert json.loads(launcher[launcher.index("--executor_input") + 1]) == executor_input


def test_consumer_inputs_come_back_from_mlmd_untyped_named_by_id_with_converted_metadata(run):
    executor_input = run["consumer"]["executor_input"]
    examples = _single(executor_input, "inputs", "examples")
    blessing = _single(executor_input, "inputs", "blessing")
    schema = _single(executor_input, "inputs", "schema")
    published = run["published"]["output_artifacts"]
    # Read back with an empty schema (GetOutputArtifactsByExecutionId: Schema: "").
    for artifact in (examples, blessing, schema):
        assert artifact["type"] == {"instanceSchema": ""}
    # The name is the MLMD artifact's id.
    assert examples["name"] == published["examples"]["mlmd_artifact"]["id"]
    assert blessing["name"] == published["blessing"]["mlmd_artifact"]["id"]
    assert schema["name"] == run["importer"]["output_artifacts"]["result"]["mlmd_artifact"]["id"]
    produced = _single(run["producer"]["executor_input"], "outputs", "examples")
    assert examples["uri"] == produced["uri"]
    # Numbers stay numbers (stored as MLMD doubles), the JSON string stays a string; the
    # launcher adds display_name and store_session_info.
    assert examples["metadata"] == {
        "split_names": '["train", "eval"]', "span": 0, "version": 3, "tfx_version": "1.16.0",
        "display_name": "examples",
        "store_session_info": '{"Provider":"gs","Params":{"fromEnv":"true"}}'}
    # MLMD has no bool, list or object values (StructValueToMLMDValue).
    assert blessing["metadata"] == {
        "blessed": 1, "current_model": "gs://bucket/model", "current_model_id": "4",
        "validated": 1, "slices": {"list": ["cats", "dogs"]},
        "thresholds": {"struct": {"accuracy": 0.5}}, "display_name": "blessing",
        "store_session_info": '{"Provider":"gs","Params":{"fromEnv":"true"}}'}
    assert published["examples"]["mlmd_artifact"]["customProperties"]["span"] == {"doubleValue": 0}
    assert published["examples"]["mlmd_artifact"]["type"] == "tfx.Examples"
    assert schema["uri"] == "gs://bucket/schema"


def test_a_null_in_reported_metadata_fails_the_task_and_its_execution_is_published_failed(run):
    refused = run["null_published"]
    assert refused.returncode == 1
    assert "unknown/unsupported value type *structpb.Value_NullValue" in refused.stderr
    assert run["null_execution"].last_known_state == metadata_store_pb2.Execution.FAILED


def test_executor_logs_output_from_kfp_2_5_on(run):
    for task in ("producer", "consumer"):
        outputs = run[task]["executor_input"]["outputs"]["artifacts"]
        if _release(run) >= (2, 5):
            logs = outputs["executor-logs"]["artifacts"][0]
            assert logs["type"] == {"schemaTitle": "system.Artifact"}
        else:
            assert "executor-logs" not in outputs
    # The launcher records it like any output.
    recorded = run["published"]["output_artifacts"]
    assert ("executor-logs" in recorded) == (_release(run) >= (2, 5))


def test_a_second_run_is_served_from_kfp_cache_with_the_first_run_artifacts(run):
    cached = run["cached_producer"]
    assert cached["cached"] is True
    assert cached["pod_spec_patch"] is None  # no launcher pod: the driver published the execution
    first = run["consumer"]["executor_input"]["inputs"]["artifacts"]
    second = run["cached_consumer"]["executor_input"]["inputs"]["artifacts"]
    assert second["examples"] == first["examples"]
    # The importer finds the artifact it imported before (FindMatchedArtifact).
    assert second["schema"] == first["schema"]


# --- Our compiled spec, every task through KFP's driver ------------------------------------

def _dependency_order(tasks: dict) -> list[str]:
    def upstream(task):
        return set(task.get("dependentTasks", [])) | {
            source["taskOutputArtifact"]["producerTask"]
            for source in task.get("inputs", {}).get("artifacts", {}).values()}
    order = []
    while len(order) < len(tasks):
        ready = sorted(name for name, task in tasks.items()
                       if name not in order and upstream(task) <= set(order))
        assert ready, f"cyclic or dangling dependencies among {sorted(set(tasks) - set(order))}"
        order += ready
    return order


def _reported_outputs(executor_input: dict) -> dict:
    """An executor output reporting each output at its URI, with TFX's metadata for Examples
    and ModelBlessing, and a value for each output parameter (the data's fingerprint)."""
    reported = {}
    for name, outputs in executor_input["outputs"]["artifacts"].items():
        [artifact] = outputs["artifacts"]
        title = yaml.safe_load(artifact["type"].get("instanceSchema") or "{}").get("title")
        metadata = {"tfx_version": "1.16.0"}
        if title == "tfx.Examples":
            metadata.update(split_names='["train", "eval"]', span=0.0, version=0.0)
        if title == "tfx.ModelBlessing":
            metadata.update(blessed=1.0)
        reported[name] = {"artifacts": [{"uri": artifact["uri"], "metadata": metadata}]}
    parameters = {name: f"{name} value" for name in executor_input["outputs"].get("parameters", {})}
    return {"artifacts": reported, "parameterValues": parameters}


@pytest.fixture(scope="module")
def pipeline_run(kfp_driver, tmp_path_factory):
    """Our Kubeflow spec (compiled as for a cluster) run through KFP's driver, every task in
    dependency order: {task: (its ExecutorInput, what publish recorded)}."""
    from kubeflow.runner import compile_pipeline
    from pipeline.config import PipelineConfig

    work = tmp_path_factory.mktemp("kfp_driver_pipeline")
    bucket = "gs://bucket-this-machine-cannot-reach"
    config = PipelineConfig(output_dir=f"{bucket}/runs", data_root=f"{bucket}/cats-dogs")
    spec_file = Path(compile_pipeline(config, str(work)))
    spec = yaml.safe_load(spec_file.read_text())
    tasks = {}
    with running_server(str(work / "mlmd.sqlite")) as address:
        drive = _driver(kfp_driver[0], address, spec_file)
        root = drive("root-dag", "--pipeline-root", f"{bucket}/runs/pipeline_root")
        for name in _dependency_order(spec["root"]["dag"]["tasks"]):
            driven = drive("container", "--task", name,
                           "--dag-execution-id", str(root["execution_id"]))
            published = _publish(drive, work, name, driven,
                                 _reported_outputs(driven["executor_input"]))
            tasks[name] = (driven["executor_input"], published["output_artifacts"])
    return {"spec": spec, "tasks": tasks}


def test_every_task_of_our_spec_gets_its_inputs_from_kfp_driver_as_recorded_upstream(pipeline_run):
    spec, tasks = pipeline_run["spec"], pipeline_run["tasks"]
    assert set(tasks) == set(spec["root"]["dag"]["tasks"])
    for name, task in spec["root"]["dag"]["tasks"].items():
        executor_input, _ = tasks[name]
        for key, source in task.get("inputs", {}).get("artifacts", {}).items():
            producer = source["taskOutputArtifact"]
            recorded = tasks[producer["producerTask"]][1][producer["outputArtifactKey"]]
            [artifact] = executor_input["inputs"]["artifacts"][key]["artifacts"]
            assert artifact == recorded["as_input"], (name, key)
            assert artifact["name"] == recorded["mlmd_artifact"]["id"]
            assert artifact["type"] == {"instanceSchema": ""}
    pusher_inputs = tasks["Pusher"][0]["inputs"]["artifacts"]
    assert pusher_inputs["model_blessing"]["artifacts"][0]["metadata"]["blessed"] == 1
    trainer_parameters = tasks["Trainer"][0]["inputs"]["parameterValues"]
    assert trainer_parameters["run_fn"] == "models.trainer.run_fn"
    assert trainer_parameters["train_args"] == "{}"
