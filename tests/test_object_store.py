"""Kubeflow Pipelines' object store (kubeflow/object_store.py): the launcher's rules, the
compiled spec's settings and credentials for every task, and TensorFlow and Beam reading
and writing s3:// on a real S3 server (SeaweedFS, tests/s3_server.py) with the
environment a task's pod gets.

TensorFlow touches s3:// only in a child process: tensorflow-io aborts the process that
used it as it exits (kubeflow/object_store.py), which would be pytest's.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
import yaml

from kubeflow import object_store
from kubeflow.runner import cluster_object_store, compile_pipeline
from pipeline.config import S3_FILESYSTEM_PACKAGE, PipelineConfig

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ENDPOINT = PipelineConfig().kfp_object_store_endpoint
SECRET_REF = {"secretName": "artifact-store", "accessKeyKey": "id", "secretKeyKey": "key"}
CHILD_TIMEOUT_S = 300


def test_a_minio_uri_is_the_s3_uri_of_the_same_object_and_back():
    assert object_store.tensorflow_uri("minio://mlpipeline/v2/artifacts/x") == \
        "s3://mlpipeline/v2/artifacts/x"
    assert object_store.kfp_uri("s3://mlpipeline/v2/artifacts/x") == \
        "minio://mlpipeline/v2/artifacts/x"
    for unchanged in ("gs://bucket/x", "s3://bucket/x", "/local/path"):
        assert object_store.tensorflow_uri(unchanged) == unchanged
    assert object_store.kfp_uri("s3://bucket/x", kfp_scheme="s3://") == "s3://bucket/x"
    assert [object_store.is_object_store_uri(uri) for uri in
            ("minio://mlpipeline/x", "s3://bucket/x", "gs://bucket/x", "/local/path")] == \
        [True, True, False, False]


def test_kfp_default_store_serves_minio_paths_without_a_providers_entry():
    store = object_store.launcher_store("minio://mlpipeline/v2/artifacts", "", DEFAULT_ENDPOINT)
    assert store == object_store.ObjectStore(
        "minio", endpoint="minio-service.kubeflow:9000", region="minio", disable_ssl=True,
        secret_name="mlpipeline-minio-artifact", access_key_key="accesskey",
        secret_key_key="secretkey")
    assert object_store.client_environment(store) == {
        "S3_ENDPOINT": "http://minio-service.kubeflow:9000",
        "AWS_ENDPOINT_URL_S3": "http://minio-service.kubeflow:9000",
        "AWS_REGION": "minio", "AWS_DEFAULT_REGION": "minio",
        "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
        "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required"}
    # KFP 2.16 on: its store is seaweedfs.kubeflow:9000 (kfp_object_store_endpoint).
    assert object_store.launcher_store("minio://mlpipeline/x", "", "seaweedfs.kubeflow:9000") \
        .endpoint == "seaweedfs.kubeflow:9000"


def test_s3_paths_without_a_providers_entry_take_everything_from_the_pods_environment():
    store = object_store.launcher_store("s3://my-bucket/runs", "", DEFAULT_ENDPOINT)
    assert store == object_store.ObjectStore("s3")
    assert object_store.client_environment(store) == {}
    assert object_store.secret_as_env(store) == []


def test_a_providers_override_of_the_bucket_and_key_prefix_wins_over_the_default():
    providers = yaml.safe_dump({"s3": {
        "default": {"endpoint": "s3.amazonaws.com", "region": "eu-west-1",
                    "credentials": {"secretRef": SECRET_REF}},
        # KFP's field is `json:"Overrides"`, matched regardless of case as Go does.
        "Overrides": [{"bucketName": "shared", "keyPrefix": "team-a/",
                       "endpoint": "store.team-a.example:8443",
                       "credentials": {"fromEnv": True}}]}})
    default = object_store.launcher_store("s3://shared/team-b/runs", providers, DEFAULT_ENDPOINT)
    # AWS's global endpoint is the SDK's business (createS3BucketSession).
    assert object_store.client_environment(default) == {"AWS_REGION": "eu-west-1",
                                                        "AWS_DEFAULT_REGION": "eu-west-1"}
    assert object_store.secret_as_env(default) == [
        {"secretName": "artifact-store",
         "keyToEnv": [{"secretKey": "id", "envVar": "AWS_ACCESS_KEY_ID"},
                      {"secretKey": "key", "envVar": "AWS_SECRET_ACCESS_KEY"}]}]
    overridden = object_store.launcher_store("s3://shared/team-a/runs", providers,
                                             DEFAULT_ENDPOINT)
    assert object_store.client_environment(overridden)["S3_ENDPOINT"] == \
        "https://store.team-a.example:8443"  # disableSSL unset: TLS
    assert object_store.secret_as_env(overridden) == []


@pytest.mark.parametrize("providers, message", [
    ({"s3": {"default": {"endpoint": "s3.example:9000"}}}, "missing default credentials"),
    ({"s3": {"default": {"credentials": {"secretRef": SECRET_REF}},
             "overrides": [{"bucketName": "b", "keyPrefix": ""}]}}, "missing override credentials"),
    ({"s3": {"default": {"credentials": {"fromEnv": False}}}}, "need a secretRef"),
])
def test_providers_kfp_would_refuse_are_refused_with_kfp_words(providers, message):
    with pytest.raises(ValueError, match=rf"providers for 's3://b/runs'.*{message}"):
        object_store.launcher_store("s3://b/runs", yaml.safe_dump(providers), DEFAULT_ENDPOINT)


def test_paths_off_an_s3_api_have_no_object_store():
    for path in ("gs://bucket/runs", "/data/cats-dogs", "outputs"):
        assert object_store.launcher_store(path, "", DEFAULT_ENDPOINT) is None


@pytest.mark.parametrize("target, path, accepted", [
    ("kubeflow", "gs://bucket/runs", True),
    ("kubeflow", "s3://bucket/runs", True),
    ("kubeflow", "minio://mlpipeline/runs", True),
    ("kubeflow", "hdfs://namenode/runs", False),
    ("vertex", "gs://bucket/runs", True),
    ("vertex", "s3://bucket/runs", False),
    ("vertex", "minio://mlpipeline/runs", False),
])
def test_each_target_takes_the_storage_schemes_its_tasks_can_reach(target, path, accepted):
    for name in ("data_root", "output_dir"):
        settings = {"kfp_target": target, name: path}
        if accepted:
            PipelineConfig(**settings)
        else:
            with pytest.raises(ValueError, match=rf"{name}='{re.escape(path)}': expected a "
                                                 rf"local path or a gs:// .*URI for kfp_target"):
                PipelineConfig(**settings)


def test_a_default_store_endpoint_that_is_no_host_and_port_is_refused():
    PipelineConfig(kfp_object_store_endpoint="http://seaweedfs.kubeflow:9000")
    with pytest.raises(ValueError, match=r"kfp_object_store_endpoint='minio service': "
                                         r"expected a host:port"):
        PipelineConfig(kfp_object_store_endpoint="minio service")


def test_data_and_artifacts_on_two_object_stores_are_refused():
    config = PipelineConfig(data_root="s3://datasets/cats-dogs",
                            output_dir="minio://mlpipeline/runs")
    with pytest.raises(ValueError, match=r"data_root='s3://datasets/cats-dogs' and output_dir="
                                         r"'minio://mlpipeline/runs'.*two object stores"):
        cluster_object_store(config)
    assert cluster_object_store(PipelineConfig(
        data_root="gs://datasets/cats-dogs", output_dir="minio://mlpipeline/runs")).provider == \
        "minio"


def test_a_multi_worker_trainer_on_an_object_store_is_refused():
    with pytest.raises(ValueError, match=r"trainer_workers=2 .*TFJob workers get neither"):
        PipelineConfig(trainer_workers=2, data_root="gs://b/data",
                       output_dir="minio://mlpipeline/runs").check_runs_on("kubeflow")


# --- The compiled spec ------------------------------------------------------------------

@pytest.fixture(scope="module")
def minio_spec_file(tmp_path_factory):
    """The spec compiled for KFP's default object store."""
    return compile_pipeline(
        PipelineConfig(output_dir="minio://mlpipeline/cats-dogs",
                       data_root="minio://mlpipeline/datasets/cats-dogs", train_epochs=50),
        str(tmp_path_factory.mktemp("minio-spec")), allow_local_paths=False)


