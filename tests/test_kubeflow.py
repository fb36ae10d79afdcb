"""Kubeflow: the compiled KFP v2 specs (both targets), Kubeflow's own backend compiler on
them, and the image definition. Submission to a KFP API: test_kubeflow_submit.py; the
spec run under KFP's execution contract: test_kubeflow_contract_e2e.py.

No cluster runs here: each spec is compiled once per module and read back.
"""
import ast
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from kubeflow import image
from kubeflow.runner import EXECUTOR_KINDS, compile_pipeline, executor_kinds
from pipeline import source
from pipeline.config import IMAGE_SETUP_FILE, SETUP_FILE, PipelineConfig
from pipeline.definition import create_pipeline
from pipeline.source import REPO_ROOT
from tests.test_definition import LOCAL_DAG

BUCKET = "gs://bucket-this-machine-cannot-reach"
BEAM_TASKS = ("ImageExampleGen", "StatisticsGen", "Transform", "Evaluator")
FLINK_JOB_SERVER = "beam-flink-job-server.flink"
ARGO_COMPILE = REPO_ROOT / "outputs" / "bin" / "kfp-argo-compile"


def cluster_config(**settings) -> PipelineConfig:
    return PipelineConfig(**{"output_dir": f"{BUCKET}/runs", "data_root": f"{BUCKET}/cats-dogs",
                             "train_epochs": 50, **settings})


@pytest.fixture(scope="module")
def specs(tmp_path_factory):
    """{target: (spec file, spec)}, with 4 Trainer GPUs."""
    compiled = {}
    for target in ("kubeflow", "vertex"):
        spec_file = compile_pipeline(cluster_config(kfp_target=target, trainer_gpu_count=4),
                                     str(tmp_path_factory.mktemp(target)))
        compiled[target] = (spec_file, yaml.safe_load(Path(spec_file).read_text()))
    return compiled


@pytest.fixture(scope="module")
def spec(specs):
    return specs["kubeflow"][1]


def _executor(spec, task):
    label = spec["components"][task]["executorLabel"]
    return spec["deploymentSpec"]["executors"][label]


def _containers(spec):
    return {task: _executor(spec, task)["container"] for task in spec["root"]["dag"]["tasks"]
            if "container" in _executor(spec, task)}


def test_each_target_gets_only_executor_kinds_its_backend_runs(specs):
    assert executor_kinds(specs["kubeflow"][1]) == {"container"}
    # Vertex keeps TFX's latest-blessed-model resolver (two resolver tasks).
    assert executor_kinds(specs["vertex"][1]) == {"container", "resolver"}
    for target, (_, spec) in specs.items():
        assert executor_kinds(spec) <= EXECUTOR_KINDS[target]


def test_kubeflow_spec_wires_the_latest_pushed_model_as_the_baseline(spec):
    tasks = spec["root"]["dag"]["tasks"]
    upstream = {name: set(task.get("dependentTasks", [])) for name, task in tasks.items()}
    # The local DAG, with the pushed model for the resolver, after the data's fingerprint.
    renamed = {"latest_blessed_model_resolver": "latest-pushed-model"}
    expected = {renamed.get(name, name): {renamed.get(node, node) for node in nodes}
                for name, nodes in LOCAL_DAG.items()}
    expected["data-fingerprint"] = set()
    for name in ("ImageExampleGen", "latest-pushed-model"):
        expected[name] |= {"data-fingerprint"}
    assert upstream == expected
    assert tasks["Evaluator"]["inputs"]["artifacts"]["baseline_model"] == {
        "taskOutputArtifact": {"producerTask": "latest-pushed-model",
                               "outputArtifactKey": "model"}}
    assert tasks["latest-pushed-model"]["inputs"]["parameters"]["serving_model_dir"] == {
        "runtimeValue": {"constant": f"{BUCKET}/runs/serving_model/cats-dogs-resnet"}}
    assert spec["schemaVersion"] == "2.1.0"


