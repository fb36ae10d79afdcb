"""A TFJob (Kubeflow Training Operator, kubeflow.org/v1): its manifest, and the calls that
create it, follow it to its end and delete it.

The operator starts one pod per worker and sets each one's TF_CONFIG (the cluster's
addresses and the pod's own task), which MultiWorkerMirroredStrategy reads; worker 0 is
the chief.
"""
import os
import time
from typing import Callable

from absl import logging
from kubernetes import client, config as kubernetes_config

GROUP, VERSION, PLURAL = "kubeflow.org", "v1", "tfjobs"
# The operator sets TF_CONFIG in the container of this name only.
CONTAINER_NAME = "tensorflow"
# A failed worker's pod is restarted, then the whole job fails after this many restarts.
# Under MultiWorkerMirroredStrategy a worker's death fails the others too (their
# collectives lose a peer); restarted, all resume from the last epoch's backup.
BACKOFF_LIMIT = 3
FINISHED = ("Succeeded", "Failed")
NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def tfjob_manifest(name: str, namespace: str, image: str, command: list[str], workers: int,
                   resources: dict[str, dict[str, str]], labels: dict[str, str]) -> dict:
    """A TFJob of `workers` identical workers, each running `command` in `image`."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TFJob",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "runPolicy": {"backoffLimit": BACKOFF_LIMIT, "cleanPodPolicy": "Running"},
            "tfReplicaSpecs": {
                "Worker": {
                    "replicas": workers,
                    "restartPolicy": "OnFailure",
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {"containers": [{"name": CONTAINER_NAME, "image": image,
                                                 "command": command,
                                                 "resources": resources}]},
                    },
                },
            },
        },
    }


def current_namespace() -> str:
    """The namespace of the pod this runs in, else of the kubeconfig's current context."""
    if os.path.exists(NAMESPACE_FILE):
        with open(NAMESPACE_FILE) as file:
            return file.read().strip()
    _, context = kubernetes_config.list_kube_config_contexts()
    return context["context"].get("namespace", "default")


def kubernetes_api() -> client.CustomObjectsApi:
    """The cluster's API: in a pod through its service account, else from kubeconfig."""
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        kubernetes_config.load_incluster_config()
    else:
        kubernetes_config.load_kube_config()
    return client.CustomObjectsApi()


def condition(tfjob: dict, kinds=FINISHED) -> dict | None:
    """The job's newest true condition among `kinds` (e.g. Succeeded, Failed), if any."""
    true = [c for c in tfjob.get("status", {}).get("conditions", [])
            if c.get("type") in kinds and c.get("status") == "True"]
    return true[-1] if true else None


def run_tfjob(api: client.CustomObjectsApi, manifest: dict, poll_s: float = 10.0,
              sleep: Callable[[float], None] = time.sleep) -> dict:
    """Creates the job, follows it to its end and deletes it, whatever the end.

    Returns the finished job. Raises RuntimeError naming the job and the operator's
    reason when it failed.
    """
    namespace, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
    api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, manifest)
    logging.info("Created TFJob %s/%s: %d workers.", namespace, name,
                 manifest["spec"]["tfReplicaSpecs"]["Worker"]["replicas"])
    try:
        last_state = None
        while True:
            tfjob = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
            state = _state(tfjob)
            if state != last_state:
                logging.info("TFJob %s: %s", name, state)
                last_state = state
            finished = condition(tfjob)
            if finished:
                break
            sleep(poll_s)
    finally:
        # Pods and services go with the job (foreground deletion waits for them).
        api.delete_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name,
            body=client.V1DeleteOptions(propagation_policy="Foreground"))
        logging.info("Deleted TFJob %s/%s.", namespace, name)
    if finished["type"] == "Failed":
        raise RuntimeError(f"TFJob {namespace}/{name} failed: {finished.get('reason', '')}: "
                           f"{finished.get('message', '')}")
    return tfjob


def _state(tfjob: dict) -> str:
    """The newest condition and the workers' counts, e.g. "Running (active 2)"."""
    conditions = [c for c in tfjob.get("status", {}).get("conditions", [])
                  if c.get("status") == "True"]
    workers = tfjob.get("status", {}).get("replicaStatuses", {}).get("Worker", {})
    counts = ", ".join(f"{key} {value}" for key, value in sorted(workers.items())
                       if isinstance(value, int))
    newest = conditions[-1]["type"] if conditions else "Pending"
    return f"{newest} ({counts})" if counts else newest
