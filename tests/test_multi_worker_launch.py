"""The Trainer on N workers, as launched on each KFP target: the compiled specs, the TFJob
manifest against the Kubeflow Training Operator's own CRD, and the TFJob's life (create,
follow, failure, clean-up) against a fake Kubernetes API on loopback.

The workers themselves, training for real under MultiWorkerMirroredStrategy:
test_multi_worker_e2e.py.
"""
import copy
import json
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jsonschema
import pytest
import yaml
from kubernetes.config import kube_config
from tfx.types import artifact_utils, standard_artifacts

from components.tfjob_trainer import executor as tfjob_executor
from components.tfjob_trainer import tfjob
from kubeflow import image
from kubeflow.runner import compile_pipeline
from models.model_config import ModelConfig
from models.trainer import model_config
from pipeline.config import PipelineConfig
from pipeline.definition import create_pipeline

REPO = Path(__file__).resolve().parents[1]
BUCKET = "gs://bucket-this-machine-cannot-reach"
# The Training Operator release whose TFJob CRD the manifest must satisfy.
TRAINING_OPERATOR_MODULE = "github.com/kubeflow/training-operator@v1.8.1"
TFJOB_CRD = "manifests/base/crds/kubeflow.org_tfjobs.yaml"


def cluster_config(**settings) -> PipelineConfig:
    return PipelineConfig(**{"output_dir": f"{BUCKET}/runs", "data_root": f"{BUCKET}/cats-dogs",
                             "trainer_workers": 3, "trainer_gpu_count": 2, **settings})


def trainer_of(spec_file: str) -> tuple[dict, dict]:
    """(the Trainer task's container, its custom_config) in a compiled spec."""
    spec = yaml.safe_load(Path(spec_file).read_text())
    label = spec["components"]["Trainer"]["executorLabel"]
    container = spec["deploymentSpec"]["executors"][label]["container"]
    parameters = spec["root"]["dag"]["tasks"]["Trainer"]["inputs"]["parameters"]
    return container, json.loads(parameters["custom_config"]["runtimeValue"]["constant"])


def test_on_kubeflow_the_trainer_task_launches_a_tfjob_of_n_workers(tmp_path):
    container, custom_config = trainer_of(compile_pipeline(cluster_config(), str(tmp_path)))
    assert container["args"][:2] == ["--executor_class_path",
                                     "components.tfjob_trainer.executor.Executor"]
    assert custom_config["tfjob"] == {
        "workers": 3,
        # The workers have GPUs: the image with TensorFlow's CUDA libraries.
        "image": f"cats-dogs-resnet:{image.code_fingerprint()}-gpu",
        "pipeline_name": "cats-dogs-resnet",
        # Each worker gets the Trainer's requests; the launching task a small task's.
        "resources": {"requests": {"cpu": "4", "memory": "16Gi"},
                      "limits": {"memory": "16Gi", "nvidia.com/gpu": "2"}}}
    assert container["resources"]["resourceCpuRequest"] == "2"
    assert "accelerator" not in container["resources"]
    # What the workers get: the model's settings, for MultiWorkerMirroredStrategy.
    del custom_config["tfjob"]
    assert ModelConfig.from_custom_config(custom_config).distribution_strategy == (
        "multi_worker_mirrored")


def test_on_vertex_the_trainer_task_launches_a_custom_job_with_a_chief_and_workers(tmp_path):
    container, custom_config = trainer_of(compile_pipeline(
        cluster_config(kfp_target="vertex", vertex_project="ml-project",
                       vertex_region="europe-west4"), str(tmp_path)))
    assert container["args"][:2] == [
        "--executor_class_path", "tfx.extensions.google_cloud_ai_platform.trainer.executor."
        "GenericExecutor"]
    assert custom_config["ai_platform_enable_vertex"] is True
    assert custom_config["ai_platform_vertex_region"] == "europe-west4"
    training = custom_config["ai_platform_training_args"]
    assert training["project"] == "ml-project"
    machine = {"machine_type": "g2-standard-8", "accelerator_type": "NVIDIA_L4",
               "accelerator_count": 2}
    image_uri = {"image_uri": f"cats-dogs-resnet:{image.code_fingerprint()}-gpu"}
    assert training["job_spec"]["worker_pool_specs"] == [
        {"machine_spec": machine, "replica_count": 1, "container_spec": image_uri},
        {"machine_spec": machine, "replica_count": 2, "container_spec": image_uri}]
    # TFX's launcher passes its keys on to the workers: run_fn reads past them.
    assert model_config(custom_config).distribution_strategy == "multi_worker_mirrored"


