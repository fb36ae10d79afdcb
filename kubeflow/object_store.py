"""Kubeflow Pipelines' object store (MinIO, SeaweedFS or S3) for TensorFlow and Beam.

KFP's default pipeline root is `minio://mlpipeline/v2/artifacts` (kubeflow/pipelines
backend/src/v2/config/env.go, defaultPipelineRoot, tags 2.4.0 to 2.17.0): an S3 API
(MinIO up to 2.14, SeaweedFS from 2.15) that KFP's launcher reaches with the settings of
the `providers` key of the `kfp-launcher` ConfigMap, or its own defaults, and credentials
from a Secret. TFX reads and writes artifacts through TensorFlow's filesystems and
Beam's, which know `s3://` (tensorflow-io, boto3: both in the lock) but not `minio://`.

- `tensorflow_uri` / `kfp_uri`: `minio://bucket/key` <-> `s3://bucket/key`, one object.
- `launcher_store(uri, ...)`: how the launcher reaches `uri`, by its own rules (each
  cited where it is applied); `client_environment(store)`: the environment that points
  TensorFlow's and Beam's S3 clients the same way; `secret_as_env(store)`: the
  KubernetesExecutorConfig entry that gives a pod the credentials. kubeflow/runner.py
  writes both into the compiled spec, so every task's pod has them.
- `register_filesystems(document)`: TensorFlow's `s3://` in this process.
- `exit_process(status)`: the way out of a process that used it (below).

A process reads `s3://` with TensorFlow given that environment, set before its first
`s3://` access (tensorflow-io reads it when it creates its S3 client), and
`register_filesystems(...)` (that is, `import tensorflow_io`) before the first access.
tensorflow-io reports a refused request (wrong credentials) as a NotFoundError ("Could not
find directory"), not as a denial.

Beam's SDK worker processes (the DirectRunner's `multi_processing` workers, Flink's) get
the environment from the process that starts them but not the registration: the Beam
args then carry `--beam_plugins=tensorflow_io` (PipelineConfig.beam_pipeline_args),
which every SDK worker imports as it starts (apache_beam/runners/worker/sdk_worker_main.py,
create_harness -> _import_beam_plugins). Beam's own `s3://` filesystem (WriteToTFRecord,
ReadFromTFRecord...) is boto3's client (apache_beam/io/aws/clients/s3/boto3_client.py),
which reads the same environment.

tensorflow-io 0.37.1 (for TF 2.16, and its last release) aborts any process that used its
S3 filesystem as the process exits: "pure virtual method called", SIGABRT, status 134
(tensorflow/io#2039; fixed by tensorflow/io#2120, which no release holds). A program of
ours that used it ends with `exit_process`, which skips the C++ teardown that aborts. A
Beam SDK worker ends so after its work is done: the DirectRunner logs "Worker subprocess
exited with return code 134" (local_job_service.py, SubprocessSdkWorker.run, in a thread
of its own) and the pipeline's result stands.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import re
import sys
from typing import Any, Mapping, NoReturn, Optional

import yaml

from pipeline.config import OBJECT_STORE_SCHEMES

MINIO_SCHEME = "minio://"
S3_SCHEME = "s3://"
# KFP's default object store: its Secret and the Secret's keys (env.go,
# minioArtifactSecretName, minioArtifactAccessKeyKey, minioArtifactSecretKeyKey) and its
# region, a placeholder, as it has none (getDefaultMinioSessionInfo), 2.4.0 to 2.17.0.
DEFAULT_SECRET_NAME = "mlpipeline-minio-artifact"
DEFAULT_ACCESS_KEY_KEY = "accesskey"
DEFAULT_SECRET_KEY_KEY = "secretkey"
DEFAULT_REGION = "minio"
# The credentials' variables, as both S3 clients read them: tensorflow-io's (the default
# provider chain of aws-sdk-cpp 1.8.187, its WORKSPACE's pin) and boto3.
ACCESS_KEY_ENV = "AWS_ACCESS_KEY_ID"
SECRET_KEY_ENV = "AWS_SECRET_ACCESS_KEY"
# objectstore/config.go, ParseBucketPathToConfig: scheme, bucket, /key prefix, ?query.
_BUCKET_PATH = re.compile(r"(^[a-z][a-z0-9]+:///?)([^/?]+)(/[^?]*)?(\?.+)?$")
# objectstore/object_store.go, createS3BucketSession: AWS's global endpoint is left to the
# SDK, which finds the bucket's regional one.
_AWS_GLOBAL_ENDPOINT = re.compile(r"^(https://)?s3.amazonaws.com")


def tensorflow_uri(uri: str) -> str:
    """The URI TensorFlow and Beam open for a KFP one: `minio://b/k` -> `s3://b/k`.

    KFP's launcher opens `minio://` buckets with its S3 client (object_store.go,
    OpenBucket: s3blob for the "minio" provider): both name the same object. Any other
    URI or path is returned as it is."""
    if uri.startswith(MINIO_SCHEME):
        return S3_SCHEME + uri[len(MINIO_SCHEME):]
    return uri


def kfp_uri(uri: str, kfp_scheme: str = MINIO_SCHEME) -> str:
    """Back: `s3://b/k` as KFP names it under `kfp_scheme`, its pipeline root's."""
    if uri.startswith(S3_SCHEME):
        return kfp_scheme + uri[len(S3_SCHEME):]
    return uri