@pytest.fixture(scope="module")
def minio_spec(minio_spec_file):
    """(pipeline spec, platform spec): the file's two YAML documents."""
    documents = list(yaml.safe_load_all(Path(minio_spec_file).read_text()))
    assert len(documents) == 2
    return documents


def test_every_container_task_gets_the_store_secret_as_its_aws_credentials(minio_spec):
    spec, platform = minio_spec
    containers = {label for label, executor in spec["deploymentSpec"]["executors"].items()
                  if "container" in executor}
    assert len(containers) >= 8
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(executors) == containers
    for label in containers:
        assert executors[label] == {"secretAsEnv": [{
            "secretName": "mlpipeline-minio-artifact",
            "keyToEnv": [{"secretKey": "accesskey", "envVar": "AWS_ACCESS_KEY_ID"},
                         {"secretKey": "secretkey", "envVar": "AWS_SECRET_ACCESS_KEY"}]}]}, label


def test_every_container_task_reaches_the_store_as_kfp_launcher_does(minio_spec):
    spec, _ = minio_spec
    for label, executor in spec["deploymentSpec"]["executors"].items():
        if "container" in executor:
            env = {item["name"]: item["value"] for item in executor["container"]["env"]}
            assert env["S3_ENDPOINT"] == "http://minio-service.kubeflow:9000", label
            assert env["AWS_ENDPOINT_URL_S3"] == "http://minio-service.kubeflow:9000", label
            assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "minio", label


