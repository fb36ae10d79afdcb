"""`make kubeflow-local` as a user runs it: the compiled spec's tasks on this machine, as
KFP's launcher runs them, from make's relative folders, on tiny data.

The contract e2e (tests/test_kubeflow_contract_e2e.py) calls the runner with absolute
folders; from the command line each task wrote its executor output beside itself instead
of where the runner read it, which the data fingerprint's output parameter revealed.
"""
import pytest

from data.generate import generate_dataset
from tests.helpers import full_log, run_make

pytestmark = pytest.mark.e2e


def test_make_kubeflow_local_runs_every_task_and_pushes_a_blessed_model(tmp_path):
    generate_dataset(tmp_path / "data", train_per_class=20, test_per_class=16, seed=5)
    outputs = tmp_path / "outputs"
    result = run_make("kubeflow-local", {
        "DATA_ROOT": str(tmp_path / "data"), "OUTPUT_DIR": str(outputs),
        "PIPELINE_NAME": "kubeflow-local-test", "IMAGE_SIZE_PX": "32",
        "BATCH_SIZE_PER_REPLICA": "16", "TRAIN_EPOCHS": "15", "WARMUP_STEPS": "5",
        "MIN_ACCURACY": "0.0", "TASK_CPU": "1"})
    assert ("Ran: data-fingerprint, ImageExampleGen, latest-pushed-model, StatisticsGen, "
            "SchemaGen, ExampleValidator, Transform, Trainer, Evaluator, Pusher. "
            "From KFP's cache: nothing.") in result.stdout
    assert "Blessed: True; baseline: none; pushed: " + str(
        outputs / "serving_model" / "kubeflow-local-test") in result.stdout
    # The spec, the imitated cluster and the tasks' files under OUTPUT_DIR, not the checkout.
    assert (outputs / "kubeflow" / "kubeflow-local-test.yaml").is_file()
    assert (outputs / "kubeflow" / "kfp_cluster.json").is_file()
    assert "Running launcher" not in result.stdout
    assert "Compiled " in full_log(result.stdout)