def test_several_workers_need_a_cluster_and_vertex_needs_its_project(tmp_path):
    with pytest.raises(ValueError, match=r"trainer_workers=2 .*local engine"):
        create_pipeline(PipelineConfig(output_dir=str(tmp_path), trainer_workers=2))
    with pytest.raises(ValueError, match=r"vertex_project=''"):
        compile_pipeline(cluster_config(kfp_target="vertex"), str(tmp_path))
    assert PipelineConfig().distribution_strategy == "mirrored"


# --- The manifest against the Training Operator's own TFJob CRD --------------------------

@pytest.fixture(scope="module")
def tfjob_crd_schema():
    """The openAPIV3Schema of the operator's TFJob CRD, from its Go module."""
    if not shutil.which("go"):
        pytest.skip("no Go toolchain here to fetch the Training Operator's module")
    result = subprocess.run(["go", "mod", "download", "-json", TRAINING_OPERATOR_MODULE],
                            capture_output=True, text=True, timeout=300, cwd="/")
    if result.returncode != 0:
        pytest.skip(f"the Go module proxy does not serve {TRAINING_OPERATOR_MODULE}: "
                    f"{result.stdout.strip()[-300:]}")
    crd = yaml.safe_load(Path(json.loads(result.stdout)["Dir"], TFJOB_CRD).read_text())
    [version] = [v for v in crd["spec"]["versions"] if v["name"] == tfjob.VERSION]
    assert (crd["spec"]["group"], crd["spec"]["names"]["plural"]) == (tfjob.GROUP, tfjob.PLURAL)
    return version["schema"]["openAPIV3Schema"]


def undeclared_fields(value, schema: dict, path: str = "") -> list[str]:
    """The manifest's fields that the schema does not declare (the API server would drop
    them without a word: a CRD's schema prunes unknown fields)."""
    if isinstance(value, dict):
        properties, additional = schema.get("properties"), schema.get("additionalProperties")
        # An object the schema leaves open (metadata: the API server checks ObjectMeta).
        if schema.get("x-kubernetes-preserve-unknown-fields") or not (properties or additional):
            return []
        found = []
        for key, item in value.items():
            if properties and key in properties:
                found += undeclared_fields(item, properties[key], f"{path}.{key}")
            elif isinstance(additional, dict):
                found += undeclared_fields(item, additional, f"{path}.{key}")
            else:
                found.append(f"{path}.{key}")
        return found
    if isinstance(value, list):
        return [field for index, item in enumerate(value)
                for field in undeclared_fields(item, schema.get("items", {}), f"{path}[{index}]")]
    return []


def a_manifest(**settings) -> dict:
    return tfjob.tfjob_manifest(**{
        "name": "trainer-0123456789ab", "namespace": "team-a", "image": "registry/cats-dogs:1",
        "command": ["python", "-m", "tfx.scripts.run_executor", "--inputs", "{}"],
        "workers": 3, "labels": {"app.kubernetes.io/part-of": "cats-dogs-resnet"},
        "resources": {"requests": {"cpu": "4", "memory": "16Gi"},
                      "limits": {"memory": "16Gi", "nvidia.com/gpu": "2"}}, **settings})


