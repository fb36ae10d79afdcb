"""The compiled Kubeflow spec, run on this machine as open-source KFP runs it, three times,
as a schedule would, on a real S3 server (SeaweedFS, KFP's own object store from 2.15:
tests/s3_server.py).

kubeflow/contract_run.py starts each task as KFP's launcher would and carries artifacts
between tasks as KFP's driver does: read back from ML Metadata, untyped, renamed to MLMD
ids, their metadata converted, and serves a task from KFP's cache when its cache key
(cacheutils' fingerprint) matches an earlier run's. The pipeline root, the data and the
pushed models are on `minio://mlpipeline/...`, KFP's default store, reached with the
credentials the spec's platform config gives every pod from the `mlpipeline-minio-artifact`
Secret. Every run is KFP 2.5 and later (the driver's `executor-logs` output on every task;
KFP 2.4's inputs are replayed in test_kfp_driver_records.py). The first pushes a blessed
model with no baseline; the second, on the same data, runs only the data's fingerprint and
is served from the cache after it; then new images land in the same data root, and the
third ingests them, trains, and is judged against the model the first one pushed.

This test process reads the store with boto3, as a user would, not with TensorFlow:
tensorflow-io's S3 filesystem aborts the process that used it as it exits
(kubeflow/object_store.py). About 4 minutes on 2 cores.
"""
import json
import os
from pathlib import Path

import pytest

from data.generate import generate_dataset
from kubeflow.contract_run import LOGS_OUTPUT, KfpCluster, read_spec, run_spec
from kubeflow.object_store import DEFAULT_SECRET_NAME, tensorflow_uri
from kubeflow.runner import compile_pipeline
from metadata import eval_predictions
from pipeline.config import PipelineConfig

pytestmark = pytest.mark.e2e


def _key(uri: str) -> str:
    """The object key of a minio:// or s3:// URI in the test's bucket."""
    return tensorflow_uri(uri).split("/", 3)[3]


def _read(s3, uri: str) -> bytes:
    return s3.get_object(Bucket="mlpipeline", Key=_key(uri))["Body"].read()


def _ingested(s3, outputs) -> dict:
    report = json.loads(_read(s3, outputs["ImageExampleGen"]["examples"]["uri"]
                              + "/ingestion_report.json"))
    return {split: report["splits"][split]["written"] for split in ("train", "eval")}


def _serving_versions(s3, config) -> list[str]:
    listing = s3.list_objects_v2(Bucket="mlpipeline", Prefix=_key(config.serving_model_dir) + "/",
                                 Delimiter="/")
    names = [prefix["Prefix"].rstrip("/").rsplit("/", 1)[-1]
             for prefix in listing.get("CommonPrefixes", [])]
    return sorted(name for name in names if name.isascii() and name.isdigit())


@pytest.fixture(scope="module")
def three_runs(tmp_path_factory, s3_server):
    s3 = s3_server.client()
    work = tmp_path_factory.mktemp("kfp_contract")
    generate_dataset(work / "data", train_per_class=20, test_per_class=16, seed=5)
    s3_server.upload(work / "data", "contract/data")
    config = PipelineConfig(
        data_root="minio://mlpipeline/contract/data",
        output_dir="minio://mlpipeline/contract/outputs", pipeline_name="kfp-contract",
        kfp_object_store_endpoint=s3_server.endpoint,
        image_size_px=32, batch_size_per_replica=16, train_epochs=15,
        warmup_steps=5, min_accuracy=0.0, max_accuracy_drop=1.0, task_cpu=1)
    spec_file = compile_pipeline(config, str(work / "spec"))
    secrets = s3_server.kfp_secrets()
    runs = work / "runs"
    # KFP's own driver where it is built (make kfp-driver: a release of 2.5.0 or later);
    # its cache lookups are not run here: the imitation's are.
    kfp_driver = os.environ.get("KFP_DRIVER")
    cluster = KfpCluster()  # the cluster's MLMD and cache, shared by the scheduled runs
    first = run_spec(spec_file, config.pipeline_root, str(runs), secrets=secrets,
                     kfp_driver=kfp_driver, cluster=cluster)
    first_versions = _serving_versions(s3, config)
    unchanged = run_spec(spec_file, config.pipeline_root, str(runs), secrets=secrets,
                         kfp_driver=kfp_driver, cluster=cluster)
    unchanged_versions = _serving_versions(s3, config)

    # New images arrive in the same data root, under new names.
    generate_dataset(work / "more", train_per_class=8, test_per_class=4, seed=6)
    s3_server.upload(work / "more", "contract/data", rename=lambda name: "new." + name)
    second = run_spec(spec_file, config.pipeline_root, str(runs), secrets=secrets,
                      kfp_driver=kfp_driver, cluster=cluster)
    evaluations = {}
    for name, outputs in (("first", first), ("second", second)):
        evaluation = work / f"evaluation-{name}"
        evaluation.mkdir()
        (evaluation / eval_predictions.FILE_NAME).write_bytes(_read(
            s3, f"{outputs['Evaluator']['evaluation']['uri']}/{eval_predictions.FILE_NAME}"))
        evaluations[name] = eval_predictions.read_predictions(str(evaluation))
    spec, platform = read_spec(spec_file)
    return {"config": config, "s3": s3, "spec": spec, "platform": platform, "first": first,
            "unchanged": unchanged, "second": second, "first_versions": first_versions,
            "unchanged_versions": unchanged_versions,
            "versions": _serving_versions(s3, config), "predictions": evaluations,
            "kfp_driver": kfp_driver}


