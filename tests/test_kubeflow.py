"""Kubeflow: the compiled KFP v2 spec, the image definition, and submission to a KFP API.

No cluster runs here: the spec is compiled once per module and read back, and the
submission commands talk to a loopback server that answers the KFP v2beta1 REST calls
they make and records what it received.
"""
import json
import re
import subprocess
import sys
import textwrap
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from kubeflow import submit
from kubeflow.runner import compile_pipeline
from pipeline.config import SETUP_FILE, PipelineConfig
from pipeline.definition import create_pipeline

REPO = Path(__file__).resolve().parents[1]
IMAGE = "registry.example.com/ml/cats-dogs-resnet:1.2.3"
BEAM_ARGS = ("--runner=FlinkRunner", "--flink_master=flink-jobmanager:8081",
             "--environment_type=EXTERNAL", "--environment_config=localhost:50000")


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    return PipelineConfig(
        output_dir=str(tmp_path_factory.mktemp("kfp_root")), data_root="gs://bucket/cats-dogs",
        container_image=IMAGE, beam_runner_args=BEAM_ARGS, trainer_gpu_count=4,
        trainer_accelerator_type="nvidia.com/gpu", train_steps=900)


@pytest.fixture(scope="module")
def spec_file(config, tmp_path_factory):
    return compile_pipeline(config, str(tmp_path_factory.mktemp("spec")))


@pytest.fixture(scope="module")
def spec(spec_file):
    return yaml.safe_load(Path(spec_file).read_text())


def _executor(spec, task):
    label = spec["components"][task]["executorLabel"]
    return spec["deploymentSpec"]["executors"][label]


def test_spec_holds_every_component_with_its_upstream_tasks(spec):
    tasks = spec["root"]["dag"]["tasks"]
    upstream = {name: set(task.get("dependentTasks", [])) for name, task in tasks.items()}
    # TFX splits the latest-blessed-model resolver into two KFP resolver tasks.
    assert upstream == {
        "ImageExampleGen": set(),
        "StatisticsGen": {"ImageExampleGen"},
        "SchemaGen": {"StatisticsGen"},
        "ExampleValidator": {"StatisticsGen", "SchemaGen"},
        "Transform": {"ImageExampleGen", "SchemaGen"},
        "Trainer": {"Transform", "SchemaGen"},
        "latest_blessed_model_resolver-model-blessing-resolver": set(),
        "latest_blessed_model_resolver-model-resolver": set(),
        "Evaluator": {"ImageExampleGen", "Trainer", "latest_blessed_model_resolver-model-resolver"},
        "Pusher": {"Trainer", "Evaluator"},
    }
    assert spec["pipelineInfo"]["name"] == "cats-dogs-resnet"
    assert spec["schemaVersion"] == "2.1.0"


def test_every_container_runs_the_configured_image(spec):
    containers = [executor["container"] for executor in spec["deploymentSpec"]["executors"].values()
                  if "container" in executor]
    assert len(containers) == 8
    assert {container["image"] for container in containers} == {IMAGE}


def test_trainer_requests_the_configured_gpus_and_nothing_else_does(spec):
    accelerator = _executor(spec, "Trainer")["container"]["resources"]["accelerator"]
    assert accelerator["resourceType"] == accelerator["type"] == "nvidia.com/gpu"
    assert accelerator["resourceCount"] == "4"
    assert int(accelerator["count"]) == 4
    for task in ("ImageExampleGen", "Transform", "Evaluator", "Pusher"):
        assert "resources" not in _executor(spec, task)["container"]


@pytest.mark.parametrize("task", ["ImageExampleGen", "StatisticsGen", "Transform", "Evaluator"])
def test_beam_components_get_the_distributed_runner_args(spec, task):
    args = _executor(spec, task)["container"]["args"]
    assert args[-len(BEAM_ARGS):] == list(BEAM_ARGS)
    assert not any(arg.startswith("--direct_") for arg in args)