def test_only_the_data_fingerprint_is_never_served_from_kfp_cache(specs):
    """KFP keys its cache by a task's inputs, parameters, image and command: the tasks
    that read data_root or the pushed models take the data's fingerprint as a parameter
    from the one task that reads the files on every run."""
    for _, spec in specs.values():
        tasks = spec["root"]["dag"]["tasks"]
        caching = {name: task.get("cachingOptions", {}).get("enableCache")
                   for name, task in tasks.items() if "container" in _executor(spec, name)}
        assert {name for name, enabled in caching.items() if not enabled} == {"data-fingerprint"}
        assert spec["components"]["data-fingerprint"]["outputDefinitions"]["parameters"] == {
            "fingerprint": {"parameterType": "STRING"}}
        assert tasks["data-fingerprint"]["inputs"]["parameters"]["input_base"] == {
            "componentInputParameter": "data_root"}
        consumers = {"ImageExampleGen"} | ({"latest-pushed-model"} & set(tasks))
        for name in consumers:
            # The producer as the task is named (TFX writes "data-fingerprint_task").
            assert tasks[name]["inputs"]["parameters"]["data_fingerprint"] == {
                "taskOutputParameter": {"producerTask": "data-fingerprint",
                                        "outputParameterKey": "fingerprint"}}, name
            assert "data_fingerprint" in spec["components"][name]["inputDefinitions"]["parameters"]


def test_examplegens_pre_cache_hook_is_only_in_the_vertex_spec(specs):
    """Vertex runs TFX's ExampleGen driver hook; open-source KFP never reads it."""
    hooks = {target: _executor(spec, "ImageExampleGen")["container"].get("lifecycle")
             for target, (_, spec) in specs.items()}
    assert hooks["kubeflow"] is None
    assert hooks["vertex"]["preCacheCheck"]["command"] == [
        "python", "-m", "tfx.orchestration.kubeflow.v2.file_based_example_gen.driver"]


def test_vertex_baseline_is_the_last_blessing_of_this_pipeline_alone(specs):
    """The blessing query is scoped to the pipeline's own root, the spec's default; the
    model query follows the blessing it found (by its MLMD name)."""
    from kubeflow.contract_run import MetadataStore, newest_match

    spec = specs["vertex"][1]
    root = f"{BUCKET}/runs/pipeline_root/cats-dogs-resnet"
    assert spec["defaultPipelineRoot"] == root
    query = _executor(spec, "latest_blessed_model_resolver-model-blessing-resolver")[
        "resolver"]["outputArtifactQueries"]["model_blessing"]["filter"]
    assert query == ('schema_title="tfx.ModelBlessing" AND state=LIVE AND '
                     f'metadata.blessed.number_value=1 AND uri="{root}/*"')
    # A project's shared store: another pipeline blessed last, under its own root.
    store = MetadataStore()

    def blessing(pipeline_root: str, blessed: int) -> int:
        return store.record("blessing", {
            "uri": f"{pipeline_root}/123/job/Evaluator_1/blessing",
            "type": {"instanceSchema": "title: tfx.ModelBlessing\ntype: object\n"},
            "metadata": {"blessed": blessed}})

    assert newest_match(store, query) is None
    ours = blessing(root, 1)
    blessing(root, 0)
    blessing(f"{BUCKET}/runs/pipeline_root/other-pipeline", 1)
    blessing(f"{BUCKET}/runs/pipeline_root/cats-dogs-resnet-v2", 1)
    assert newest_match(store, query) == ours


def test_every_task_runs_through_our_entrypoint_with_its_outputs_declared(specs):
    """kubeflow/entrypoint.py types the driver's untyped inputs from TFX's inputs spec and
    needs the outputs spec beside it to tell the component's outputs from KFP's own."""
    for _, spec in specs.values():
        for task, container in _containers(spec).items():
            assert container["command"] == ["python", "-m", "kubeflow.entrypoint"], task
            args = container["args"]
            outputs = json.loads(args[args.index("--json_serialized_outputs_spec_args") + 1])
            assert outputs == spec["components"][task].get("outputDefinitions", {}), task
            inputs = json.loads(args[args.index("--json_serialized_inputs_spec_args") + 1])
            assert set(inputs.get("artifacts", {})) == set(
                spec["components"][task].get("inputDefinitions", {}).get("artifacts", {})), task


