"""Runs a compiled KFP v2 spec on this machine under Kubeflow Pipelines' execution contract.

    make kubeflow-local    # = python -m kubeflow.contract_run: compile with local paths, run

A check of our spec, not an orchestrator: the tasks run in dependency order, each as
KFP's launcher starts a container: the executor's exact `command` and `args` from the
spec, `{{$}}` replaced by the ExecutorInput JSON KFP builds (input artifacts with their
URIs and metadata, parameter values, output artifact URIs under the pipeline root, the
output file), in the environment kubeflow/Dockerfile sets. Importer tasks give their
artifact; what a task writes to its executor output file (artifact metadata) is what its
consumers receive. Every task runs: as on KFP's first run, no cache entry exists.
The image's Python is this one (same lock); `python` in a command means it.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any, Optional

import yaml

from kubeflow.image import DOCKERFILE, REPO

# Placeholders this runner fills; a spec using others fails the check loudly.
EXECUTOR_INPUT_PLACEHOLDER = "{{$}}"


class TaskFailed(RuntimeError):
    pass


def image_environment(dockerfile: Path = REPO / DOCKERFILE) -> dict[str, str]:
    """The `ENV name=value` settings of the image."""
    environment = {}
    for line in dockerfile.read_text().splitlines():
        match = re.fullmatch(r"ENV\s+(\w+)=(\S+)", line.strip())
        if match:
            environment[match[1]] = match[2]
    return environment


def task_order(tasks: dict[str, Any]) -> list[str]:
    """Task names, each after every task it depends on (dependentTasks and data)."""
    def upstream(task):
        producers = {source["taskOutputArtifact"]["producerTask"]
                     for source in task.get("inputs", {}).get("artifacts", {}).values()
                     if "taskOutputArtifact" in source}
        return set(task.get("dependentTasks", [])) | producers
    order, done = [], set()
    while len(order) < len(tasks):
        ready = sorted(name for name, task in tasks.items()
                       if name not in done and upstream(task) <= done)
        if not ready:
            raise ValueError(f"Cyclic or dangling dependencies among {sorted(set(tasks) - done)}")
        order += ready
        done.update(ready)
    return order


def parameter_values(task: dict, pipeline_parameters: dict[str, Any]) -> dict[str, Any]:
    values = {}
    for name, source in task.get("inputs", {}).get("parameters", {}).items():
        if "runtimeValue" in source:
            values[name] = source["runtimeValue"]["constant"]
        elif "componentInputParameter" in source:
            values[name] = pipeline_parameters[source["componentInputParameter"]]
        else:
            raise ValueError(f"Unsupported parameter source {source} for {name}")
    return values


def run_spec(spec_file: str, pipeline_root: str, parameters: Optional[dict[str, Any]] = None,
             log_dir: Optional[str] = None) -> dict[str, dict[str, dict]]:
    """Runs every task of the spec; returns {task: {output name: runtime artifact}}."""
    spec = yaml.safe_load(Path(spec_file).read_text())
    run_id = f"local-{uuid.uuid4().hex[:8]}"
    pipeline_parameters = {name: definition.get("defaultValue") for name, definition in
                           spec["root"].get("inputDefinitions", {}).get("parameters", {}).items()}
    pipeline_parameters.update(parameters or {})
    run_dir = Path(log_dir or Path(pipeline_root) / ".contract_runs") / run_id
    tasks = spec["root"]["dag"]["tasks"]
    outputs: dict[str, dict[str, dict]] = {}
    for name in task_order(tasks):
        task = tasks[name]
        component = spec["components"][task["componentRef"]["name"]]
        executor = spec["deploymentSpec"]["executors"][component["executorLabel"]]
        if "importer" in executor:
            outputs[name] = {"artifact": _imported_artifact(executor["importer"],
                                                            pipeline_parameters)}
        elif "container" in executor:
            outputs[name] = _run_container(
                name, task, component, executor["container"], outputs, pipeline_parameters,
                f"{pipeline_root.rstrip('/')}/{spec['pipelineInfo']['name']}/{run_id}",
                run_dir / name)
        else:
            raise TaskFailed(f"Task {name}: {sorted(executor)} executors are not run by "
                             "open-source Kubeflow Pipelines.")
    return outputs


def _imported_artifact(importer: dict, pipeline_parameters: dict[str, Any]) -> dict:
    source = importer["artifactUri"]
    uri = (source["constant"] if "constant" in source
           else pipeline_parameters[source["runtimeParameter"]])
    return {"name": f"imported/{uri}", "type": importer["typeSchema"], "uri": uri,
            "metadata": importer.get("metadata", {})}


def _run_container(name: str, task: dict, component: dict, container: dict,
                   outputs: dict[str, dict[str, dict]], pipeline_parameters: dict[str, Any],
                   run_root: str, task_dir: Path) -> dict[str, dict]:
    task_dir.mkdir(parents=True, exist_ok=True)
    output_file = task_dir / "executor_output.json"
    input_artifacts = {}
    for key, source in task.get("inputs", {}).get("artifacts", {}).items():
        producer = source["taskOutputArtifact"]
        input_artifacts[key] = {"artifacts": [
            outputs[producer["producerTask"]][producer["outputArtifactKey"]]]}
    output_artifacts = {
        key: {"artifacts": [{"name": f"{run_root}/{name}/{key}", "type": definition["artifactType"],
                             "uri": f"{run_root}/{name}/{key}", "metadata": {}}]}
        for key, definition in component.get("outputDefinitions", {}).get("artifacts", {}).items()}
    executor_input = {
        "inputs": {"parameterValues": parameter_values(task, pipeline_parameters),
                   "artifacts": input_artifacts},
        "outputs": {"artifacts": output_artifacts, "outputFile": str(output_file)},
    }
    executor_input_json = json.dumps(executor_input)
    command = [_fill(part, executor_input_json)
               for part in container["command"] + container["args"]]
    if command[0] == "python":
        command[0] = sys.executable
    log_file = task_dir / "log.txt"
    with open(log_file, "w") as log:
        result = subprocess.run(command, cwd=task_dir, stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, **image_environment()})
    if result.returncode != 0:
        tail = log_file.read_text()[-3000:]
        raise TaskFailed(f"Task {name} exited {result.returncode} (log: {log_file}):\n{tail}")
    written = json.loads(output_file.read_text()) if output_file.exists() else {}
    produced = {}
    for key, artifact_list in output_artifacts.items():
        [artifact] = artifact_list["artifacts"]
        [reported] = written.get("artifacts", {}).get(key, {}).get("artifacts", [{}])
        produced[key] = {**artifact, "metadata": reported.get("metadata", {})}
    return produced


def _fill(argument: str, executor_input_json: str) -> str:
    unknown = set(re.findall(r"\{\{\$[^}]*\}\}", argument)) - {EXECUTOR_INPUT_PLACEHOLDER}
    if unknown:
        raise TaskFailed(f"Placeholders this check does not fill: {sorted(unknown)}")
    return argument.replace(EXECUTOR_INPUT_PLACEHOLDER, executor_input_json)


def main(argv: list[str]) -> int:
    from kubeflow.runner import compile_pipeline
    from pipeline.config import PipelineConfig

    parser = argparse.ArgumentParser(prog="python -m kubeflow.contract_run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec-dir", default=os.path.join("outputs", "kubeflow-local"))
    args = parser.parse_args(argv)
    # The explicit switch: this spec names this machine's paths, for this check alone.
    config = PipelineConfig.from_env()
    config.check_data_root_exists()
    spec_file = compile_pipeline(config, args.spec_dir, allow_local_paths=True)
    print(f"Compiled {spec_file}; running its tasks under KFP's execution contract...")
    outputs = run_spec(spec_file, config.pipeline_root)
    blessing = outputs["Evaluator"]["blessing"]["metadata"]
    pushed = outputs["Pusher"]["pushed_model"]["metadata"]
    print(f"Blessed: {bool(blessing.get('blessed'))}; baseline: "
          f"{blessing.get('baseline_model') or 'none'}; pushed: "
          f"{pushed.get('pushed_destination') or 'nothing'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
