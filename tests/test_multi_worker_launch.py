"""The Trainer on N workers, as launched on each KFP target: the compiled specs, the TFJob
manifest against the Kubeflow Training Operator's own CRD, and the TFJob's life (create,
follow, failure, clean-up) against a fake Kubernetes API on loopback.

The workers themselves, training for real under MultiWorkerMirroredStrategy:
test_multi_worker_e2e.py.
"""
import copy
import json
import shutil
import signal
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jsonschema
import pytest
import yaml
from kubernetes.config import kube_config
from tfx.extensions.google_cloud_ai_platform import runner as vertex_runner
from tfx.types import artifact_utils, standard_artifacts

from components import vertex_trainer
from components.tfjob_trainer import executor as tfjob_executor
from components.tfjob_trainer import tfjob
from kubeflow import image
from kubeflow.runner import compile_pipeline
from models.model_config import ModelConfig
from pipeline.config import LOCAL, PipelineConfig
from pipeline.source import REPO_ROOT

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
        # PipelineConfig's defaults: a week's run, an hour's wait for nodes, an hour kept.
        "active_deadline_s": 604800, "pending_deadline_s": 3600, "ttl_s": 3600,
        # Each worker gets the Trainer's requests; the launching task a small task's.
        "resources": {"requests": {"cpu": "4", "memory": "16Gi"},
                      "limits": {"memory": "16Gi", "nvidia.com/gpu": "2"}}}
    assert container["resources"]["resourceCpuRequest"] == "2"
    assert "accelerator" not in container["resources"]
    # What the workers get: the model's settings, for MultiWorkerMirroredStrategy.
    del custom_config["tfjob"]
    assert ModelConfig.from_custom_config(custom_config).distribution_strategy == (
        "multi_worker_mirrored")


def test_on_vertex_the_trainer_task_launches_a_custom_job_with_a_chief_and_workers(
        tmp_path, monkeypatch):
    config = cluster_config(kfp_target="vertex", vertex_project="ml-project",
                            vertex_region="europe-west4")
    container, custom_config = trainer_of(compile_pipeline(config, str(tmp_path)))
    assert container["args"][:2] == ["--executor_class_path",
                                     "components.vertex_trainer.Executor"]
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
    # TFX's launcher hands the workers the task's properties, its keys included: the
    # workers' executor takes them out, and run_fn reads the model's settings alone.
    launched = {}
    monkeypatch.setattr(vertex_runner, "start_cloud_training",
                        lambda *args: launched.update(executor=args[3], properties=args[2]))
    vertex_trainer.Executor().Do({}, {}, {"custom_config": json.dumps(custom_config)})
    assert launched["executor"] == "components.vertex_trainer.WorkerExecutor"
    worker_config = json.loads(
        vertex_trainer.worker_properties(launched["properties"])["custom_config"])
    assert ModelConfig.from_custom_config(worker_config) == config.model_config()


def test_several_workers_need_a_cluster_and_vertex_needs_its_project(tmp_path):
    with pytest.raises(ValueError, match=r"trainer_workers=2 for the local engine"):
        PipelineConfig(output_dir=str(tmp_path), trainer_workers=2).check_runs_on(LOCAL)
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
                      "limits": {"memory": "16Gi", "nvidia.com/gpu": "2"}},
        "active_deadline_s": 86400, "ttl_s": 3600, "service_account": "default-editor",
        "owner": {"apiVersion": "v1", "kind": "Pod", "name": "run-trainer-driver",
                  "uid": "0b6c1a2e-1f1e-4c1e-9d61-5b3f6f7f1a01"}, **settings})


