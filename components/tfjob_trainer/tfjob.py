"""A TFJob (Kubeflow Training Operator, kubeflow.org/v1): its manifest, and the calls that
create it, follow it to its end and delete it.

The operator starts one pod per worker and sets each one's TF_CONFIG (the cluster's
addresses and the pod's own task), which MultiWorkerMirroredStrategy reads; worker 0 is
the chief.

The job behaves like the pipeline's own pods and does not outlive its task: its workers
run as the launching pod's service account, without an Istio sidecar, and the job is
owned by the launching pod (Kubernetes deletes it when the pod goes), has a deadline and
a TTL after it finishes. The task deletes it at its end, whatever the end; a transient API
error is retried, never taken for the job's end.
"""
import os
import time
from typing import Callable, Optional

import urllib3
from absl import logging
from kubernetes import client, config as kubernetes_config
from kubernetes.client.rest import ApiException

GROUP, VERSION, PLURAL = "kubeflow.org", "v1", "tfjobs"
# The operator sets TF_CONFIG in the container of this name only.
CONTAINER_NAME = "tensorflow"
# A failed worker's pod is restarted, then the whole job fails after this many restarts.
# Under MultiWorkerMirroredStrategy a worker's death fails the others too (their
# collectives lose a peer); restarted, all resume from the last epoch's backup.
BACKOFF_LIMIT = 3
FINISHED = ("Succeeded", "Failed")
NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
# KFP's compiler gives every task's container its pod's name (downward API,
# backend/src/v2/compiler/argocompiler/container.go); TFX's kube_utils reads it too.
POD_NAME_ENV = "KFP_POD_NAME"
# KFP's own pods carry this label and annotation (backend/src/apiserver/template/
# v2_template.go): in Istio-injected profile namespaces a sidecar would keep the workers
# from reaching each other, and a finished pod from ending (kubeflow/trainer#1148).
NO_ISTIO_SIDECAR = {"sidecar.istio.io/inject": "false"}
# Transient API errors: retried this many times, waiting 1, 2, 4... up to 60 s between.
API_TRIES, API_BACKOFF_MAX_S = 6, 60.0
API_TIMEOUT_S = 60  # each request's; the client sets none
TRANSIENT_ERRORS = (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError)


def tfjob_manifest(name: str, namespace: str, image: str, command: list[str], workers: int,
                   resources: dict[str, dict[str, str]], labels: dict[str, str],
                   active_deadline_s: int, ttl_s: int, service_account: Optional[str] = None,
                   owner: Optional[dict] = None) -> dict:
    """A TFJob of `workers` identical workers, each running `command` in `image`, as
    `service_account` (else the namespace's default), owned by `owner` (an ownerReference)."""
    pod_spec = {"containers": [{"name": CONTAINER_NAME, "image": image, "command": command,
                                "resources": resources}]}
    if service_account:
        pod_spec["serviceAccountName"] = service_account
    metadata = {"name": name, "namespace": namespace, "labels": labels}
    if owner:
        metadata["ownerReferences"] = [owner]
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TFJob",
        "metadata": metadata,
        "spec": {
            "runPolicy": {"backoffLimit": BACKOFF_LIMIT, "cleanPodPolicy": "Running",
                          "activeDeadlineSeconds": active_deadline_s,
                          "ttlSecondsAfterFinished": ttl_s},
            "tfReplicaSpecs": {
                "Worker": {
                    "replicas": workers,
                    "restartPolicy": "OnFailure",
                    "template": {
                        "metadata": {"labels": {**labels, **NO_ISTIO_SIDECAR},
                                     "annotations": dict(NO_ISTIO_SIDECAR)},
                        "spec": pod_spec,
                    },
                },
            },
        },
    }


def launching_pod(api_client: client.ApiClient, namespace: str) -> Optional[dict]:
    """The pod this runs in, as the API has it (None outside a KFP task's pod).

    Read from the API rather than the service-account token's claims: the pod's spec is
    where its account is set, whatever the token's format or mount, and the owner reference
    needs the pod's uid, which only the pod's metadata holds for certain.
    """
    name = os.environ.get(POD_NAME_ENV)
    if not name:
        return None
    return call(lambda: client.CoreV1Api(api_client).read_namespaced_pod(
        name, namespace, _request_timeout=API_TIMEOUT_S)).to_dict()


def owner_reference(pod: dict) -> dict:
    """An ownerReference to the pod: Kubernetes' garbage collector deletes what it owns."""
    return {"apiVersion": "v1", "kind": "Pod", "name": pod["metadata"]["name"],
            "uid": pod["metadata"]["uid"]}


def current_namespace() -> str:
    """The namespace of the pod this runs in, else of the kubeconfig's current context."""
    if os.path.exists(NAMESPACE_FILE):
        with open(NAMESPACE_FILE) as file:
            return file.read().strip()
    _, context = kubernetes_config.list_kube_config_contexts()
    return context["context"].get("namespace", "default")


def kubernetes_api() -> client.ApiClient:
    """The cluster's API: in a pod through its service account, else from kubeconfig."""
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        kubernetes_config.load_incluster_config()
    else:
        kubernetes_config.load_kube_config()
    return client.ApiClient()


