"""Runs a compiled KFP v2 spec on this machine as open-source Kubeflow Pipelines would.

    make kubeflow-local    # = python -m kubeflow.contract_run: compile with local paths, run
    PUBLISH_LOGS=false make kubeflow-local    # as KFP 2.4, or an API server that sets it so

A check of our spec, not an orchestrator: the tasks run in dependency order, each as
KFP's launcher starts a container (the executor's exact `command` and `args` from the
spec, `{{$}}` replaced by the ExecutorInput JSON, in the environment kubeflow/Dockerfile
sets), and artifacts travel between tasks as KFP's driver and launcher carry them, through
ML Metadata. Each rule follows kubeflow/pipelines' backend at the tags named (2.4.0 and
2.17.0 agree unless a tag is given):

- Outputs are provisioned by the driver (backend/src/v2/driver/driver.go,
  provisionOutputs): `<pipeline root>/<pipeline>/<run id>/<task>/<salt>/<output>` (the run's
  root from metadata/client.go GetPipeline, the URI from GenerateOutputURI), with the
  component's declared type; from 2.5.0, with the API server's PUBLISH_LOGS (default
  true), also an `executor-logs` output of type `system.Artifact`, into which the launcher
  tees the task's output (component/launcher_v2.go, getLogWriter).
- After the task, the launcher merges what the executor output file says of each output
  (launcher_v2.go, uploadOutputArtifacts and mergeRuntimeArtifacts: its URI, its
  metadata keys) and records it in MLMD (metadata/client.go, RecordArtifact): metadata
  through converter.go's StructValueToMLMDValue (strings stay, numbers become doubles,
  bools ints, lists `{"list": ...}` and structs `{"struct": ...}`; null fails the task),
  plus `display_name` and `store_session_info`.
- A consumer's input artifacts are read back from MLMD (metadata/client.go,
  GetOutputArtifactsByExecutionId, `Schema: ""`; OutputArtifact.ToRuntimeArtifact;
  converter.go toRuntimeArtifact): named by their MLMD id, typed by an empty
  `instanceSchema`, every number a double.
- Parameters: constants and pipeline parameters (driver.go, resolveInputs).

Every task runs: as on KFP's first run, no cache entry exists. The image's Python is this
one (same lock); `python` in a command means it. The executor output file is the task's
own (in a pod, /tmp/kfp_outputs/output_metadata.json). Each task's ExecutorInput, executor
output and log are kept in the run's folder.

With `--kfp-driver` (a binary of kubeflow/kfp_driver/, built from kubeflow/pipelines'
source: the Go module proxy does not serve it) the rules above are not imitated: KFP's own
driver code builds each ExecutorInput from a real MLMD server, and records the outputs as
its launcher does. tests/test_kfp_driver_records.py replays what it recorded (in
tests/testdata/kfp_driver/) against the imitation and kubeflow/entrypoint.py.
"""
import argparse
import contextlib
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from kubeflow import object_store
from kubeflow.image import DOCKERFILE, REPO

# Placeholders this runner fills; a spec using others fails the check loudly.
EXECUTOR_INPUT_PLACEHOLDER = "{{$}}"
# Each task's ExecutorInput, beside its log and executor output.
EXECUTOR_INPUT_FILE = "executor_input.json"
# The output the driver adds to every task from KFP 2.5.0 (driver.go, provisionOutputs).
LOGS_OUTPUT = "executor-logs"
LOGS_TYPE = {"schemaTitle": "system.Artifact"}


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


def mlmd_value(value: Any, key: str) -> tuple[str, Any]:
    """A metadata value as MLMD stores it (converter.go, StructValueToMLMDValue)."""
    if isinstance(value, bool):
        return "int_value", int(value)
    if isinstance(value, str):
        return "string_value", value
    if isinstance(value, (int, float)):
        return "double_value", float(value)
    if isinstance(value, list):
        return "struct_value", {"list": value}
    if isinstance(value, dict):
        return "struct_value", {"struct": value}
    raise TaskFailed(f"unable to produce MLMD artifact for output: metadata {key!r} is "
                     f"{value!r}: unknown/unsupported value type (KFP's launcher refuses "
                     "null)")