def test_the_tfjob_manifest_satisfies_the_operators_crd_field_by_field(tfjob_crd_schema):
    manifest = a_manifest()
    jsonschema.validate(manifest, tfjob_crd_schema)
    assert undeclared_fields(manifest, tfjob_crd_schema) == []
    # The operator's own rules beyond the schema: a known replica type, and the container
    # it sets TF_CONFIG in named "tensorflow".
    [(replica_type, replicas)] = manifest["spec"]["tfReplicaSpecs"].items()
    assert replica_type == "Worker" and replicas["replicas"] == 3
    assert replicas["template"]["spec"]["containers"][0]["name"] == "tensorflow"
    # The check can fail: a misspelt field, a wrong type.
    misspelt = a_manifest()
    misspelt["spec"]["tfReplicaSpecs"]["Worker"]["replica"] = 3
    assert undeclared_fields(misspelt, tfjob_crd_schema) == [".spec.tfReplicaSpecs.Worker.replica"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(a_manifest(workers="three"), tfjob_crd_schema)


# --- A TFJob's life, against a fake Kubernetes API on loopback ----------------------------

class FakeKubernetes:
    """The TFJob endpoints of an API server, and an operator that moves each job through
    the given conditions, one per GET."""

    def __init__(self, conditions: list[tuple[str, str, str]]):
        self.conditions = conditions  # (type, reason, message)
        self.jobs: dict[str, dict] = {}
        self.requests: list[tuple[str, str, dict | None]] = []
        self.gets = 0

    def handle(self, method: str, path: str, body: dict | None):
        self.requests.append((method, path, body))
        prefix = f"/apis/{tfjob.GROUP}/{tfjob.VERSION}/namespaces/"
        if not path.startswith(prefix):
            return 404, {"kind": "Status", "code": 404}
        namespace, plural, *name = path[len(prefix):].split("/")
        if method == "POST" and plural == tfjob.PLURAL:
            self.jobs[body["metadata"]["name"]] = copy.deepcopy(body)
            return 201, body
        if not name or name[0] not in self.jobs:
            return 404, {"kind": "Status", "code": 404, "reason": "NotFound"}
        job = self.jobs[name[0]]
        if method == "GET":
            passed = self.conditions[:self.gets + 1]
            self.gets += 1
            job["status"] = {
                "conditions": [{"type": kind, "status": "True", "reason": reason,
                                "message": message} for kind, reason, message in passed],
                "replicaStatuses": {"Worker": {"active": 3}}}
            return 200, job
        if method == "DELETE":
            del self.jobs[name[0]]
            return 200, {"kind": "Status", "status": "Success"}
        return 405, {}


@pytest.fixture
def fake_kubernetes(tmp_path, monkeypatch):
    """Starts a FakeKubernetes (make_api(conditions)) and points kubeconfig at it."""
    servers = []

    def make_api(conditions):
        fake = FakeKubernetes(conditions)

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, method):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                status, answer = fake.handle(method, self.path.split("?")[0], body)
                payload = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self):
                self._answer("GET")

            def do_POST(self):
                self._answer("POST")

            def do_DELETE(self):
                self._answer("DELETE")

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {
                "server": f"http://127.0.0.1:{server.server_port}"}}],
            "users": [{"name": "pipeline-runner", "user": {"token": "t0ken"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "namespace": "team-a",
                                                       "user": "pipeline-runner"}}]}))
        monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(kubeconfig))
        monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
        return fake

    yield make_api
    for server in servers:
        server.shutdown()


def no_wait(_seconds):
    pass


def test_a_tfjob_is_created_followed_to_success_and_deleted(fake_kubernetes):
    fake = fake_kubernetes([("Created", "TFJobCreated", ""), ("Running", "TFJobRunning", ""),
                            ("Succeeded", "TFJobSucceeded", "TFJob team-a/x successfully completed.")])
    manifest = a_manifest()
    finished = tfjob.run_tfjob(tfjob.kubernetes_api(), manifest, sleep=no_wait)
    assert tfjob.condition(finished)["type"] == "Succeeded"
    methods = [(method, path.rsplit("/", 1)[-1]) for method, path, _ in fake.requests]
    assert methods == [("POST", "tfjobs")] + [("GET", "trainer-0123456789ab")] * 3 + [
        ("DELETE", "trainer-0123456789ab")]
    assert fake.requests[0][2] == manifest
    assert fake.requests[-1][2]["propagationPolicy"] == "Foreground"
    assert fake.jobs == {}