def is_transient(error: Exception) -> bool:
    """An API error that a later try may not meet: the server's (5xx), too many requests,
    a timeout or a connection reset."""
    if isinstance(error, ApiException):
        return error.status == 429 or error.status >= 500
    return isinstance(error, TRANSIENT_ERRORS)


def call(request: Callable, sleep: Callable[[float], None] = time.sleep):
    """request(), tried again after a transient error, up to API_TRIES times in all."""
    for attempt in range(API_TRIES):
        try:
            return request()
        except Exception as error:  # is_transient sorts them
            if not is_transient(error) or attempt == API_TRIES - 1:
                raise
            wait_s = min(2.0 ** attempt, API_BACKOFF_MAX_S)
            logging.warning("Kubernetes API: %s; trying again in %.0f s.",
                            getattr(error, "reason", None) or error, wait_s)
            sleep(wait_s)


def condition(tfjob: dict, kinds=FINISHED) -> dict | None:
    """The job's newest true condition among `kinds` (e.g. Succeeded, Failed), if any."""
    true = [c for c in tfjob.get("status", {}).get("conditions", [])
            if c.get("type") in kinds and c.get("status") == "True"]
    return true[-1] if true else None


def run_tfjob(api_client: client.ApiClient, manifest: dict, pending_deadline_s: float,
              poll_s: float = 10.0, sleep: Callable[[float], None] = time.sleep,
              clock: Callable[[], float] = time.monotonic) -> dict:
    """Creates the job, follows it to its end and deletes it, whatever the end.

    Returns the finished job. Raises RuntimeError naming the job and the operator's
    reason when it failed, or the scheduler's when its workers waited for nodes longer
    than pending_deadline_s.
    """
    api = client.CustomObjectsApi(api_client)
    namespace, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
    job = (GROUP, VERSION, namespace, PLURAL)
    try:
        # Inside the try: a task stopped while the request is under way deletes the job.
        call(lambda: api.create_namespaced_custom_object(
            *job, manifest, _request_timeout=API_TIMEOUT_S), sleep)
        logging.info("Created TFJob %s/%s: %d workers.", namespace, name,
                     manifest["spec"]["tfReplicaSpecs"]["Worker"]["replicas"])
        created_at, last_state, started = clock(), None, False
        while True:
            tfjob = call(lambda: api.get_namespaced_custom_object(
                *job, name, _request_timeout=API_TIMEOUT_S), sleep)
            state = _state(tfjob)
            if state != last_state:
                logging.info("TFJob %s: %s", name, state)
                last_state = state
            finished = condition(tfjob)
            if finished:
                break
            # Once running, a restart's pending pods wait on no deadline but the job's own.
            started = started or condition(tfjob, ("Running",)) is not None
            if not started and clock() - created_at > pending_deadline_s:
                raise RuntimeError(
                    f"TFJob {namespace}/{name} still pending after {pending_deadline_s:.0f} s: "
                    f"{_why_pending(api_client, namespace, name, sleep)}")
            sleep(poll_s)
    finally:
        # Pods and services go with the job (foreground deletion waits for them).
        try:
            call(lambda: api.delete_namespaced_custom_object(
                *job, name, body=client.V1DeleteOptions(propagation_policy="Foreground"),
                _request_timeout=API_TIMEOUT_S), sleep)
            logging.info("Deleted TFJob %s/%s.", namespace, name)
        except ApiException as error:
            if error.status != 404:  # never created
                raise
    if finished["type"] == "Failed":
        raise RuntimeError(f"TFJob {namespace}/{name} failed: {finished.get('reason', '')}: "
                           f"{finished.get('message', '')}")
    return tfjob


def _why_pending(api_client: client.ApiClient, namespace: str, name: str,
                 sleep: Callable[[float], None]) -> str:
    """What keeps the job's workers pending: the scheduler's reason on each pod
    (PodScheduled False, e.g. "Unschedulable: 0/4 nodes are available: 4 Insufficient
    nvidia.com/gpu."), or that the operator made no pod."""
    pods = call(lambda: client.CoreV1Api(api_client).list_namespaced_pod(
        namespace, label_selector=f"training.kubeflow.org/job-name={name}",
        _request_timeout=API_TIMEOUT_S), sleep).items
    reasons = [f"pod {pod.metadata.name}: {c.reason}: {c.message}" for pod in pods
               for c in (pod.status.conditions or [])
               if c.type == "PodScheduled" and c.status == "False"]
    if reasons:
        return "; ".join(reasons)
    return (f"{len(pods)} pods, all scheduled (pulling images?)" if pods
            else "the operator made no pods (is the Training Operator running?)")


def _state(tfjob: dict) -> str:
    """The newest condition and the workers' counts, e.g. "Running (active 2)"."""
    conditions = [c for c in tfjob.get("status", {}).get("conditions", [])
                  if c.get("status") == "True"]
    workers = tfjob.get("status", {}).get("replicaStatuses", {}).get("Worker", {})
    counts = ", ".join(f"{key} {value}" for key, value in sorted(workers.items())
                       if isinstance(value, int))
    newest = conditions[-1]["type"] if conditions else "Pending"
    return f"{newest} ({counts})" if counts else newest