def runtime_value(kind: str, value: Any) -> Any:
    """An MLMD value as the driver hands it on (converter.go, toRuntimeArtifact)."""
    return float(value) if kind == "int_value" else value


@dataclass
class MetadataStore:
    """The artifacts KFP's launcher recorded, as its driver reads them back."""
    artifacts: dict[int, dict] = field(default_factory=dict)
    ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    def record(self, output_name: str, artifact: dict) -> int:
        """metadata/client.go RecordArtifact, of the launcher's merged output artifact."""
        properties = {key: mlmd_value(value, key)
                      for key, value in artifact.get("metadata", {}).items()}
        properties.setdefault("display_name", ("string_value", output_name))
        properties.setdefault("store_session_info", ("string_value", STORE_SESSION_INFO))
        artifact_id = next(self.ids)
        self.artifacts[artifact_id] = {"uri": artifact["uri"], "properties": properties}
        return artifact_id

    def input_artifact(self, artifact_id: int) -> dict:
        """GetOutputArtifactsByExecutionId + ToRuntimeArtifact: the schema is lost."""
        recorded = self.artifacts[artifact_id]
        return {"name": str(artifact_id), "type": {"instanceSchema": ""},
                "uri": recorded["uri"],
                "metadata": {key: runtime_value(kind, value)
                             for key, (kind, value) in recorded["properties"].items()}}


# The launcher records objectstore.SessionInfo as JSON: the store's provider, endpoint and
# Secret. Nothing of ours reads it (kubeflow/entrypoint.py drops it): one stand-in value.
STORE_SESSION_INFO = json.dumps({"Provider": "", "Params": None})


class ImitatedKfp:
    """KFP's driver and launcher, imitated by the rules in this module's docstring."""

    def __init__(self, spec: dict, run_id: str, pipeline_root: str,
                 parameters: dict[str, Any], publish_logs: bool):
        self.spec, self.parameters, self.publish_logs = spec, parameters, publish_logs
        self.run_root = f"{pipeline_root.rstrip('/')}/{spec['pipelineInfo']['name']}/{run_id}"
        self.store = MetadataStore()
        self.recorded: dict[str, dict[str, int]] = {}

    def executor_input(self, name: str, output_file: Path) -> dict:
        """The ExecutorInput the driver builds for a container task (driver.go Container)."""
        task = self.spec["root"]["dag"]["tasks"][name]
        component = self.spec["components"][task["componentRef"]["name"]]
        input_artifacts = {}
        for key, source in task.get("inputs", {}).get("artifacts", {}).items():
            producer = source["taskOutputArtifact"]
            artifact_id = self.recorded[producer["producerTask"]][producer["outputArtifactKey"]]
            input_artifacts[key] = {"artifacts": [self.store.input_artifact(artifact_id)]}
        declared = dict(component.get("outputDefinitions", {}).get("artifacts", {}))
        if self.publish_logs:
            declared[LOGS_OUTPUT] = {"artifactType": LOGS_TYPE}
        salt = str(uuid.uuid4())  # uuid.NewString(), as the driver salts its outputs
        output_artifacts = {
            key: {"artifacts": [{"uri": f"{self.run_root}/{name}/{salt}/{key}",
                                 "type": definition["artifactType"],
                                 **({"metadata": definition["metadata"]}
                                    if "metadata" in definition else {})}]}
            for key, definition in declared.items()}
        return {"inputs": {"parameterValues": parameter_values(task, self.parameters),
                           "artifacts": input_artifacts},
                "outputs": {"artifacts": output_artifacts, "outputFile": str(output_file)}}

    def record(self, name: str, executor_input: dict) -> None:
        """What the launcher records of a task that succeeded (uploadOutputArtifacts)."""
        output_file = Path(executor_input["outputs"]["outputFile"])
        written = json.loads(output_file.read_text()) if output_file.exists() else {}
        self.recorded[name] = {}
        for key, artifact_list in executor_input["outputs"]["artifacts"].items():
            [artifact] = artifact_list["artifacts"]
            reported = written.get("artifacts", {}).get(key, {}).get("artifacts", [{}])[0]
            merged = {"uri": reported.get("uri") or artifact["uri"],
                      "metadata": {**artifact.get("metadata", {}),
                                   **reported.get("metadata", {})}}
            self.recorded[name][key] = self.store.record(key, merged)

    def import_artifact(self, name: str, importer: dict) -> None:
        source = importer["artifactUri"]
        uri = (source["constant"] if "constant" in source
               else self.parameters[source["runtimeParameter"]])
        self.recorded[name] = {"artifact": self.store.record(
            "artifact", {"uri": uri, "metadata": importer.get("metadata", {})})}

    def outputs(self) -> dict[str, dict[str, dict]]:
        """{task: {output: the artifact its consumers receive}}."""
        return {task: {key: self.store.input_artifact(artifact_id)
                       for key, artifact_id in outputs.items()}
                for task, outputs in self.recorded.items()}


