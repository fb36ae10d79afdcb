"""The compiled Kubeflow spec, run on this machine under KFP's execution contract, twice.

kubeflow/contract_run.py starts each task as KFP's launcher would (the spec's command and
args, the ExecutorInput JSON KFP builds). The first run pushes a blessed model with no
baseline; the second, after new images land in the same data root, ingests them (its
ExampleGen is never a cache hit) and is judged against the model the first one pushed.
"""
import json
from pathlib import Path

import pytest
import yaml

from data.generate import generate_dataset
from kubeflow.contract_run import run_spec
from kubeflow.runner import compile_pipeline
from metadata.eval_predictions import read_predictions
from pipeline.config import PipelineConfig
from tests.helpers import serving_versions

pytestmark = pytest.mark.e2e


def _files(data_root: Path, split_folder: str) -> int:
    return len(list((data_root / split_folder).glob("*/*")))


def _ingested(outputs) -> dict:
    examples_uri = outputs["ImageExampleGen"]["examples"]["uri"]
    report = json.loads(Path(examples_uri, "ingestion_report.json").read_text())
    return {split: report["splits"][split]["written"] for split in ("train", "eval")}


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    work = tmp_path_factory.mktemp("kfp_contract")
    data_root = work / "data"
    generate_dataset(data_root, train_per_class=20, test_per_class=16, seed=5)
    config = PipelineConfig(
        data_root=str(data_root), output_dir=str(work / "outputs"), pipeline_name="kfp-contract",
        image_size_px=32, batch_size_per_replica=16, train_epochs=15,
        warmup_steps=5, min_accuracy=0.0, max_accuracy_drop=1.0, task_cpu=1)
    spec_file = compile_pipeline(config, str(work / "spec"), allow_local_paths=True)
    first = run_spec(spec_file, config.pipeline_root)
    first_versions = serving_versions(config)

    # New images arrive in the same data root, under new names.
    generate_dataset(work / "more", train_per_class=8, test_per_class=4, seed=6)
    for path in (work / "more").glob("*/*/*"):
        target = data_root / path.relative_to(work / "more")
        path.rename(target.with_name("new." + target.name))
    second = run_spec(spec_file, config.pipeline_root)
    return {"config": config, "data_root": data_root, "spec": yaml.safe_load(
        Path(spec_file).read_text()), "first": first, "second": second,
        "first_versions": first_versions}


def test_every_task_of_the_spec_ran_and_reported_its_outputs(two_runs):
    tasks = set(two_runs["spec"]["root"]["dag"]["tasks"])
    assert set(two_runs["first"]) == set(two_runs["second"]) == tasks
    for outputs in (two_runs["first"], two_runs["second"]):
        examples = outputs["ImageExampleGen"]["examples"]
        assert json.loads(examples["metadata"]["split_names"]) == ["train", "eval"]
        assert outputs["Trainer"]["model"]["uri"].startswith(two_runs["config"].pipeline_root)


def test_first_run_has_no_baseline_and_pushes_a_blessed_model(two_runs):
    first = two_runs["first"]
    assert first["latest-pushed-model"]["model"]["metadata"]["pushed_version"] == ""
    blessing = first["Evaluator"]["blessing"]["metadata"]
    assert blessing["blessed"] == 1
    assert "baseline_model" not in blessing
    [version] = two_runs["first_versions"]
    assert first["Pusher"]["pushed_model"]["metadata"]["pushed_version"] == version


def test_second_run_ingests_the_new_images(two_runs):
    data_root = two_runs["data_root"]
    assert _ingested(two_runs["first"]) == {"train": 40, "eval": 32}
    assert _ingested(two_runs["second"]) == {
        "train": _files(data_root, "training_set"), "eval": _files(data_root, "test_set")}
    assert _ingested(two_runs["second"]) == {"train": 56, "eval": 40}


def test_second_run_is_judged_against_the_model_the_first_pushed(two_runs):
    second = two_runs["second"]
    [first_version] = two_runs["first_versions"]
    baseline = second["latest-pushed-model"]["model"]
    assert baseline["metadata"]["pushed_version"] == first_version
    blessing = second["Evaluator"]["blessing"]["metadata"]
    assert blessing["baseline_model"] == baseline["uri"]
    assert blessing["blessed"] == 1
    # Blessed again (any drop tolerated here): a newer version, beside the first.
    versions = serving_versions(two_runs["config"])
    assert len(versions) == 2 and first_version in versions
    assert second["Pusher"]["pushed_model"]["metadata"]["pushed_version"] == max(versions, key=int)


def test_the_evaluator_writes_each_eval_images_prediction_for_the_report(two_runs):
    for outputs in (two_runs["first"], two_runs["second"]):
        predictions = read_predictions(outputs["Evaluator"]["evaluation"]["uri"])
        assert len(predictions) == _ingested(outputs)["eval"]
        assert all(p.image is not None for p in predictions if p.wrong)