def test_data_root_and_train_args_are_run_parameters_with_the_config_as_default(spec):
    parameters = spec["root"]["inputDefinitions"]["parameters"]
    assert parameters == {
        "data_root": {"parameterType": "STRING", "defaultValue": "gs://bucket/cats-dogs"},
        "train_args": {"parameterType": "STRING", "defaultValue": '{"numSteps": 900}'},
    }
    tasks = spec["root"]["dag"]["tasks"]
    assert tasks["ImageExampleGen"]["inputs"]["parameters"]["input_base"] == {
        "componentInputParameter": "data_root"}
    assert tasks["Trainer"]["inputs"]["parameters"]["train_args"] == {
        "componentInputParameter": "train_args"}


def test_user_code_is_packaged_under_the_pipeline_root(spec, config):
    module_path = json.loads(json.dumps(spec["root"]["dag"]["tasks"]["Trainer"]["inputs"]
                                        ["parameters"]["module_path"]))
    wheel = module_path["runtimeValue"]["constant"]
    assert wheel.startswith(f"trainer@{config.pipeline_root}/_wheels/tfx_user_code_Trainer")
    assert Path(wheel.partition("@")[2]).is_file()


def test_local_pipeline_is_unchanged_by_the_kubeflow_defaults(tmp_path):
    """No GPU request, no run parameters, the DirectRunner: what LocalDagRunner always ran."""
    pipeline = create_pipeline(PipelineConfig(output_dir=str(tmp_path)))
    components = {component.id: component for component in pipeline.components}
    assert components["Trainer"].platform_config is None
    assert isinstance(components["ImageExampleGen"].exec_properties["input_base"], str)
    assert pipeline.beam_pipeline_args == [
        "--direct_running_mode=multi_processing", "--direct_num_workers=0",
        f"--setup_file={SETUP_FILE}"]
    assert Path(SETUP_FILE).is_file()


@pytest.mark.parametrize("settings, named, allowed", [
    ({"beam_runner_args": ("--project=p",)}, "beam_runner_args", "--runner="),
    ({"beam_runner_args": ("runner=FlinkRunner",)}, "beam_runner_args", "--flags"),
    ({"trainer_gpu_count": -1}, "trainer_gpu_count", "an integer >= 0"),
    ({"distribution_strategy": "tpu"}, "distribution_strategy",
     "one of ['mirrored', 'multi_worker_mirrored']"),
])
def test_a_wrong_kubeflow_setting_is_named(settings, named, allowed):
    with pytest.raises(ValueError, match=rf"{named}=.*{re.escape(allowed)}"):
        PipelineConfig(**settings)


def test_scale_settings_come_from_the_environment():
    config = PipelineConfig.from_env({
        "BEAM_RUNNER_ARGS": "--runner=DataflowRunner,--project=p,--region=europe-west4",
        "TRAINER_GPU_COUNT": "8", "OUTPUT_DIR": "gs://bucket/runs",
    })
    assert config.beam_pipeline_args == [
        "--runner=DataflowRunner", "--project=p", "--region=europe-west4"]
    assert config.trainer_gpu_count == 8
    assert config.pipeline_root == "gs://bucket/runs/pipeline_root/cats-dogs-resnet"