class KfpDriver:
    """KFP's own driver code (kubeflow/kfp_driver/, built from kubeflow/pipelines' source)
    against a real MLMD server (kubeflow/mlmd_server.py): the ExecutorInput each task gets
    is the one KFP builds, and its outputs are recorded as KFP's launcher records them."""

    def __init__(self, binary: str, mlmd_address: str, spec_file: str, run_id: str,
                 pipeline_root: str, parameters: dict[str, Any], publish_logs: bool):
        self.binary, self.publish_logs = binary, publish_logs
        self.common = ["--mlmd", mlmd_address, "--spec", spec_file, "--run-id", run_id]
        self.as_input: dict[str, dict[str, dict]] = {}
        self.executions: dict[str, int] = {}
        self.dag_execution_id = self._call(
            "root-dag", "--pipeline-root", pipeline_root,
            *[arg for name, value in parameters.items()
              for arg in ("--param", f"{name}={value if isinstance(value, str) else json.dumps(value)}")]
        )["execution_id"]

    def _call(self, command: str, *args: str) -> dict:
        result = subprocess.run([self.binary, command, *self.common, *args],
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise TaskFailed(f"KFP's {command} driver refused: {result.stderr[-3000:]}")
        return json.loads(result.stdout)

    def executor_input(self, name: str, output_file: Path) -> dict:
        driven = self._call("container", "--task", name, "--dag-execution-id",
                            str(self.dag_execution_id),
                            *(["--publish-logs=true"] if self.publish_logs else []))
        self.executions[name] = driven["execution_id"]
        executor_input = driven["launcher_executor_input"]
        # The pod's own path (/tmp/kfp_outputs/... or /gcs/...): this task's folder here.
        executor_input["outputs"]["outputFile"] = str(output_file)
        return executor_input

    def record(self, name: str, executor_input: dict) -> None:
        input_file = Path(executor_input["outputs"]["outputFile"]).with_name(EXECUTOR_INPUT_FILE)
        published = self._call("publish", "--task", name, "--execution-id",
                               str(self.executions[name]), "--executor-input", str(input_file),
                               "--executor-output", executor_input["outputs"]["outputFile"])
        self.as_input[name] = {key: artifact["as_input"]
                               for key, artifact in published["output_artifacts"].items()}

    def import_artifact(self, name: str, importer: dict) -> None:
        imported = self._call("importer", "--task", name, "--dag-execution-id",
                              str(self.dag_execution_id))
        self.as_input[name] = {key: artifact["as_input"]
                               for key, artifact in imported["output_artifacts"].items()}

    def outputs(self) -> dict[str, dict[str, dict]]:
        return self.as_input


def read_spec(spec_file: str) -> tuple[dict, dict]:
    """The pipeline spec and its Kubernetes platform spec ({} when there is none): the
    two YAML documents of a compiled spec file, as KFP's API server reads them."""
    documents = [document for document in yaml.safe_load_all(Path(spec_file).read_text())
                 if document]
    spec, *platform = documents
    return spec, (platform[0] if platform else {})


def run_spec(spec_file: str, pipeline_root: str, log_dir: str,
             parameters: Optional[dict[str, Any]] = None, publish_logs: bool = True,
             secrets: Optional[dict[str, dict[str, str]]] = None,
             kfp_driver: Optional[str] = None) -> dict[str, dict[str, dict]]:
    """Runs every task of the spec, each task's log, ExecutorInput and executor output
    under `log_dir`; returns {task: {output name: the artifact its consumers receive}}.

    `publish_logs`: the API server's PUBLISH_LOGS (the driver's --publish_logs), true by
    default from KFP 2.5.0; false is KFP 2.4.0. `secrets`: the namespace's Kubernetes
    Secrets ({name: {key: value}}) that the platform spec gives the pods as environment.
    `kfp_driver`: a kfp-driver binary (`make kfp-driver`): KFP's own driver, with a real
    MLMD server, in place of this module's imitation (which then needs a pipeline root on
    an object store, as KFP does).
    """
    spec, platform = read_spec(spec_file)
    executor_configs = (platform.get("platforms", {}).get("kubernetes", {})
                        .get("deploymentSpec", {}).get("executors", {}))
    run_id = f"local-{uuid.uuid4().hex[:8]}"
    pipeline_parameters = {name: definition.get("defaultValue") for name, definition in
                           spec["root"].get("inputDefinitions", {}).get("parameters", {}).items()}
    pipeline_parameters.update(parameters or {})
    run_dir = Path(log_dir) / run_id
    with contextlib.ExitStack() as stack:
        if kfp_driver:
            from kubeflow.mlmd_server import running_server
            mlmd_address = stack.enter_context(running_server())
            kfp = KfpDriver(kfp_driver, mlmd_address, spec_file, run_id, pipeline_root,
                            parameters or {}, publish_logs)
        else:
            kfp = ImitatedKfp(spec, run_id, pipeline_root, pipeline_parameters, publish_logs)
        tasks = spec["root"]["dag"]["tasks"]
        for name in task_order(tasks):
            component = spec["components"][tasks[name]["componentRef"]["name"]]
            executor = spec["deploymentSpec"]["executors"][component["executorLabel"]]
            if "importer" in executor:
                kfp.import_artifact(name, executor["importer"])
            elif "container" in executor:
                task_dir = run_dir / name
                task_dir.mkdir(parents=True, exist_ok=True)
                executor_input = kfp.executor_input(name, task_dir / "executor_output.json")
                (task_dir / EXECUTOR_INPUT_FILE).write_text(json.dumps(executor_input, indent=1))
                environment = pod_environment(
                    executor["container"], executor_configs.get(component["executorLabel"], {}),
                    secrets or {})
                _run_container(name, executor["container"], executor_input, task_dir,
                               environment)
                kfp.record(name, executor_input)
            else:
                raise TaskFailed(f"Task {name}: {sorted(executor)} executors are not run by "
                                 "open-source Kubeflow Pipelines.")
        return kfp.outputs()


def pod_environment(container: dict, kubernetes_config: dict,
                    secrets: dict[str, dict[str, str]]) -> dict[str, str]:
    """The environment KFP gives a task's pod beside the image's: the container's `env`
    (driver.go, initPodSpecPatch) and the platform spec's `secretAsEnv` entries
    (extendPodSpecPatch: each key of the named Secret as a variable)."""
    environment = {variable["name"]: variable["value"] for variable in container.get("env", [])}
    for secret in kubernetes_config.get("secretAsEnv", []):
        name = secret["secretName"]
        if name not in secrets:
            raise TaskFailed(f"The pod's Secret {name!r} does not exist (Kubernetes: "
                             "CreateContainerConfigError): give it in `secrets`.")
        for key_to_env in secret["keyToEnv"]:
            environment[key_to_env["envVar"]] = secrets[name][key_to_env["secretKey"]]
    return environment


def _run_container(name: str, container: dict, executor_input: dict, task_dir: Path,
                   environment: dict[str, str]) -> None:
    """Runs the task's container command as the launcher does (launcher_v2.go, execute)."""
    executor_input_json = json.dumps(executor_input)
    command = [_fill(part, executor_input_json)
               for part in container["command"] + container["args"]]
    if command[0] == "python":
        command[0] = sys.executable
    log_file = task_dir / "log.txt"
    with open(log_file, "w") as log:
        result = subprocess.run(command, cwd=task_dir, stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, **image_environment(), **environment})
    output_artifacts = executor_input["outputs"]["artifacts"]
    if LOGS_OUTPUT in output_artifacts:
        _write_logs(log_file, output_artifacts[LOGS_OUTPUT]["artifacts"][0]["uri"], environment)
    if result.returncode != 0:
        tail = log_file.read_text()[-3000:]
        raise TaskFailed(f"Task {name} exited {result.returncode} (log: {log_file}):\n{tail}")