def test_the_trainer_with_gpus_gets_the_gpu_image_and_the_rest_the_cpu_image(specs, tmp_path):
    """Both tagged with the code's fingerprint; the specs' Trainer has 4 GPUs."""
    cpu_image = f"cats-dogs-resnet:{image.code_fingerprint()}"
    for _, spec in specs.values():
        images = {task: container["image"] for task, container in _containers(spec).items()}
        assert images.pop("Trainer") == f"{cpu_image}-gpu"
        assert set(images.values()) == {cpu_image}
    spec = yaml.safe_load(Path(compile_pipeline(cluster_config(), str(tmp_path))).read_text())
    assert {container["image"] for container in _containers(spec).values()} == {cpu_image}


def test_a_code_change_changes_the_image_tag_and_an_explicit_tag_is_kept(tmp_path):
    copy = tmp_path / "repo"
    for source in image.image_sources():
        target = copy / source.relative_to(REPO_ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target)
    assert image.code_fingerprint(copy) == image.code_fingerprint()
    trainer = copy / "models" / "trainer.py"
    trainer.write_text(trainer.read_text() + "\n# a change\n")
    assert image.code_fingerprint(copy) != image.code_fingerprint()
    # The report's templates, which the image installs as package data, count too.
    fingerprint = image.code_fingerprint(copy)
    [template, *_] = sorted((copy / "reports" / "templates").glob("*.j2"))
    template.write_text(template.read_text() + "\n{# a change #}\n")
    assert image.code_fingerprint(copy) != fingerprint
    assert image.image_reference("registry:5000/ml/cats-dogs", copy) == (
        f"registry:5000/ml/cats-dogs:{image.code_fingerprint(copy)}")
    assert image.image_reference("registry:5000/ml/cats-dogs", copy, variant="gpu") == (
        f"registry:5000/ml/cats-dogs:{image.code_fingerprint(copy)}-gpu")
    # The GPU variant's files are fingerprinted too: one fingerprint for both variants.
    fingerprint = image.code_fingerprint(copy)
    gpu_lock = copy / image.GPU_LOCK
    gpu_lock.write_text(gpu_lock.read_text() + "\n# a change\n")
    assert image.code_fingerprint(copy) != fingerprint
    tagged = "registry:5000/ml/cats-dogs:1.2.3"
    assert image.image_reference(tagged) == tagged
    assert image.image_reference(tagged, variant="gpu") == f"{tagged}-gpu"
    # A digest names one image, which every task then runs.
    digest = "ml/cats-dogs@sha256:" + "0" * 64
    assert image.image_reference(digest) == image.image_reference(digest, variant="gpu") == digest


def test_the_spec_names_nothing_from_the_compiling_machine(specs):
    for spec_file, spec in specs.values():
        text = Path(spec_file).read_text()
        assert str(REPO_ROOT) not in text
        assert "_wheels" not in text
        trainer = spec["root"]["dag"]["tasks"]["Trainer"]["inputs"]["parameters"]
        assert trainer["run_fn"] == {"runtimeValue": {"constant": "models.trainer.run_fn"}}
        assert "module_path" not in trainer
        transform = spec["root"]["dag"]["tasks"]["Transform"]["inputs"]["parameters"]
        assert transform["preprocessing_fn"] == {
            "runtimeValue": {"constant": "models.preprocessing.preprocessing_fn"}}


def test_beam_workers_follow_the_pod_cpu_request_and_use_the_image_setup_file(tmp_path):
    spec_file = compile_pipeline(cluster_config(task_cpu=3.5), str(tmp_path))
    spec = yaml.safe_load(Path(spec_file).read_text())
    for task in BEAM_TASKS:
        container = _executor(spec, task)["container"]
        assert container["args"][-3:] == ["--direct_running_mode=multi_processing",
                                          "--direct_num_workers=3",
                                          f"--setup_file={IMAGE_SETUP_FILE}"]
        assert container["resources"]["resourceCpuRequest"] == "3.5"