def test_a_failed_tfjob_fails_the_task_with_its_reason_and_is_deleted(fake_kubernetes):
    fake = fake_kubernetes([("Created", "TFJobCreated", ""), ("Running", "TFJobRunning", ""),
                            ("Restarting", "TFJobRestarting", "worker 1 restarted"),
                            ("Failed", "TFJobFailed", "TFJob team-a/x has failed because 1 "
                             "Worker replica(s) failed.")])
    with pytest.raises(RuntimeError, match=r"TFJob team-a/trainer-0123456789ab failed: "
                                           r"TFJobFailed: .*1 Worker replica\(s\) failed"):
        tfjob.run_tfjob(tfjob.kubernetes_api(), a_manifest(), sleep=no_wait)
    assert fake.requests[-1][0] == "DELETE" and fake.jobs == {}


def test_a_task_stopped_while_following_still_deletes_its_tfjob(fake_kubernetes):
    fake = fake_kubernetes([("Created", "TFJobCreated", ""), ("Running", "TFJobRunning", "")])

    def stopped(_seconds):
        raise SystemExit("Trainer task stopped")  # as the SIGTERM handler exits

    with pytest.raises(SystemExit):
        tfjob.run_tfjob(tfjob.kubernetes_api(), a_manifest(), sleep=stopped)
    assert fake.requests[-1][0] == "DELETE" and fake.jobs == {}


def test_the_executor_runs_tfx_trainer_on_every_worker_with_the_task_artifacts(
        fake_kubernetes, monkeypatch, tmp_path):
    fake = fake_kubernetes([("Succeeded", "TFJobSucceeded", "")])
    monkeypatch.setattr(tfjob, "NAMESPACE_FILE", str(tmp_path / "no-such-file"))
    examples, model = standard_artifacts.Examples(), standard_artifacts.Model()
    examples.uri, model.uri = f"{BUCKET}/Transform/transformed_examples/7", f"{BUCKET}/Trainer/model/9"
    model_settings = PipelineConfig(trainer_workers=3).model_config().to_custom_config()
    settings = {"workers": 3, "image": "registry/cats-dogs:1", "pipeline_name": "cats-dogs",
                "resources": {"requests": {"cpu": "4", "memory": "16Gi"}}}
    exec_properties = {"run_fn": "models.trainer.run_fn", "train_args": "{}", "eval_args": "{}",
                       "custom_config": json.dumps({**model_settings, "tfjob": settings})}

    tfjob_executor.Executor().Do({"examples": [examples]}, {"model": [model]}, exec_properties)

    created = fake.requests[0][2]
    assert created["metadata"]["namespace"] == "team-a"  # the kubeconfig context's
    worker = created["spec"]["tfReplicaSpecs"]["Worker"]
    assert worker["replicas"] == 3
    [container] = worker["template"]["spec"]["containers"]
    assert container["image"] == "registry/cats-dogs:1"
    command = container["command"]
    assert command[:6] == ["python", "-m", "tfx.scripts.run_executor", "--executor_class_path",
                           "tfx.components.trainer.executor.GenericExecutor", "--inputs"]
    inputs = artifact_utils.parse_artifact_dict(command[6])
    outputs = artifact_utils.parse_artifact_dict(command[command.index("--outputs") + 1])
    assert inputs["examples"][0].uri == examples.uri and outputs["model"][0].uri == model.uri
    worker_properties = json.loads(command[command.index("--exec-properties") + 1])
    # The workers' custom_config is the model's alone.
    assert json.loads(worker_properties["custom_config"]) == model_settings
    assert worker_properties["run_fn"] == "models.trainer.run_fn"
    assert fake.requests[-1][0] == "DELETE"