def _write_logs(log_file: Path, uri: str, environment: dict[str, str]) -> None:
    """What the launcher's log writer leaves at the executor-logs URI (getLogWriter):
    uploaded by an S3 client of its own with the pod's settings, as the launcher's is."""
    if not object_store.is_object_store_uri(uri):
        Path(uri).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(log_file, uri)
        return
    import boto3

    bucket, key = object_store.tensorflow_uri(uri)[len("s3://"):].split("/", 1)
    client = boto3.client("s3", endpoint_url=environment.get("AWS_ENDPOINT_URL_S3"),
                          region_name=environment.get("AWS_REGION"),
                          aws_access_key_id=environment.get("AWS_ACCESS_KEY_ID"),
                          aws_secret_access_key=environment.get("AWS_SECRET_ACCESS_KEY"))
    client.upload_file(str(log_file), bucket, key)


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
    parser.add_argument("--publish-logs", choices=("true", "false"),
                        default=os.environ.get("PUBLISH_LOGS", "true"),
                        help="the API server's PUBLISH_LOGS: true adds the driver's "
                             "executor-logs output to every task, as KFP 2.5 and later do "
                             "by default; false is KFP 2.4 (default: $PUBLISH_LOGS, else true)")
    parser.add_argument("--kfp-driver", default=os.environ.get("KFP_DRIVER"),
                        help="a kfp-driver binary (make kfp-driver KFP_SRC=...): KFP's own "
                             "driver instead of this module's imitation (default: $KFP_DRIVER)")
    parser.add_argument("--secret", nargs="+", action="append", default=[],
                        metavar=("NAME", "KEY=VALUE"),
                        help="a Kubernetes Secret the spec's platform config gives the pods, "
                             "e.g. --secret mlpipeline-minio-artifact accesskey=... "
                             "secretkey=... for a minio:// OUTPUT_DIR (repeatable)")
    args = parser.parse_args(argv)
    secrets = {name: dict(item.split("=", 1) for item in items)
               for name, *items in args.secret}
    # The explicit switch: this spec names this machine's paths, for this check alone.
    config = PipelineConfig.from_env()
    config.check_data_root_exists()
    spec_file = compile_pipeline(config, args.spec_dir, allow_local_paths=True)
    print(f"Compiled {spec_file}; running its tasks under KFP's execution contract...")
    outputs = run_spec(spec_file, config.pipeline_root, os.path.join(args.spec_dir, "runs"),
                       publish_logs=args.publish_logs == "true", secrets=secrets,
                       kfp_driver=args.kfp_driver)
    blessing = outputs["Evaluator"]["blessing"]["metadata"]
    pushed = outputs["Pusher"]["pushed_model"]["metadata"]
    print(f"Publish logs: {args.publish_logs}. Blessed: {bool(blessing.get('blessed'))}; baseline: "
          f"{blessing.get('baseline_model') or 'none'}; pushed: "
          f"{pushed.get('pushed_destination') or 'nothing'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