def test_the_spec_names_the_store_as_tensorflow_opens_it_and_beam_workers_register_it(minio_spec):
    spec, _ = minio_spec
    text = json.dumps(spec)
    assert "minio://" not in text  # the pipeline root comes with each run, from submit.py
    assert spec["root"]["inputDefinitions"]["parameters"]["data_root"]["defaultValue"] == \
        "s3://mlpipeline/datasets/cats-dogs"
    assert "s3://mlpipeline/cats-dogs/serving_model" in text
    assert f"--beam_plugins={S3_FILESYSTEM_PACKAGE}" in text


def test_kfp_driver_gives_a_task_pod_the_settings_and_the_secret(minio_spec_file, tmp_path):
    """KFP's own driver code (kubeflow/kfp_driver/, from KFP_SRC as tests/test_kfp_driver.py
    builds it) turns the spec into the pod spec patch of a task."""
    if not os.environ.get("KFP_SRC") or not shutil.which("go"):
        pytest.skip("KFP's driver is built from KFP_SRC, a kubeflow/pipelines source tree, "
                    "with Go (kubeflow/kfp_driver/README.md)")
    from kubeflow.mlmd_server import running_server

    release = (Path(os.environ["KFP_SRC"]) / "VERSION").read_text().strip()
    built = subprocess.run(["make", "-C", str(REPO), "kfp-driver"], capture_output=True,
                           text=True, timeout=1800)
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-3000:]
    with running_server(str(tmp_path / "mlmd.sqlite")) as address:
        def drive(*args):
            result = subprocess.run(
                [str(REPO / "outputs" / "bin" / f"kfp-driver-{release}"), *args, "--mlmd",
                 address, "--spec", minio_spec_file, "--run-id", "run-1"],
                capture_output=True, text=True, timeout=120)
            assert result.returncode == 0, result.stderr[-3000:]
            return json.loads(result.stdout)

        dag = drive("root-dag", "--pipeline-root", "minio://mlpipeline/v2/artifacts")
        task = drive("container", "--task", "data-fingerprint",  # the spec's first task
                     "--dag-execution-id", str(dag["execution_id"]))
    env = task["pod_spec_patch"]["containers"][0]["env"]
    assert {"name": "S3_ENDPOINT", "value": "http://minio-service.kubeflow:9000"} in env
    for variable, key in (("AWS_ACCESS_KEY_ID", "accesskey"),
                          ("AWS_SECRET_ACCESS_KEY", "secretkey")):
        assert {"name": variable, "valueFrom": {"secretKeyRef": {
            "name": "mlpipeline-minio-artifact", "key": key}}} in env, release