def test_every_task_of_the_spec_ran_and_reported_its_outputs(three_runs):
    tasks = set(three_runs["spec"]["root"]["dag"]["tasks"])
    assert set(three_runs["first"]) == set(three_runs["second"]) == tasks
    for outputs in (three_runs["first"], three_runs["second"]):
        examples = outputs["ImageExampleGen"]["examples"]
        assert json.loads(examples["metadata"]["split_names"]) == ["train", "eval"]
        # As KFP's driver hands it on: an MLMD id for a name, no type.
        assert examples["name"].isdigit() and examples["type"] == {"instanceSchema": ""}
        assert outputs["Trainer"]["model"]["uri"].startswith(
            "minio://mlpipeline/contract/outputs/pipeline_root/kfp-contract/")


def test_every_pod_reaches_the_store_with_the_secret_the_platform_spec_names(three_runs):
    executors = three_runs["platform"]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(executors) == set(three_runs["spec"]["deploymentSpec"]["executors"])
    for config in executors.values():
        [secret] = config["secretAsEnv"]
        assert secret["secretName"] == DEFAULT_SECRET_NAME


def test_kfp_2_5_and_later_get_each_tasks_log_as_its_executor_logs_output(three_runs):
    s3 = three_runs["s3"]
    for task, outputs in three_runs["first"].items():
        log = _read(s3, outputs[LOGS_OUTPUT]["uri"]).decode()
        assert log.strip(), task


def test_a_run_on_unchanged_data_is_served_from_kfps_cache_after_the_fingerprint(three_runs):
    if three_runs["kfp_driver"]:
        pytest.skip("KFP's own driver here keeps no cache from run to run")
    first, unchanged = three_runs["first"], three_runs["unchanged"]
    tasks = set(three_runs["spec"]["root"]["dag"]["tasks"])
    assert first.cached == []
    assert set(unchanged.cached) == tasks - {"data-fingerprint"}
    # The cached outputs are the first run's: its model, its blessing, its push.
    for task in tasks - {"data-fingerprint"}:
        assert unchanged[task] == first[task], task
    assert three_runs["unchanged_versions"] == three_runs["first_versions"]
    fingerprints = [outputs["data-fingerprint"]["fingerprint"]["uri"]
                    for outputs in (first, unchanged)]
    assert fingerprints[0] != fingerprints[1]  # it ran again, and found the same data


def test_a_run_on_new_images_ingests_and_trains_again(three_runs):
    assert three_runs["second"].cached == []
    assert (three_runs["second"]["Trainer"]["model"]["uri"]
            != three_runs["first"]["Trainer"]["model"]["uri"])


def test_first_run_has_no_baseline_and_pushes_a_blessed_model(three_runs):
    first = three_runs["first"]
    assert first["latest-pushed-model"]["model"]["metadata"]["pushed_version"] == ""
    blessing = first["Evaluator"]["blessing"]["metadata"]
    assert blessing["blessed"] == 1
    assert "baseline_model" not in blessing
    [version] = three_runs["first_versions"]
    assert first["Pusher"]["pushed_model"]["metadata"]["pushed_version"] == version


def test_second_run_ingests_the_new_images(three_runs):
    s3 = three_runs["s3"]
    assert _ingested(s3, three_runs["first"]) == {"train": 40, "eval": 32}
    assert _ingested(s3, three_runs["second"]) == {"train": 56, "eval": 40}


def test_second_run_is_judged_against_the_model_the_first_pushed(three_runs):
    second = three_runs["second"]
    [first_version] = three_runs["first_versions"]
    baseline = second["latest-pushed-model"]["model"]
    assert baseline["metadata"]["pushed_version"] == first_version
    blessing = second["Evaluator"]["blessing"]["metadata"]
    assert tensorflow_uri(blessing["baseline_model"]) == tensorflow_uri(baseline["uri"])
    assert blessing["blessed"] == 1
    # Blessed again (any drop tolerated here): a newer version, beside the first.
    versions = three_runs["versions"]
    assert len(versions) == 2 and first_version in versions
    assert second["Pusher"]["pushed_model"]["metadata"]["pushed_version"] == max(versions, key=int)
    # The pushed model is whole on the store: its graph and variables.
    model_key = f"{_key(three_runs['config'].serving_model_dir)}/{max(versions, key=int)}/"
    listed = three_runs["s3"].list_objects_v2(Bucket="mlpipeline", Prefix=model_key)
    names = {item["Key"][len(model_key):] for item in listed["Contents"]}
    assert "saved_model.pb" in names and any(name.startswith("variables/") for name in names)


def test_the_evaluator_writes_each_eval_images_prediction_for_the_report(three_runs):
    for name in ("first", "second"):
        predictions = three_runs["predictions"][name]
        assert len(predictions) == _ingested(three_runs["s3"], three_runs[name])["eval"]
        assert all(p.image is not None for p in predictions if p.wrong)
