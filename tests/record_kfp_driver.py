"""Records what KFP's own driver hands each task of our spec: tests/testdata/kfp_driver/.

    git -C KFP_MIRROR worktree add /tmp/kfp-2.17.0 2.17.0      # one per release
    make kfp-driver KFP_SRC=/tmp/kfp-2.17.0                     # -> outputs/bin/kfp-driver-2.17.0
    .venv/bin/python -m tests.record_kfp_driver outputs/bin/kfp-driver-2.4.0 ...

For each driver binary (kubeflow/kfp_driver/, the name ending in its KFP release), the
compiled `kubeflow` spec runs once on SeaweedFS (tests/s3_server.py) through
kubeflow/contract_run.py with that driver and a real MLMD server, on a tiny dataset, with
the executor-logs output where the release has it. Each task's ExecutorInput (from KFP's
driver), the executor output our entrypoint wrote, and what its consumers receive (read
back by KFP's own metadata client) are written to `<release>.json`, with the KFP commit
the driver was built from. The Go module proxy serves no kubeflow/pipelines, so CI cannot
build the driver: tests/test_kfp_driver_records.py replays these recordings instead.
"""
import argparse
import json
import re
import sys
import tempfile
from datetime import date
from pathlib import Path

from data.generate import generate_dataset
from kubeflow.contract_run import EXECUTOR_INPUT_FILE, read_spec, run_spec
from kubeflow.runner import compile_pipeline
from pipeline.config import PipelineConfig
from tests.s3_server import running_s3_server

RECORDINGS = Path(__file__).resolve().parent / "testdata" / "kfp_driver"
# The kubeflow/pipelines commits of the releases kubeflow/kfp_driver builds.
KFP_COMMITS = {"2.4.0": "24ce44baf0070f76dcaf25d91a8c111de065c73f",
               "2.5.0": "d07cf1c7f9bd163091986de9bb723c4078c498b1",
               "2.17.0": "4a3592cb2dd0a91a4652ab93893ec8beda1f3158"}
FIRST_RELEASE_WITH_LOGS = (2, 5, 0)


def release_of(binary: str) -> str:
    match = re.search(r"kfp-driver-(\d+\.\d+\.\d+)$", binary)
    if not match or match[1] not in KFP_COMMITS:
        raise SystemExit(f"{binary}: expected a kfp-driver-<release> of {sorted(KFP_COMMITS)}")
    return match[1]


def task_specs(container: dict) -> tuple[dict, dict]:
    """The component's input and output definitions, as the task's command carries them."""
    args = container["args"]
    return tuple(json.loads(args[args.index(flag) + 1]) for flag in (
        "--json_serialized_inputs_spec_args", "--json_serialized_outputs_spec_args"))


def record(binary: str, server, work: Path) -> dict:
    release = release_of(binary)
    publish_logs = tuple(map(int, release.split("."))) >= FIRST_RELEASE_WITH_LOGS
    prefix = f"record-{release}"
    generate_dataset(work / "data", train_per_class=6, test_per_class=4, seed=7)
    server.upload(work / "data", f"{prefix}/data")
    config = PipelineConfig(
        data_root=f"minio://{server.bucket}/{prefix}/data",
        output_dir=f"minio://{server.bucket}/{prefix}/outputs", pipeline_name="kfp-record",
        kfp_object_store_endpoint=server.endpoint, image_size_px=32,
        batch_size_per_replica=8, train_epochs=1, warmup_steps=1, min_accuracy=0.0,
        max_accuracy_drop=1.0, task_cpu=1)
    spec_file = compile_pipeline(config, str(work / "spec"))
    outputs = run_spec(spec_file, config.pipeline_root, str(work / "runs"),
                       publish_logs=publish_logs, secrets=server.kfp_secrets(),
                       kfp_driver=binary)
    spec, _ = read_spec(spec_file)
    [run_dir] = (work / "runs").iterdir()
    tasks = {}
    for name, task in spec["root"]["dag"]["tasks"].items():
        component = spec["components"][task["componentRef"]["name"]]
        container = spec["deploymentSpec"]["executors"][component["executorLabel"]]["container"]
        inputs_spec, outputs_spec = task_specs(container)
        tasks[name] = {
            "inputs_spec": inputs_spec, "outputs_spec": outputs_spec,
            "executor_input": json.loads((run_dir / name / EXECUTOR_INPUT_FILE).read_text()),
            "executor_output": json.loads((run_dir / name / "executor_output.json").read_text()),
            "as_input": outputs[name]}
    return {"kfp_release": release, "kfp_commit": KFP_COMMITS[release],
            "recorded_on": date.today().isoformat(), "publish_logs": publish_logs,
            "pipeline_root": config.pipeline_root,
            "how": "kubeflow/contract_run.py with kubeflow/kfp_driver (KFP's driver.RootDAG "
                   "and driver.Container, its metadata client; the launcher's recording "
                   "imitated around that client) against kubeflow/mlmd_server.py "
                   "(ml-metadata 1.16's C++ store), on SeaweedFS (tests/record_kfp_driver.py)",
            "tasks": tasks}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.record_kfp_driver",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("binaries", nargs="+", help="kfp-driver-<release> binaries")
    args = parser.parse_args(argv)
    RECORDINGS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        Path(scratch, "seaweedfs").mkdir()
        with running_s3_server(Path(scratch, "seaweedfs")) as server:
            for binary in args.binaries:
                work = Path(scratch, release_of(binary))
                work.mkdir()
                recording = record(binary, server, work)
                target = RECORDINGS / f"{recording['kfp_release']}.json"
                target.write_text(json.dumps(recording, indent=1, sort_keys=True) + "\n")
                print(f"{target}: {len(recording['tasks'])} tasks")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