def test_a_spec_on_gs_has_no_platform_document(tmp_path):
    spec_file = compile_pipeline(PipelineConfig(output_dir="gs://bucket/runs",
                                                data_root="gs://bucket/data"), str(tmp_path))
    [spec] = yaml.safe_load_all(Path(spec_file).read_text())
    assert all("env" not in executor.get("container", {})
               for executor in spec["deploymentSpec"]["executors"].values())
    assert "--beam_plugins" not in json.dumps(spec)


# --- TensorFlow and Beam on a real S3 server ---------------------------------------------

# Runs in a task pod's environment: what an entrypoint does (register, then TensorFlow),
# then a Beam pipeline on the DirectRunner's worker processes, as a Beam component's.
POD_SCRIPT = textwrap.dedent("""
    import json, os, sys
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions
    from kubeflow import object_store

    kfp_root, beam_plugin_args = sys.argv[1], json.loads(sys.argv[2])
    results = {"registered_for_gs": object_store.register_filesystems({"uri": "gs://b/k"}),
               "imported_for_gs": "tensorflow_io" in sys.modules,
               "registered": object_store.register_filesystems(
                   {"outputs": {"artifacts": {"x": {"artifacts": [{"uri": kfp_root}]}}}}),
               "main_pid": os.getpid()}
    import tensorflow as tf
    gfile, root = tf.io.gfile, object_store.tensorflow_uri(kfp_root)
    gfile.makedirs(f"{root}/dir")
    with gfile.GFile(f"{root}/dir/a.txt", "w") as file:
        file.write("hello")
    results["listed"] = [gfile.listdir(root), gfile.listdir(f"{root}/dir"),
                         gfile.isdir(f"{root}/dir"), gfile.glob(f"{root}/dir/*.txt")]
    results["read"] = gfile.GFile(f"{root}/dir/a.txt").read()
    gfile.rename(f"{root}/dir/a.txt", f"{root}/dir/b.txt")
    results["renamed"] = [gfile.exists(f"{root}/dir/a.txt"), gfile.exists(f"{root}/dir/b.txt")]
    gfile.remove(f"{root}/dir/b.txt")
    results["removed"] = gfile.exists(f"{root}/dir/b.txt")
    with tf.io.TFRecordWriter(f"{root}/records.tfrecord") as writer:
        for i in range(3):
            writer.write(f"record {i}".encode())
    results["records"] = [record.numpy().decode() for record in
                          tf.data.TFRecordDataset(f"{root}/records.tfrecord")]
    for i in range(4):
        with gfile.GFile(f"{root}/beam-in/{i}.txt", "w") as file:
            file.write(f"file {i}")

    class ReadWithTensorFlow(beam.DoFn):
        def process(self, path):
            import tensorflow as tf
            with tf.io.gfile.GFile(path) as file:
                yield f"{file.read()} pid {os.getpid()}".encode()

    options = PipelineOptions(["--direct_running_mode=multi_processing",
                               "--direct_num_workers=1", *beam_plugin_args])
    with beam.Pipeline(options=options) as pipeline:
        _ = (pipeline | beam.Create(sorted(gfile.glob(f"{root}/beam-in/*.txt")))
             | beam.Reshuffle() | beam.ParDo(ReadWithTensorFlow())
             | beam.io.WriteToTFRecord(f"{root}/beam-out/part"))  # Beam's s3://: boto3
    results["beam_records"] = sorted(
        record.numpy().decode() for record in
        tf.data.TFRecordDataset(gfile.glob(f"{root}/beam-out/part*")))
    print("RESULTS " + json.dumps(results), flush=True)
    object_store.exit_process(0)
""")