def is_object_store_uri(uri: str) -> bool:
    """Whether `uri` is on an S3 API: `minio://` or `s3://`."""
    return uri.startswith(OBJECT_STORE_SCHEMES)


@dataclasses.dataclass(frozen=True)
class ObjectStore:
    """How KFP's launcher reaches a bucket path: its objectstore.SessionInfo.

    No `secret_name`: the launcher takes the credentials (and for `s3://` with no
    providers entry, everything else too) from the pod's own environment ("fromEnv").
    Its forcePathStyle is not kept: the clients here address path-style only
    (client_environment)."""

    provider: str  # "minio" or "s3", the path's scheme
    endpoint: str = ""  # host:port or a URL; empty: the SDK's own (AWS)
    region: str = ""
    disable_ssl: bool = False
    secret_name: str = ""
    access_key_key: str = ""
    secret_key_key: str = ""


def launcher_store(uri: str, providers: str, default_endpoint: str) -> Optional[ObjectStore]:
    """How KFP's launcher reaches `uri` (None: not on an S3 API), given the `providers`
    YAML of the `kfp-launcher` ConfigMap ("" without one) and the endpoint of KFP's
    default store (PipelineConfig.kfp_object_store_endpoint: it moved in KFP 2.16)."""
    match = _BUCKET_PATH.match(uri)
    if not match or match.group(1) not in OBJECT_STORE_SCHEMES:
        return None
    scheme, bucket, key, query = match.groups()
    provider = scheme[:-len("://")]
    # env.go, getBucketProviders and GetStoreSessionInfo: the entry of the path's scheme.
    entry = _field(yaml.safe_load(providers) if providers else None, provider)
    default, overrides = _field(entry, "default"), _field(entry, "overrides") or []
    # minio.go, MinioProviderConfig.ProvideSessionInfo: no entry (and no query string):
    # KFP's own default store (env.go, getDefaultMinioSessionInfo).
    if provider == "minio" and not default and not overrides and not query:
        return ObjectStore(provider, endpoint=default_endpoint, region=DEFAULT_REGION,
                           disable_ssl=True, secret_name=DEFAULT_SECRET_NAME,
                           access_key_key=DEFAULT_ACCESS_KEY_KEY,
                           secret_key_key=DEFAULT_SECRET_KEY_KEY)
    # s3.go, S3ProviderConfig.ProvideSessionInfo (which reads a "minio" entry too): no
    # entry, or a query string, and all comes from the environment.
    if (not default and not overrides) or query:
        return ObjectStore(provider)
    if not _field(default, "credentials"):
        raise ValueError(f"Invalid kfp-launcher providers for {uri!r}: the {provider!r} "
                         "entry has no default credentials (KFP: \"missing default "
                         "credentials\").")
    store = ObjectStore(provider, endpoint=_field(default, "endpoint") or "",
                        region=_field(default, "region") or "",
                        disable_ssl=_flag(default, "disableSSL", False),
                        **_credentials(_field(default, "credentials"), uri))
    # getOverrideByPrefix: the first override of this bucket whose keyPrefix begins the
    # path's prefix (as ParseBucketPathToConfig makes it: no leading "/", a trailing one).
    prefix = (key or "").lstrip("/")
    prefix += "/" if prefix and not prefix.endswith("/") else ""
    override = next((item for item in overrides if _field(item, "bucketName") == bucket
                     and prefix.startswith(_field(item, "keyPrefix") or "")), None)
    if override is None:
        return store
    if not _field(override, "credentials"):
        raise ValueError(f"Invalid kfp-launcher providers for {uri!r}: its override has "
                         "no credentials (KFP: \"missing override credentials\").")
    return dataclasses.replace(
        store, endpoint=_field(override, "endpoint") or store.endpoint,
        region=_field(override, "region") or store.region,
        disable_ssl=_flag(override, "disableSSL", store.disable_ssl),
        **_credentials(_field(override, "credentials"), uri))