def test_the_tfjob_manifest_satisfies_the_operators_crd_field_by_field(tfjob_crd_schema):
    manifest = a_manifest()
    jsonschema.validate(manifest, tfjob_crd_schema)
    assert undeclared_fields(manifest, tfjob_crd_schema) == []
    # The operator's own rules beyond the schema: a known replica type, and the container
    # it sets TF_CONFIG in named "tensorflow".
    [(replica_type, replicas)] = manifest["spec"]["tfReplicaSpecs"].items()
    assert replica_type == "Worker" and replicas["replicas"] == 3
    assert replicas["template"]["spec"]["containers"][0]["name"] == "tensorflow"
    # What makes the job behave like KFP's pods and end with its task, all declared.
    assert manifest["spec"]["runPolicy"]["activeDeadlineSeconds"] == 86400
    assert manifest["spec"]["runPolicy"]["ttlSecondsAfterFinished"] == 3600
    template = replicas["template"]
    assert template["spec"]["serviceAccountName"] == "default-editor"
    assert template["metadata"]["labels"]["sidecar.istio.io/inject"] == "false"
    assert template["metadata"]["annotations"] == {"sidecar.istio.io/inject": "false"}
    assert manifest["metadata"]["ownerReferences"][0]["kind"] == "Pod"
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
        # What the next requests to a job get instead of an answer: a status, or "reset"
        # (the connection closed unanswered).
        self.failures: list[int | str] = []
        self.on_get = None  # called at each GET of a job
        self.pods = {"run-trainer-driver": {
            "metadata": {"name": "run-trainer-driver", "namespace": "team-a",
                         "uid": "0b6c1a2e-1f1e-4c1e-9d61-5b3f6f7f1a01"},
            "spec": {"serviceAccountName": "default-editor", "containers": [
                {"name": "main", "image": "registry/cats-dogs:1"}]}}}
        self.unschedulable = "0/4 nodes are available: 4 Insufficient nvidia.com/gpu."

    def handle(self, method: str, path: str, body: dict | None):
        self.requests.append((method, path, body))
        if path.startswith("/api/v1/namespaces/team-a/pods"):
            return self._pods(path)
        if self.failures:
            return self.failures.pop(0), {"kind": "Status", "code": 503,
                                          "reason": "ServiceUnavailable"}
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
            if self.on_get:
                self.on_get(self.gets)
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

    def _pods(self, path: str):
        """The launching pod, or the job's worker pods, unschedulable."""
        name = path.rsplit("/", 1)[-1]
        if name != "pods":
            return (200, self.pods[name]) if name in self.pods else (404, {"code": 404})
        [job] = self.jobs
        return 200, {"kind": "PodList", "items": [{
            "metadata": {"name": f"{job}-worker-{index}"},
            "status": {"phase": "Pending", "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                 "message": self.unschedulable}]}} for index in range(3)]}


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
                if status == "reset":
                    self.close_connection = True
                    return
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


HOUR = 3600


def no_wait(_seconds):
    pass


class FakeClock:
    """time.monotonic for run_tfjob, advanced by its sleeps."""

    def __init__(self):
        self.now, self.sleeps = 0.0, []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def test_a_tfjob_is_created_followed_to_success_and_deleted(fake_kubernetes):
    fake = fake_kubernetes([("Created", "TFJobCreated", ""), ("Running", "TFJobRunning", ""),
                            ("Succeeded", "TFJobSucceeded", "TFJob team-a/x successfully completed.")])
    manifest = a_manifest()
    finished = tfjob.run_tfjob(tfjob.kubernetes_api(), manifest, HOUR, sleep=no_wait)
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
        tfjob.run_tfjob(tfjob.kubernetes_api(), a_manifest(), HOUR, sleep=no_wait)
    assert fake.requests[-1][0] == "DELETE" and fake.jobs == {}


def test_a_task_stopped_while_following_still_deletes_its_tfjob(fake_kubernetes):
    fake = fake_kubernetes([("Created", "TFJobCreated", ""), ("Running", "TFJobRunning", "")])

    def stopped(_seconds):
        raise SystemExit("Trainer task stopped")  # as the SIGTERM handler exits

    with pytest.raises(SystemExit):
        tfjob.run_tfjob(tfjob.kubernetes_api(), a_manifest(), HOUR, sleep=stopped)
    assert fake.requests[-1][0] == "DELETE" and fake.jobs == {}


def test_the_executor_runs_tfx_trainer_on_every_worker_with_the_task_artifacts(
        fake_kubernetes, monkeypatch, tmp_path):
    fake = fake_kubernetes([("Succeeded", "TFJobSucceeded", "")])
    monkeypatch.setattr(tfjob, "NAMESPACE_FILE", str(tmp_path / "no-such-file"))
    examples, model = standard_artifacts.Examples(), standard_artifacts.Model()
    examples.uri, model.uri = f"{BUCKET}/Transform/transformed_examples/7", f"{BUCKET}/Trainer/model/9"
    model_settings = PipelineConfig(trainer_workers=3).model_config().to_custom_config()
    monkeypatch.setenv(tfjob.POD_NAME_ENV, "run-trainer-driver")  # as KFP sets it
    settings = {"workers": 3, "image": "registry/cats-dogs:1", "pipeline_name": "cats-dogs",
                "resources": {"requests": {"cpu": "4", "memory": "16Gi"}},
                "active_deadline_s": 86400, "pending_deadline_s": 600, "ttl_s": 3600}
    exec_properties = {"run_fn": "models.trainer.run_fn", "train_args": "{}", "eval_args": "{}",
                       "custom_config": json.dumps({**model_settings, "tfjob": settings})}

    tfjob_executor.Executor().Do({"examples": [examples]}, {"model": [model]}, exec_properties)

    [created] = [body for method, _, body in fake.requests if method == "POST"]
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
    # As the launching pod's own: its service account, no Istio sidecar; owned by it.
    template = worker["template"]
    assert template["spec"]["serviceAccountName"] == "default-editor"
    assert template["metadata"]["annotations"] == {"sidecar.istio.io/inject": "false"}
    assert template["metadata"]["labels"]["sidecar.istio.io/inject"] == "false"
    assert created["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Pod", "name": "run-trainer-driver",
         "uid": "0b6c1a2e-1f1e-4c1e-9d61-5b3f6f7f1a01"}]
    assert created["spec"]["runPolicy"]["activeDeadlineSeconds"] == 86400
    assert created["spec"]["runPolicy"]["ttlSecondsAfterFinished"] == 3600


def test_transient_api_errors_are_retried_with_backoff_and_the_job_runs_on(fake_kubernetes):
    fake = fake_kubernetes([("Created", "TFJobCreated", ""), ("Running", "TFJobRunning", ""),
                            ("Running", "TFJobRunning", ""), ("Succeeded", "TFJobSucceeded", "")])
    fake.on_get = lambda gets: gets == 1 and fake.failures.extend([503, "reset", 500, 429])
    clock = FakeClock()
    finished = tfjob.run_tfjob(tfjob.kubernetes_api(), a_manifest(), HOUR, poll_s=10,
                               sleep=clock.sleep, clock=clock)
    assert tfjob.condition(finished)["type"] == "Succeeded"
    # One DELETE, at the end; the backoff doubles between the polls' 10 s.
    assert [method for method, _, _ in fake.requests].count("DELETE") == 1
    assert fake.requests[-1][0] == "DELETE"
    assert [s for s in clock.sleeps if s != 10][:3] == [1, 2, 4]


def test_an_api_down_for_good_fails_the_task_after_the_bound(fake_kubernetes):
    fake = fake_kubernetes([("Created", "TFJobCreated", ""), ("Running", "TFJobRunning", "")])
    fake.on_get = lambda gets: gets == 1 and fake.failures.extend([503] * 100)
    clock = FakeClock()
    with pytest.raises(tfjob.ApiException) as failure:
        tfjob.run_tfjob(tfjob.kubernetes_api(), a_manifest(), HOUR, sleep=clock.sleep,
                        clock=clock)
    assert failure.value.status == 503
    gets = [path for method, path, _ in fake.requests if method == "GET"]
    assert len(gets) == 2 + tfjob.API_TRIES  # the good ones, then the tries
    # The GET's backoff, then the DELETE's, tried as long.
    assert [s for s in clock.sleeps if s != 10] == [1, 2, 4, 8, 16] * 2


def test_a_client_error_is_not_retried(fake_kubernetes):
    fake = fake_kubernetes([("Created", "TFJobCreated", "")])
    fake.failures = [403]
    with pytest.raises(tfjob.ApiException, match="403"):
        tfjob.run_tfjob(tfjob.kubernetes_api(), a_manifest(), HOUR, sleep=no_wait)
    assert [method for method, _, _ in fake.requests] == ["POST", "DELETE"]


def test_a_job_pending_past_its_deadline_fails_with_the_schedulers_reason(fake_kubernetes):
    fake = fake_kubernetes([("Created", "TFJobCreated", "")])  # no nodes: it stays Created
    clock = FakeClock()
    with pytest.raises(RuntimeError, match=(
            r"TFJob team-a/trainer-0123456789ab still pending after 600 s: pod "
            r"trainer-0123456789ab-worker-0: Unschedulable: 0/4 nodes are available: 4 "
            r"Insufficient nvidia.com/gpu\.")):
        tfjob.run_tfjob(tfjob.kubernetes_api(), a_manifest(), 600, poll_s=10,
                        sleep=clock.sleep, clock=clock)
    assert 600 < clock.now <= 610
    assert fake.requests[-1][0] == "DELETE" and fake.jobs == {}


def test_a_job_that_ran_is_not_failed_by_the_pending_deadline(fake_kubernetes):
    fake = fake_kubernetes([("Created", "TFJobCreated", ""), ("Running", "TFJobRunning", ""),
                            ("Restarting", "TFJobRestarting", "")] + [
                            ("Restarting", "TFJobRestarting", "")] * 100 + [
                            ("Succeeded", "TFJobSucceeded", "")])
    clock = FakeClock()
    tfjob.run_tfjob(tfjob.kubernetes_api(), a_manifest(), 60, poll_s=10, sleep=clock.sleep,
                    clock=clock)
    assert clock.now > 60 and fake.requests[-1][0] == "DELETE"


def test_sigterm_to_the_launcher_deletes_its_tfjob(fake_kubernetes, monkeypatch, tmp_path):
    fake = fake_kubernetes([("Created", "TFJobCreated", ""), ("Running", "TFJobRunning", "")])
    monkeypatch.setattr(tfjob, "NAMESPACE_FILE", str(tmp_path / "no-such-file"))
    # KFP stopping the run: SIGTERM to the task's process, here while it polls.
    fake.on_get = lambda gets: gets == 0 and signal.pthread_kill(
        threading.main_thread().ident, signal.SIGTERM)
    model_settings = PipelineConfig(trainer_workers=3).model_config().to_custom_config()
    settings = {"workers": 3, "image": "registry/cats-dogs:1", "pipeline_name": "cats-dogs",
                "resources": {}, "active_deadline_s": 86400, "pending_deadline_s": 600,
                "ttl_s": 3600}
    exec_properties = {"run_fn": "models.trainer.run_fn", "train_args": "{}", "eval_args": "{}",
                       "custom_config": json.dumps({**model_settings, "tfjob": settings})}
    previous = signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(SystemExit, match="Trainer task stopped"):
            tfjob_executor.Executor().Do({}, {"model": [standard_artifacts.Model()]},
                                         exec_properties)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert [method for method, _, _ in fake.requests][-1] == "DELETE" and fake.jobs == {}