def pod_environment(server, kfp_root: str) -> dict[str, str]:
    """What KFP gives a task's pod for `kfp_root`: the compiled spec's container env, and
    the Secret's keys under the names its secretAsEnv says, with the cluster's
    kfp-launcher ConfigMap naming this server as its store."""
    providers = yaml.safe_dump({"minio": {"default": {
        "endpoint": server.endpoint, "region": "minio", "disableSSL": True,
        "credentials": {"fromEnv": False, "secretRef": SECRET_REF}}}})
    store = object_store.launcher_store(kfp_root, providers, DEFAULT_ENDPOINT)
    secret = {"id": server.access_key, "key": server.secret_key}
    environment = object_store.client_environment(store)
    for entry in object_store.secret_as_env(store):
        environment.update({item["envVar"]: secret[item["secretKey"]]
                            for item in entry["keyToEnv"]})
    return environment


@pytest.fixture(scope="module")
def pod_run(s3_server):
    """POD_SCRIPT's results, its exit status and the KFP root it wrote under."""
    kfp_root = f"minio://{s3_server.bucket}/tests-{uuid.uuid4().hex[:8]}"
    plugin_args = [arg for arg in PipelineConfig(output_dir=kfp_root).beam_pipeline_args()
                   if arg.startswith("--beam_plugins=")]
    environment = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"),
                   "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2",
                   **pod_environment(s3_server, kfp_root)}
    child = subprocess.run([sys.executable, "-c", POD_SCRIPT, kfp_root, json.dumps(plugin_args)],
                           cwd=REPO, env=environment, capture_output=True, text=True,
                           timeout=CHILD_TIMEOUT_S)
    lines = [line for line in child.stdout.splitlines() if line.startswith("RESULTS ")]
    assert lines, child.stdout[-2000:] + child.stderr[-5000:]
    return {"results": json.loads(lines[-1][len("RESULTS "):]), "status": child.returncode,
            "stderr": child.stderr, "kfp_root": kfp_root}


def test_the_filesystem_is_registered_only_where_an_object_store_uri_is_in_use(pod_run):
    results = pod_run["results"]
    assert (results["registered_for_gs"], results["imported_for_gs"]) == (False, False)
    assert results["registered"] is True


def test_tensorflow_writes_lists_reads_renames_and_deletes_on_the_store(pod_run):
    results = pod_run["results"]
    assert results["listed"][0] == ["dir"]
    assert results["listed"][1:] == [["a.txt"], True,
                                     [object_store.tensorflow_uri(pod_run["kfp_root"]) +
                                      "/dir/a.txt"]]
    assert results["read"] == "hello"
    assert results["renamed"] == [False, True]
    assert results["removed"] is False
    assert results["records"] == ["record 0", "record 1", "record 2"]


def test_what_tensorflow_wrote_is_the_object_kfp_names_by_its_minio_uri(pod_run, s3_server):
    import boto3

    bucket, prefix = pod_run["kfp_root"][len("minio://"):].split("/", 1)
    client = boto3.client("s3", endpoint_url=s3_server.url, region_name="minio",
                          aws_access_key_id=s3_server.access_key,
                          aws_secret_access_key=s3_server.secret_key)
    keys = {item["Key"] for item in
            client.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]}
    assert f"{prefix}/records.tfrecord" in keys
    assert object_store.kfp_uri(object_store.tensorflow_uri(pod_run["kfp_root"])) == \
        pod_run["kfp_root"]


def test_beam_worker_processes_read_with_tensorflow_and_write_with_beams_s3(pod_run):
    results = pod_run["results"]
    records = results["beam_records"]
    assert [record.split(" pid ")[0] for record in records] == [f"file {i}" for i in range(4)]
    worker_pids = {int(record.split(" pid ")[1]) for record in records}
    assert results["main_pid"] not in worker_pids  # read in the workers' own processes


def test_a_process_that_used_the_s3_filesystem_exits_with_its_own_status(pod_run):
    assert pod_run["status"] == 0, pod_run["stderr"][-3000:]