def _check_beam_args(spec, expected_tail):
    """That each Beam task's args end with `expected_tail`, and hold no DirectRunner's."""
    for task in BEAM_TASKS:
        args = _executor(spec, task)["container"]["args"]
        assert args[-len(expected_tail):] == expected_tail, task
        assert not any(arg.startswith("--direct_") for arg in args), task


def test_flink_beam_tasks_submit_to_the_cluster_job_server_with_a_worker_pool_sidecar(tmp_path):
    spec_file = compile_pipeline(cluster_config(beam_runner="flink",
                                                flink_job_server=FLINK_JOB_SERVER),
                                 str(tmp_path))
    _check_beam_args(yaml.safe_load(Path(spec_file).read_text()), [
        "--runner=PortableRunner", f"--job_endpoint={FLINK_JOB_SERVER}:8099",
        f"--artifact_endpoint={FLINK_JOB_SERVER}:8098",
        "--environment_type=EXTERNAL", "--environment_config=localhost:50000",
        "--environment_cache_millis=10000",
        # Parallelism: the Flink cluster's own; SDK workers: a TaskManager's cores but one.
        "--sdk_worker_parallelism=0",
        f"--setup_file={IMAGE_SETUP_FILE}"])


def test_dataflow_beam_tasks_run_on_workers_of_the_pipeline_image(tmp_path):
    spec_file = compile_pipeline(cluster_config(beam_runner="dataflow",
                                                dataflow_project="my-project",
                                                dataflow_region="europe-west4"),
                                 str(tmp_path))
    spec = yaml.safe_load(Path(spec_file).read_text())
    [task_image] = {container["image"] for container in _containers(spec).values()}
    assert task_image == f"cats-dogs-resnet:{image.code_fingerprint()}"
    _check_beam_args(spec, [
        "--runner=DataflowRunner", "--project=my-project", "--region=europe-west4",
        f"--temp_location={BUCKET}/runs/beam-temp", f"--sdk_container_image={task_image}"])


def test_flink_without_the_cluster_job_server_is_refused_at_compile_time(tmp_path):
    with pytest.raises(ValueError, match=r"flink_job_server='' for beam_runner=flink"):
        compile_pipeline(cluster_config(beam_runner="flink"), str(tmp_path))


def test_every_task_requests_cpu_and_memory_and_the_trainer_its_gpus(specs):
    for task, container in _containers(specs["kubeflow"][1]).items():
        resources = container["resources"]
        cpu, memory = ("4", "16Gi") if task == "Trainer" else ("2", "8Gi")
        # KFP's driver reads these (Kubernetes quantities); no CPU limit to throttle.
        assert (resources["resourceCpuRequest"], resources["resourceMemoryRequest"],
                resources["resourceMemoryLimit"]) == (cpu, memory, memory), task
        assert not {"cpuLimit", "resourceCpuLimit"} & set(resources), task
        assert ("accelerator" in resources) == (task == "Trainer"), task
    for task, container in _containers(specs["vertex"][1]).items():
        resources = container["resources"]
        cpu, memory_gb = (4.0, 17.18) if task == "Trainer" else (2.0, 8.59)
        assert (resources["cpuLimit"], round(resources["memoryLimit"], 2)) == (cpu, memory_gb)
        assert ("accelerator" in resources) == (task == "Trainer"), task
    for target, accelerator in (("kubeflow", "nvidia.com/gpu"), ("vertex", "NVIDIA_L4")):
        gpus = _containers(specs[target][1])["Trainer"]["resources"]["accelerator"]
        assert gpus["resourceType"] == gpus["type"] == accelerator
        assert (gpus["resourceCount"], int(gpus["count"])) == ("4", 4)


def test_data_root_and_train_args_are_run_parameters_with_the_config_as_default(spec):
    parameters = spec["root"]["inputDefinitions"]["parameters"]
    assert parameters == {
        "data_root": {"parameterType": "STRING", "defaultValue": f"{BUCKET}/cats-dogs"},
        # No step count: the Trainer trains train_epochs over whatever data it gets.
        "train_args": {"parameterType": "STRING", "defaultValue": "{}"},
    }
    tasks = spec["root"]["dag"]["tasks"]
    assert tasks["ImageExampleGen"]["inputs"]["parameters"]["input_base"] == {
        "componentInputParameter": "data_root"}
    assert tasks["Trainer"]["inputs"]["parameters"]["train_args"] == {
        "componentInputParameter": "train_args"}