def test_multi_worker_strategy_reads_the_cluster_from_tf_config():
    # In a fresh process: a collective strategy configures TensorFlow for good.
    tf_config = {"cluster": {"worker": ["localhost:0"]}, "task": {"type": "worker", "index": 0}}
    config = PipelineConfig(distribution_strategy="multi_worker_mirrored")
    script = textwrap.dedent(f"""
        import tensorflow as tf
        from models import trainer
        strategy = trainer.distribution_strategy({config.model_config()!r})
        resolver = strategy.cluster_resolver
        print(isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy),
              resolver.task_type, resolver.task_id, strategy.num_replicas_in_sync)
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                            text=True, timeout=120, env={"TF_USE_LEGACY_KERAS": "1",
                                                         "TF_CONFIG": json.dumps(tf_config),
                                                         "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-4:] == ["True", "worker", "0", "1"]


def test_dockerfile_builds_on_the_tfx_image_and_installs_the_project_from_the_lock():
    lines = [line.strip() for line in (REPO / "kubeflow" / "Dockerfile").read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    assert lines[0] == "FROM tensorflow/tfx:1.16.0"
    text = "\n".join(lines)
    assert re.search(r"COPY .*requirements\.lock", text)
    assert re.search(r"pip install .*--no-deps --ignore-requires-python -r requirements\.lock",
                     text)
    for package in ("pipeline", "components", "models", "kubeflow"):
        assert re.search(rf"COPY .*\b{package}/", text), package
    # The project itself, after its sources are copied in.
    assert re.search(r"COPY setup\.py.*\n(COPY .*\n)*RUN pip install .*--no-deps .* \. ", text)
    assert "TF_USE_LEGACY_KERAS=1" in text


def test_default_image_tag_matches_the_makefile_build_target():
    makefile = (REPO / "Makefile").read_text()
    assert "kubeflow/Dockerfile" in makefile
    assert "$(CONTAINER_IMAGE)" in makefile


# --- Submission, against a loopback KFP API server ------------------------------------

class FakeKfpApi(BaseHTTPRequestHandler):
    """The KFP v2beta1 calls the kfp client makes for upload, run and schedule."""

    def log_message(self, *args):
        pass

    def _answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method):
        url = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        state = self.server.state
        state["requests"].append({
            "method": method, "path": url.path, "query": urllib.parse.parse_qs(url.query),
            "body": body, "content_type": self.headers.get("Content-Type", "")})
        if state["fail_with"] and not url.path.endswith("/healthz"):
            status = state["fail_with"]
            return self._answer(status, {"error": "fake failure", "code": 5,
                                         "message": f"fake failure {status}"})
        routes = {
            ("GET", "/apis/v2beta1/healthz"): {"multi_user": False},
            ("GET", "/apis/v2beta1/pipelines"):
                {"pipelines": state["pipelines"], "total_size": len(state["pipelines"])},
            ("POST", "/apis/v2beta1/pipelines/upload"):
                {"pipeline_id": "pipeline-1", "display_name": "cats-dogs-resnet"},
            ("POST", "/apis/v2beta1/pipelines/upload_version"):
                {"pipeline_id": "pipeline-1", "pipeline_version_id": "version-2"},
            ("GET", "/apis/v2beta1/experiments"): {},
            ("POST", "/apis/v2beta1/experiments"):
                {"experiment_id": "experiment-1", "display_name": "x"},
            ("POST", "/apis/v2beta1/runs"): {"run_id": "run-1"},
            ("POST", "/apis/v2beta1/recurringruns"): {"recurring_run_id": "recurring-1"},
        }
        if (method, url.path) not in routes:
            return self._answer(404, {"error": "no such route", "code": 5, "message": url.path})
        self._answer(200, routes[(method, url.path)])

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")


@pytest.fixture
def kfp_api():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeKfpApi)
    server.state = {"requests": [], "pipelines": [], "fail_with": None}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def submit_env(monkeypatch, tmp_path):
    monkeypatch.setenv("OUTPUT_DIR", "gs://bucket/runs")
    # The kfp client reads (and may write) its context under the home folder.
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KFP_ENDPOINT", raising=False)


def _endpoint(server):
    return f"http://127.0.0.1:{server.server_address[1]}"


def _posted(server, path):
    return [json.loads(request["body"]) for request in server.state["requests"]
            if request["method"] == "POST" and request["path"] == path]


def test_run_sends_the_spec_parameters_root_and_experiment(kfp_api, submit_env, spec_file):
    code = submit.main(["run", "--endpoint", _endpoint(kfp_api), "--spec", spec_file,
                        "--param", "data_root=gs://bucket/new-images",
                        "--param", 'train_args={"num_steps": 3000}'])
    assert code == 0
    [experiment] = _posted(kfp_api, "/apis/v2beta1/experiments")
    assert experiment["display_name"] == "cats-dogs-resnet"
    [run] = _posted(kfp_api, "/apis/v2beta1/runs")
    assert run["experiment_id"] == "experiment-1"
    assert run["display_name"].startswith("cats-dogs-resnet ")
    assert run["pipeline_spec"] == yaml.safe_load(Path(spec_file).read_text())
    assert run["runtime_config"] == {
        "parameters": {"data_root": "gs://bucket/new-images",
                       "train_args": '{"num_steps": 3000}'},
        "pipeline_root": "gs://bucket/runs/pipeline_root/cats-dogs-resnet",
    }


def test_schedule_sends_the_cron_and_runs_one_at_a_time(kfp_api, submit_env, spec_file):
    code = submit.main(["schedule", "--endpoint", _endpoint(kfp_api), "--spec", spec_file,
                        "--cron", "0 0 3 * * 1", "--experiment", "weekly-retraining"])
    assert code == 0
    [experiment] = _posted(kfp_api, "/apis/v2beta1/experiments")
    assert experiment["display_name"] == "weekly-retraining"
    [recurring] = _posted(kfp_api, "/apis/v2beta1/recurringruns")
    assert recurring["trigger"] == {"cron_schedule": {"cron": "0 0 3 * * 1"}}
    assert recurring["mode"] == "ENABLE"
    assert (recurring["max_concurrency"], recurring["no_catchup"]) == (1, True)
    assert recurring["experiment_id"] == "experiment-1"
    assert recurring["pipeline_spec"] == yaml.safe_load(Path(spec_file).read_text())
    assert recurring["runtime_config"]["pipeline_root"] == (
        "gs://bucket/runs/pipeline_root/cats-dogs-resnet")


def test_upload_creates_the_pipeline_then_adds_versions(kfp_api, submit_env, spec_file):
    spec_bytes = Path(spec_file).read_bytes()
    assert submit.main(["upload", "--endpoint", _endpoint(kfp_api), "--spec", spec_file]) == 0
    [upload] = [r for r in kfp_api.state["requests"] if r["path"].endswith("/pipelines/upload")]
    assert upload["query"]["name"] == ["cats-dogs-resnet"]
    assert upload["content_type"].startswith("multipart/form-data")
    assert spec_bytes in upload["body"]

    kfp_api.state["pipelines"] = [{"pipeline_id": "pipeline-1", "display_name": "cats-dogs-resnet"}]
    assert submit.main(["upload", "--endpoint", _endpoint(kfp_api), "--spec", spec_file]) == 0
    [version] = [r for r in kfp_api.state["requests"] if r["path"].endswith("/upload_version")]
    assert version["query"]["pipelineid"] == ["pipeline-1"]
    assert version["query"]["name"][0].startswith("cats-dogs-resnet ")
    assert spec_bytes in version["body"]


@pytest.mark.parametrize("status", [404, 500])
def test_a_server_error_is_reported_with_a_non_zero_exit(kfp_api, submit_env, spec_file,
                                                         status, capsys):
    kfp_api.state["fail_with"] = status
    assert submit.main(["run", "--endpoint", _endpoint(kfp_api), "--spec", spec_file]) == 1
    assert re.search(rf"KFP API at http://127\.0\.0\.1:\d+ answered {status} .*fake failure",
                     capsys.readouterr().err)


def test_a_refused_connection_is_reported_with_a_non_zero_exit(submit_env, spec_file, capsys):
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeKfpApi)
    endpoint = _endpoint(server)
    server.server_close()  # nothing listens on that port any more
    assert submit.main(["run", "--endpoint", endpoint, "--spec", spec_file]) == 1
    assert f"Cannot reach the KFP API at {endpoint}" in capsys.readouterr().err


def test_a_malformed_cron_or_parameter_stops_before_any_request(kfp_api, submit_env, spec_file):
    with pytest.raises(SystemExit, match="6 fields"):
        submit.main(["schedule", "--endpoint", _endpoint(kfp_api), "--spec", spec_file,
                     "--cron", "0 3 * * 1"])
    with pytest.raises(SystemExit, match="name=value"):
        submit.main(["run", "--endpoint", _endpoint(kfp_api), "--spec", spec_file,
                     "--param", "data_root"])
    assert kfp_api.state["requests"] == []