def client_environment(store: ObjectStore) -> dict[str, str]:
    """The environment that points tensorflow-io's and boto3's S3 clients at `store` as
    the launcher's aws-sdk-go session is (object_store.go, createS3BucketSession).

    - The endpoint as a URL whose scheme says disableSSL: tensorflow-io 0.37.1 hands
      S3_ENDPOINT to the SDK's OverrideEndpoint, which keeps a URL's scheme and puts https
      before a bare host (against a plain-http store: a minute of retries, then "not
      found"), and it reads no S3_USE_HTTPS (tensorflow_io/core/filesystems/s3/
      s3_filesystem.cc: GetS3Client, GetDefaultClientConfig). boto3: AWS_ENDPOINT_URL_S3.
    - The region: AWS_REGION (aws-sdk-cpp) and AWS_DEFAULT_REGION (boto3).
    - Addressing is path-style (`endpoint/bucket/key`) in both: tensorflow-io creates its
      client with useVirtualAddressing=false (GetS3Client), and boto3 addresses a bucket
      so under an endpoint URL it is given. KFP's forcePathStyle=false is not honoured;
      S3 itself serves both styles.
    - Off AWS, boto3's checksums only where an operation requires one: from 1.36 it sends
      and checks CRC checksums (botocore/configprovider.py, request_checksum_calculation,
      response_checksum_validation) that S3 APIs older than that do not know, KFP 2.4's
      MinIO of 2019 among them; the launcher's aws-sdk-go v1 sends none.
    - No S3_VERIFY_SSL=0: the launcher verifies certificates too.
    """
    environment = {}
    if store.endpoint and not _AWS_GLOBAL_ENDPOINT.match(store.endpoint.lower()):
        endpoint = (store.endpoint if "://" in store.endpoint
                    else ("http://" if store.disable_ssl else "https://") + store.endpoint)
        environment.update(S3_ENDPOINT=endpoint, AWS_ENDPOINT_URL_S3=endpoint,
                           AWS_REQUEST_CHECKSUM_CALCULATION="when_required",
                           AWS_RESPONSE_CHECKSUM_VALIDATION="when_required")
    if store.region:
        environment.update(AWS_REGION=store.region, AWS_DEFAULT_REGION=store.region)
    return environment


def secret_as_env(store: ObjectStore) -> list[dict[str, Any]]:
    """The store's credentials as the `secretAsEnv` of a task's KubernetesExecutorConfig
    (kubernetes_platform/proto/kubernetes_executor_config.proto), from which KFP's driver
    adds the pod's env from the Secret (driver.go, extendPodSpecPatch, at 2.4.0;
    driver/k8s.go at 2.17.0). `secretName` is what 2.4.0 reads, and 2.17.0 still does
    (deprecated for secretNameParameter, unknown to 2.4.0)."""
    if not store.secret_name:
        return []
    return [{"secretName": store.secret_name,
             "keyToEnv": [{"secretKey": store.access_key_key, "envVar": ACCESS_KEY_ENV},
                          {"secretKey": store.secret_key_key, "envVar": SECRET_KEY_ENV}]}]


def register_filesystems(document: Any) -> bool:
    """Registers tensorflow-io's `s3://` filesystem with TensorFlow in this process if
    `document` (a URI, or a JSON-like value such as an ExecutorInput) holds an `s3://` or
    `minio://` URI; returns whether it did. Importing tensorflow_io registers its
    filesystem plugins (tensorflow_io/python/ops/__init__.py: libtensorflow_io_plugins.so
    through tf.experimental.register_filesystem_plugin), once per process: a second call
    costs nothing, and without such a URI nothing is imported."""
    if not _holds_object_store_uri(document):
        return False
    import tensorflow_io  # noqa: F401  (the import registers the filesystems)
    return True


def exit_process(status: int) -> NoReturn:
    """Ends this process with `status`, its output flushed, without the C++ teardown at
    which tensorflow-io's S3 filesystem aborts it (module docstring)."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def _holds_object_store_uri(document: Any) -> bool:
    if isinstance(document, str):
        return is_object_store_uri(document)
    if isinstance(document, Mapping):
        return any(_holds_object_store_uri(value) for value in document.values())
    if isinstance(document, (list, tuple)):
        return any(_holds_object_store_uri(value) for value in document)
    return False


def _field(mapping: Any, name: str) -> Any:
    """`mapping[name]`, its key matched regardless of case, as Go's encoding/json matches
    the providers' fields (sigs.k8s.io/yaml; s3.go declares `json:"Overrides"`)."""
    if not isinstance(mapping, Mapping):
        return None
    return next((value for key, value in mapping.items()
                 if isinstance(key, str) and key.lower() == name.lower()), None)


def _flag(mapping: Any, name: str, default: bool) -> bool:
    value = _field(mapping, name)
    return default if value is None else bool(value)


def _credentials(credentials: Any, uri: str) -> dict[str, str]:
    """S3Credentials: the pod's environment ("fromEnv"), or the Secret's two keys."""
    if _field(credentials, "fromEnv"):
        return {"secret_name": "", "access_key_key": "", "secret_key_key": ""}
    secret = _field(credentials, "secretRef")
    if not secret:
        raise ValueError(f"Invalid kfp-launcher providers for {uri!r}: credentials without "
                         "fromEnv need a secretRef.")
    return {"secret_name": _field(secret, "secretName") or "",
            "access_key_key": _field(secret, "accessKeyKey") or "",
            "secret_key_key": _field(secret, "secretKeyKey") or ""}