@pytest.mark.parametrize("settings, message", [
    ({"data_root": "/data/cats-dogs"},
     r"data_root='/data/cats-dogs' .*expected a gs:// or minio:// or s3:// URI"),
    ({"output_dir": "outputs"}, r"output_dir='outputs' .*expected a gs:// or minio:// or s3://"),
    ({"output_dir": "s3://bucket/runs", "kfp_target": "vertex"},
     r"output_dir='s3://bucket/runs': expected a local path or a gs:// URI for kfp_target="),
    ({"spans": True}, r"spans=true for kfp_target='kubeflow'.*SpanRangeStrategy"),
    ({"spans": True, "kfp_target": "vertex"}, r"spans=true for kfp_target='vertex'"),
])
def test_what_a_cluster_cannot_run_is_refused_at_compile_time(settings, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        compile_pipeline(cluster_config(**settings), str(tmp_path))
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("settings, named, allowed", [
    ({"kfp_target": "argo"}, "kfp_target", "one of kubeflow, vertex"),
    ({"kfp_target": "vertex", "trainer_accelerator_type": "nvidia.com/gpu"},
     "trainer_accelerator_type", "a Vertex accelerator type"),
    ({"trainer_accelerator_type": "NVIDIA_L4"}, "trainer_accelerator_type",
     "a Kubernetes resource name"),
    ({"task_memory_gib": 0}, "task_memory_gib", "a positive number"),
    ({"beam_runner": "spark"}, "beam_runner", "one of direct, flink, dataflow"),
    ({"flink_job_server": "http://jobserver:8099"}, "flink_job_server", "a host name"),
    ({"beam_runner": "dataflow"}, "dataflow_project", "a Google Cloud project"),
    ({"trainer_gpu_count": -1}, "trainer_gpu_count", "an integer >= 0"),
    ({"trainer_workers": 0}, "trainer_workers", "an integer >= 1"),
])
def test_a_wrong_kubeflow_setting_is_named(settings, named, allowed):
    with pytest.raises(ValueError, match=rf"{named}=.*{re.escape(allowed)}"):
        PipelineConfig(**settings)


def test_local_pipeline_is_unchanged_by_the_kubeflow_settings(tmp_path):
    """No resources, no run parameters, the resolver baseline, this checkout's setup.py."""
    pipeline = create_pipeline(PipelineConfig(output_dir=str(tmp_path), trainer_gpu_count=4))
    components = {component.id: component for component in pipeline.components}
    assert all(getattr(component, "platform_config", None) is None
               for component in components.values())
    assert "latest_blessed_model_resolver" in components
    assert isinstance(components["ImageExampleGen"].exec_properties["input_base"], str)
    assert pipeline.beam_pipeline_args == [
        "--direct_running_mode=multi_processing", "--direct_num_workers=0",
        f"--setup_file={SETUP_FILE}"]
    assert Path(SETUP_FILE).is_file()


def test_multi_worker_strategy_reads_the_cluster_from_tf_config():
    # In a fresh process: a collective strategy configures TensorFlow for good.
    tf_config = {"cluster": {"worker": ["localhost:0"]}, "task": {"type": "worker", "index": 0}}
    config = PipelineConfig(trainer_workers=2)
    script = textwrap.dedent(f"""
        import tensorflow as tf
        from models import distribution
        strategy = distribution.distribution_strategy({config.distribution_strategy!r})
        resolver = strategy.cluster_resolver
        print(isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy),
              resolver.task_type, resolver.task_id, strategy.num_replicas_in_sync)
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=120, env={"TF_USE_LEGACY_KERAS": "1",
                                                         "TF_CONFIG": json.dumps(tf_config),
                                                         "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-4:] == ["True", "worker", "0", "1"]


# --- Kubeflow Pipelines' own backend compiler (kubeflow/argo/) ---------------------------

# The workplace's Go module proxy refuses github.com/kubeflow/pipelines (403); KFP_SRC names
# a source tree of it at the pinned release instead (kubeflow/argo/README.md).
KFP_MODULE = "github.com/kubeflow/pipelines@v0.0.0-20250116194431-24ce44baf007"


@pytest.fixture(scope="module")
def argo_compile():
    """The KFP backend's spec-to-Argo compiler, built by its make target."""
    if not shutil.which("go"):
        pytest.skip("no Go toolchain on this machine to build Kubeflow's own compiler")
    if not os.environ.get("KFP_SRC"):
        served = subprocess.run(["go", "mod", "download", KFP_MODULE], cwd=REPO_ROOT / "kubeflow" / "argo",
                                capture_output=True, text=True, timeout=300)
        if served.returncode != 0 and "403" in served.stderr:
            pytest.skip(f"the Go module proxy does not serve {KFP_MODULE} "
                        f"({served.stderr.strip()[-200:]}); set KFP_SRC to a kubeflow/pipelines "
                        "source tree at 2.4.0 to run Kubeflow's own compiler")
    result = subprocess.run(["make", "-C", str(REPO_ROOT), "kfp-argo-compile"], capture_output=True,
                            text=True, timeout=1500)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]

    def compile_spec(spec_file, *params):
        return subprocess.run(
            [str(ARGO_COMPILE), "--spec", spec_file, "--pipeline-root", f"{BUCKET}/runs",
             *[arg for param in params for arg in ("--param", param)]],
            capture_output=True, text=True, timeout=120)
    return compile_spec


def test_kfp_backend_compiles_the_kubeflow_spec_into_an_argo_workflow(specs, argo_compile):
    result = argo_compile(specs["kubeflow"][0], f"data_root={BUCKET}/new-images")
    assert result.returncode == 0, result.stderr
    workflow = yaml.safe_load(result.stdout)
    assert workflow["kind"] == "Workflow"
    text = result.stdout
    for task in ("ImageExampleGen", "Trainer", "latest-pushed-model", "Evaluator", "Pusher"):
        assert task in text, task
    assert f"cats-dogs-resnet:{image.code_fingerprint()}" in text
    assert f"{BUCKET}/new-images" in text


def test_kfp_backend_refuses_resolver_tasks(specs, argo_compile):
    """What the spec held before this target existed, and what Vertex still needs."""
    result = argo_compile(specs["vertex"][0])
    assert result.returncode == 1
    assert "non-container and non-importer executor not implemented" in result.stderr


# --- The image --------------------------------------------------------------------------

def _dockerfile_lines():
    return [line.strip() for line in (REPO_ROOT / image.DOCKERFILE).read_text().splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def test_image_python_and_beam_are_the_lock_ones():
    [base] = [line.split()[1] for line in _dockerfile_lines() if line.startswith("FROM ")]
    match = re.fullmatch(r"apache/beam_python(\d+\.\d+)_sdk:(.+)", base)
    assert match, base
    lock = (REPO_ROOT / "requirements.lock").read_text()
    [beam_pin] = re.findall(r"^apache-beam==(.+)$", lock, flags=re.MULTILINE)
    # The lock is installed (and this test runs) with the Makefile's interpreter.
    makefile_python = re.search(r"^PYTHON \?= python(\d+\.\d+)$",
                                (REPO_ROOT / "Makefile").read_text(), flags=re.MULTILINE)[1]
    assert match[1] == makefile_python == f"{sys.version_info.major}.{sys.version_info.minor}"
    assert match[2] == beam_pin


def test_image_holds_the_whole_project_installed_from_the_lock():
    lines = _dockerfile_lines()
    text = "\n".join(lines)
    assert re.search(r"pip install .*--no-deps --ignore-requires-python -r requirements\.lock",
                     text)
    copied = {source.rstrip("/") for line in lines if line.startswith("COPY ")
              for source in line.split()[1:-1]}
    # Exactly what the image tag fingerprints, minus the Dockerfile itself.
    assert copied == (set(image.IMAGE_FILES) - {image.DOCKERFILE}) | set(source.PACKAGES)
    setup_text = (REPO_ROOT / "setup.py").read_text()
    setup_packages = re.search(r"include=\[(.*?)\]", setup_text, re.S)[1]
    assert {name.strip('" *\n') for name in setup_packages.split(",")} == set(source.PACKAGES)
    package_data = ast.literal_eval(re.search(r"package_data=(\{.*?\})", setup_text)[1])
    assert {package: tuple(patterns) for package, patterns in package_data.items()} == (
        source.PACKAGE_DATA)
    # The project itself, after its sources are copied in, where the Beam args name it.
    assert re.search(r"COPY setup\.py.*\n(COPY .*\n)*RUN pip install .*--no-deps .* \. ", text)
    assert "WORKDIR " + str(Path(IMAGE_SETUP_FILE).parent) in lines
    assert "ENV TF_USE_LEGACY_KERAS=1" in lines
    assert "ENV TF_ENABLE_ONEDNN_OPTS=1" in lines


def test_the_gpu_variant_installs_the_gpu_lock_after_the_lock_with_the_same_flags():
    text = "\n".join(_dockerfile_lines())
    installs = re.findall(r"pip install (.*?) -r (\S+)", text)
    assert [lock for _, lock in installs] == ["requirements.lock", image.GPU_LOCK]
    assert installs[0][0] == installs[1][0] == (
        "--no-cache-dir --no-deps --ignore-requires-python")
    # Only in the variant of that name; the default is the CPU image.
    assert re.search(rf"^gpu\) pip install .* -r {re.escape(image.GPU_LOCK)} ;;", text, re.M)
    assert "ARG VARIANT=cpu" in text
    assert set(re.findall(r"^(\w+)\) ", text, re.M)) == set(image.VARIANT_TAG_SUFFIXES)


def test_the_gpu_lock_is_exactly_what_tensorflow_requires_for_and_cuda():
    lock = (REPO_ROOT / "requirements.lock").read_text()
    [tensorflow_pin] = re.findall(r"^tensorflow==(.+)$", lock, flags=re.MULTILINE)
    assert importlib.metadata.version("tensorflow") == tensorflow_pin
    required = {}
    for line in importlib.metadata.requires("tensorflow"):
        requirement = Requirement(line)
        # The extra's own: required with it, not without (others have markers too).
        if requirement.marker and requirement.marker.evaluate({"extra": "and-cuda"}) and (
                not requirement.marker.evaluate({"extra": ""})):
            required[canonicalize_name(requirement.name)] = requirement.specifier
    pinned = dict(line.split("==") for line in (REPO_ROOT / image.GPU_LOCK).read_text().splitlines()
                  if line and not line.startswith("#"))
    assert {canonicalize_name(name) for name in pinned} == set(required)
    for name, version in pinned.items():
        assert version in required[canonicalize_name(name)], (name, version)


def test_make_kubeflow_image_builds_and_pushes_both_variants_or_the_one_asked(tmp_path):
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    # `python -m kubeflow.image --variant V` prints V's reference; the tool logs its calls.
    (fake_bin / "python").write_text('#!/bin/sh\necho "registry/cats-dogs:f-$4"\n')
    (fake_bin / "podman").write_text(f'#!/bin/sh\necho "$*" >> {tmp_path}/calls\n')
    for command in fake_bin.iterdir():
        command.chmod(0o755)
    for variants, expected in ((None, ["cpu", "gpu"]), ("gpu", ["gpu"])):
        (tmp_path / "calls").unlink(missing_ok=True)
        # -o: a lock newer than the venv must not reinstall it through the fake python.
        result = subprocess.run(
            ["make", "-s", "-C", str(REPO_ROOT), "-o", ".venv/.installed", "kubeflow-image",
             f"BIN={fake_bin}", f"CONTAINER_TOOL={fake_bin}/podman",
             *([f"IMAGE_VARIANTS={variants}"] if variants else [])],
            capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert (tmp_path / "calls").read_text().splitlines() == [
            call for variant in expected for call in (
                f"build -f kubeflow/Dockerfile --build-arg VARIANT={variant} "
                f"-t registry/cats-dogs:f-{variant} .",
                f"push registry/cats-dogs:f-{variant}")]
