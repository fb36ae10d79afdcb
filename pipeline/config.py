"""Every knob of the pipeline, with its default and its check, in one object."""
from __future__ import annotations

import dataclasses
import difflib
import os
import re
from pathlib import Path
from typing import Any, Mapping, TypeVar

from components.image_example_gen.defaults import (
    DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_IMAGE_PIXELS, DEFAULT_MAX_REJECTED_FRACTION,
    DEFAULT_MAX_SPLIT_OVERLAP_FRACTION)
from data.folders import EVAL_SPLIT_FOLDER, GLOB_CHARACTERS, TRAIN_SPLIT_FOLDER
from models.model_config import GPU_SPEEDUP_SETTINGS, RESNET_STAGES, ModelConfig, TransformConfig
from pipeline.source import REPO_ROOT

# The project's own package description: what a Beam worker needs besides Beam itself.
SETUP_FILE = str(REPO_ROOT / "setup.py")
# Where kubeflow/Dockerfile puts it in the image.
IMAGE_SETUP_FILE = "/pipeline/setup.py"

# Where a pipeline runs: "local" (LocalDagRunner, the TFX CLI) or a Kubeflow Pipelines
# backend: "kubeflow" (open-source KFP 2.x: container and importer tasks only) or
# "vertex" (Vertex AI Pipelines, which also runs TFX's resolver tasks).
LOCAL = "local"
KFP_TARGETS = ("kubeflow", "vertex")
BEAM_RUNNERS = ("direct", "flink", "dataflow")
# Beam's conventional ports of a Flink job server (jobs, their staged files) and of an SDK
# worker pool: the local cluster's (pipeline/flink.py) and a cluster's job server's.
# Fixed, so that a run's Beam args (which TFX keys its cache by) are the same every run.
FLINK_JOB_SERVER_PORT = 8099
FLINK_ARTIFACT_PORT = 8098
FLINK_WORKER_POOL_PORT = 50000
# Storage for data, pipeline root and serving models on each KFP target: a local path
# exists only on the machine that compiles. TFX's executors write artifacts through
# TensorFlow's and Beam's filesystems: gs:// on both targets; on Kubeflow also an S3 API,
# KFP's own object store (MinIO or SeaweedFS, minio:// as KFP names it) or S3 itself,
# through tensorflow-io and boto3 (kubeflow/object_store.py).
OBJECT_STORE_SCHEMES = ("minio://", "s3://")
CLUSTER_STORAGE_SCHEMES = {"kubeflow": ("gs://", *OBJECT_STORE_SCHEMES), "vertex": ("gs://",)}
# What Beam's SDK workers import as they start where data or artifacts are on an object
# store: importing tensorflow-io registers TensorFlow's s3:// filesystem, which a worker
# process does not inherit from the process that started it.
S3_FILESYSTEM_PACKAGE = "tensorflow_io"
# The GPU request's name on each target: a Kubernetes extended resource on Kubeflow, one
# of Vertex's accelerator types on Vertex.
DEFAULT_ACCELERATOR = {"kubeflow": "nvidia.com/gpu", "vertex": "NVIDIA_L4"}
VERTEX_ACCELERATORS = ("NVIDIA_TESLA_T4", "NVIDIA_L4", "NVIDIA_TESLA_V100", "NVIDIA_TESLA_P4",
                       "NVIDIA_TESLA_P100", "NVIDIA_TESLA_A100", "NVIDIA_A100_80GB",
                       "NVIDIA_H100_80GB", "NVIDIA_H100_MEGA_80GB", "NVIDIA_H200_141GB")

# Bounds of the numeric settings: far beyond any legitimate value, they stop a typo (or
# inf, 2**70) before it reaches a path, a tensor's shape or a worker count.
MAX_PIPELINE_NAME_CHARS = 128  # also Vertex's limit on a pipeline's name
# (least, most) of each integer setting.
INTEGER_BOUNDS = {
    "image_size_px": (1, 4096),
    "batch_size_per_replica": (1, 65_536),
    "train_epochs": (1, 1_000_000),
    "full_size_epochs": (1, 1_000_000),
    "warmup_steps": (0, 100_000_000),
    "plateau_patience_epochs": (0, 1_000_000),
    "cooldown_epochs": (1, 1_000_000),
    "shuffle_seed": (0, 2 ** 63 - 1),  # a tf.data seed is an int64
    "training_window_spans": (1, 10_000),
    "max_image_pixels": (1, 2 ** 32),  # a 4-gigapixel image takes 12 GB decoded
    "max_request_pixels": (1, 2 ** 40),
    "max_file_bytes": (1, 2 ** 31 - 1),  # a tf.Example (a protobuf) holds at most 2 GiB
    "beam_num_workers": (0, 4096),  # 0: the runner's choice (see beam_num_workers)
    "trainer_gpu_count": (0, 64),  # on one node
    "trainer_workers": (1, 4096),
    "tfjob_active_deadline_s": (60, 90 * 24 * 3600),
    "tfjob_pending_deadline_s": (60, 7 * 24 * 3600),
    "tfjob_ttl_s": (0, 90 * 24 * 3600),
}
# Each of these float settings is in (0, most].
POSITIVE_NUMBER_BOUNDS = {
    "width_multiplier": 16.0,
    "learning_rate": 10.0,
    "task_cpu": 1024.0, "trainer_cpu": 1024.0,  # cores
    "task_memory_gib": 65_536.0, "trainer_memory_gib": 65_536.0,
}
# Each of these number settings is in this interval ("[": bound included, "(": excluded).
INTERVALS = {
    "bn_momentum": "(0, 1)", "label_smoothing": "[0, 1)", "weight_decay": "[0, 1]",
    "max_rejected_fraction": "[0, 1]", "max_split_overlap_fraction": "[0, 1]",
    "min_accuracy": "[0, 1]", "max_accuracy_drop": "[0, 1]",
    "plateau_min_train_accuracy": "[0, 1]", "early_image_scale": "(0, 1]",
}
# Each of these settings is one of these values.
CHOICES = {
    "resnet_depth": tuple(sorted(RESNET_STAGES)), "beam_runner": BEAM_RUNNERS,
    "kfp_target": KFP_TARGETS, "mixed_precision": GPU_SPEEDUP_SETTINGS,
    "jit_compile": GPU_SPEEDUP_SETTINGS,
}
# Environment variables that were settings once: set today, they would be ignored.
FORMER_SETTINGS = {
    "TRAIN_STEPS": "train_epochs", "STEPS_PER_EPOCH": "train_epochs",
    "DISTRIBUTION_STRATEGY": "trainer_workers", "BEAM_RUNNER_ARGS": "beam_runner",
}
# How alike (difflib's ratio) a variable's name and a setting's must be for the variable
# to count as a misspelt setting: TRAIN_EPOCH, SPAN and MIN_ACURACY are; VERTEX_PRODUCT
# (0.86 to VERTEX_PROJECT), a variable some machines export, is not.
MISSPELLING_CUTOFF = 0.88


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """Configuration of one pipeline: every setting the runners and
    `create_pipeline(config, plan)` read."""

    pipeline_name: str = "cats-dogs-resnet"
    # A folder in the Kaggle layout: training_set/<class>/*.jpg and test_set/<class>/*.jpg.
    data_root: str = "outputs/data/default"
    # Everything the project writes lands under here (the properties below); where this is
    # a cluster's storage (a URI), what only this machine uses lands under "outputs".
    output_dir: str = "outputs"
    # Folder names of the classes; the label is the index in this sorted tuple, and the
    # evaluation treats index 1 as the positive class.
    class_names: tuple[str, ...] = ("cats", "dogs")

    # Ingestion and serving: an image whose header claims more pixels is rejected before
    # decoding (decompression bombs); a split rejecting a larger fraction fails the run.
    # (Defaults: ImageExampleGen's own.)
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    # Serving's decode budget per request of the raw-bytes signature (models/serving.py):
    # items past it get an error, not a decode. Two images at the limit, about 1.5 GB
    # of decode and float buffers.
    max_request_pixels: int = 2 * DEFAULT_MAX_IMAGE_PIXELS
    max_rejected_fraction: float = DEFAULT_MAX_REJECTED_FRACTION
    # Ingestion reads each file whole into memory and into its tf.Example: a larger file
    # (e.g. a JPEG followed by gigabytes of junk) is rejected unread.
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    # A split sharing a larger fraction of its images, byte for byte, with another split
    # fails the run (evaluating on training images blesses training accuracy).
    max_split_overlap_fraction: float = DEFAULT_MAX_SPLIT_OVERLAP_FRACTION

    # Transform. On real photos more pixels pay with a long enough schedule: 128 px reaches
    # 0.85-0.87 where 96 px stops at ~0.84 (benchmarks/RESULTS.md, section 6).
    image_size_px: int = 128

    # Model.
    resnet_depth: int = 18
    width_multiplier: float = 0.25
    # Keras' default of 0.99 leaves the moving statistics far from the batch statistics
    # after a few hundred steps, and eval accuracy then sits near chance while train
    # accuracy climbs; 0.9 settles within ~50 steps and still averages well on long runs.
    bn_momentum: float = 0.9

    # Training. The global batch is per-replica batch x number of replicas.
    batch_size_per_replica: int = 64
    # Passes over the ingested training split: the run's length follows the data. (On
    # Kubeflow, a run's train_args parameter may fix a step count instead.) On the dev
    # photos eval accuracy stops rising after ~60 epochs while train accuracy climbs on:
    # 80 reach what 150 did (benchmarks/RESULTS.md, section 11).
    train_epochs: int = 80
    # Progressive resizing: every epoch but the last full_size_epochs (and an early stop's
    # cooldown) trains on its images resized to early_image_scale x image_size_px a side,
    # the rest at image_size_px, the size the model is evaluated and served at. An epoch
    # at 96 px costs ~0.6 of one at 128 px, for about the same accuracy. 1: off.
    early_image_scale: float = 0.75
    full_size_epochs: int = 20
    # Peak learning rate of AdamW, reached after a linear warm-up, then cosine decay to 0.
    learning_rate: float = 4e-3
    warmup_steps: int = 50
    # Training ends early once eval accuracy has not improved for this many epochs (0:
    # never) while train accuracy is at least plateau_min_train_accuracy: the learning
    # rate then decays linearly to zero over cooldown_epochs, and training stops. The
    # generated default set stops after ~20 of its 80 epochs; on the real dev photos
    # train accuracy stays below 0.98 and every epoch runs (without that condition they
    # would stop at epoch ~30: benchmarks/RESULTS.md, section 10).
    plateau_patience_epochs: int = 3
    cooldown_epochs: int = 5
    plateau_min_train_accuracy: float = 0.98
    # Decoupled weight decay (AdamW), not applied to BatchNorm's scale and shift.
    weight_decay: float = 1e-4
    # The targets' weight moved from the true class to uniform: a from-scratch model on a
    # few thousand photos otherwise drives its logits to extremes.
    label_smoothing: float = 0.1
    # Seed of the training examples' shuffle. Fixed, so that every worker of a multi-worker
    # cluster reads the same order and keeps its own share of each global batch.
    shuffle_seed: int = 0

    # Serving (and so TFMA's evaluation): average the predictions for the image and its
    # mirror image, at twice the compute per prediction.
    test_time_flip: bool = True

    # Evaluation: the candidate is blessed only if it clears both thresholds.
    min_accuracy: float = 0.7
    # Largest accuracy drop tolerated against the latest blessed model.
    max_accuracy_drop: float = 0.02

    # The Beam runner of every Beam component (ImageExampleGen, StatisticsGen, Transform,
    # Evaluator), one of BEAM_RUNNERS: "direct" (Beam's DirectRunner, in processes of this
    # machine or pod), "flink" (Beam's portable Flink runner: locally a Flink cluster that
    # the run starts and stops, pipeline/flink.py; on a KFP target the cluster's Beam job
    # server, flink_job_server) or "dataflow" (KFP targets only).
    beam_runner: str = "direct"
    # Parallel Beam workers: DirectRunner processes, or Flink's parallelism and its Python
    # SDK worker processes per TaskManager. 0: the runner's own choice: the DirectRunner's
    # one per core (in a KFP task, per requested core); Flink's default parallelism (the
    # cluster's; locally one per core) and an SDK worker per core but one (the JVM's).
    beam_num_workers: int = 0
    # The host of the cluster's Beam Flink job server (beam_runner=flink on a KFP target),
    # e.g. its Kubernetes Service's name, serving jobs and their files on Beam's usual
    # ports (FLINK_JOB_SERVER_PORT...: the local cluster's are the same, on localhost).
    flink_job_server: str = ""
    # Dataflow (beam_runner=dataflow): the Google Cloud project and region of its jobs.
    dataflow_project: str = ""
    dataflow_region: str = "us-central1"
    enable_cache: bool = True

    # Retraining on new data. With spans, data_root holds numbered drops span-1/, span-2/,
    # ... each in the Kaggle layout: a run ingests the newest, trains on the newest
    # training_window_spans of them (reusing Transform's analyzer cache for spans already
    # analysed), starting from the latest blessed model's weights when warm_start is on,
    # and evaluates on the newest span's test_set.
    spans: bool = False
    training_window_spans: int = 3
    warm_start: bool = True

    # GPU speed-ups, each "auto" (on when the Trainer sees a GPU), "on" or "off":
    # mixed precision (Keras' mixed_float16: float16 compute, float32 weights) and XLA
    # compilation of the train step (jit_compile).
    mixed_precision: str = "auto"
    jit_compile: str = "auto"

    # Training hardware. The Trainer's request on Kubeflow: this many accelerators of this
    # type on one node (0: none); MirroredStrategy uses all of them. A Trainer (on any
    # engine) that finds fewer fails before it reads any data, rather than train on the CPU.
    # The type is a Kubernetes resource name on Kubeflow, a Vertex accelerator type on
    # Vertex; empty: DEFAULT_ACCELERATOR of the target.
    trainer_gpu_count: int = 0
    trainer_accelerator_type: str = ""
    # Machines the Trainer runs on (Kubeflow and Vertex targets), each with the requests
    # above. 1: MirroredStrategy over one machine's GPUs. More: MultiWorkerMirroredStrategy
    # over every worker's GPUs, the workers launched by the Trainer's task: on Kubeflow as
    # a TFJob of the Kubeflow Training Operator, on Vertex as a custom job's worker pools.
    trainer_workers: int = 1
    # The TFJob of trainer_workers > 1 on Kubeflow: the most it may run before the operator
    # stops it, how long its workers may wait for nodes (no free GPUs) before the task
    # fails with the scheduler's reason, and how long the operator keeps it once finished
    # (the task deletes it sooner; this is for a task that could not).
    tfjob_active_deadline_s: int = 7 * 24 * 3600
    tfjob_pending_deadline_s: int = 3600
    tfjob_ttl_s: int = 3600
    # Vertex custom jobs (trainer_workers > 1 on Vertex): where they run, on which machines
    # (an accelerator type needs a machine type that takes it, e.g. g2-standard-* for L4).
    vertex_project: str = ""
    vertex_region: str = "us-central1"
    vertex_machine_type: str = "g2-standard-8"

    # Kubeflow Pipelines (kubeflow/runner.py): which backend the spec is compiled for.
    kfp_target: str = "kubeflow"
    # How KFP's launcher reaches an object store (minio:// or s3:// paths), which every task
    # then reaches the same way (kubeflow/object_store.py): the `providers` YAML of the
    # cluster's `kfp-launcher` ConfigMap, if it has one, and the endpoint of KFP's default
    # store, for minio:// paths it has no entry for (backend/src/v2/objectstore/config.go):
    # minio-service.kubeflow:9000 up to KFP 2.15 (2.4.0 takes the same Service from
    # MINIO_SERVICE_SERVICE_HOST/_PORT in its own namespace), seaweedfs.kubeflow:9000 from 2.16.
    kfp_launcher_providers: str = ""
    kfp_object_store_endpoint: str = "minio-service.kubeflow:9000"
    # The image every component runs in (kubeflow/Dockerfile). Without a tag, the tag is
    # the fingerprint of the code it holds (kubeflow/image.py), so a code change is a new
    # image in every task: it reaches the pods and no KFP cache entry hides it.
    container_image: str = "cats-dogs-resnet"
    # Each task's requests (CPU cores, memory in GiB); a Beam component runs one
    # DirectRunner worker per requested core. The Trainer has its own, beside its GPUs.
    task_cpu: float = 2.0
    task_memory_gib: float = 8.0
    trainer_cpu: float = 4.0
    trainer_memory_gib: float = 16.0

    def __post_init__(self) -> None:
        # Joined into paths (pipeline root, metadata, lock): no "/", "..", or anything odd,
        # and short enough for a file name (255 bytes) with what a run appends to it.
        _check(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", self.pipeline_name) is not None
               and len(self.pipeline_name) <= MAX_PIPELINE_NAME_CHARS,
               "pipeline_name", "a name of letters, digits, '.', '_' and '-', starting with "
               f"a letter or digit, at most {MAX_PIPELINE_NAME_CHARS} characters",
               self.pipeline_name)
        # Joined into file patterns (ingestion's, the Trainer's): a wildcard in them
        # matches other files, or none.
        for name in ("data_root", "output_dir"):
            _check(not set(GLOB_CHARACTERS) & set(getattr(self, name)), name,
                   f"a path without the wildcard characters {' '.join(GLOB_CHARACTERS)}",
                   getattr(self, name))
        _check(len(self.class_names) == 2 and len(set(self.class_names)) == 2,
               "class_names", "exactly two distinct class folder names", self.class_names)
        _check(list(self.class_names) == sorted(self.class_names),
               "class_names", "names in sorted order (label = index)", self.class_names)
        for name, (least, most) in INTEGER_BOUNDS.items():
            value = getattr(self, name)
            _check(isinstance(value, int) and not isinstance(value, bool)
                   and least <= value <= most, name,
                   f"an integer >= {least} and <= {most:,}", value)
        # A float bound also refuses NaN and infinity (every comparison with NaN is false).
        for name, most in POSITIVE_NUMBER_BOUNDS.items():
            _check(0 < getattr(self, name) <= most, name, f"a positive number up to {most}",
                   getattr(self, name))
        for name, interval in INTERVALS.items():
            _check(_in_interval(getattr(self, name), interval), name,
                   f"a number in {interval}", getattr(self, name))
        for name, choices in CHOICES.items():
            _check(getattr(self, name) in choices, name,
                   f"one of {', '.join(map(str, choices))}", getattr(self, name))
        _check(re.fullmatch(r"[A-Za-z0-9.-]*", self.flink_job_server) is not None,
               "flink_job_server", "a host name", self.flink_job_server)
        _check(self.beam_runner != "dataflow" or self.dataflow_project != "", "dataflow_project",
               "a Google Cloud project for beam_runner=dataflow", self.dataflow_project)
        # Any URI of a scheme kfp_target's tasks can reach; check_runs_on(kfp_target) also
        # refuses a local path.
        schemes = CLUSTER_STORAGE_SCHEMES[self.kfp_target]
        for name in ("data_root", "output_dir"):
            path = getattr(self, name)
            _check("://" not in path or path.startswith(schemes), name,
                   f"a local path or a {' or '.join(schemes)} URI for kfp_target="
                   f"{self.kfp_target!r}", path)
        _check(re.fullmatch(r"(https?://)?[A-Za-z0-9.-]+(:[0-9]+)?",
                            self.kfp_object_store_endpoint) is not None,
               "kfp_object_store_endpoint", "a host:port, or an http(s):// URL of one",
               self.kfp_object_store_endpoint)
        if self.kfp_target == "vertex":
            _check(self.trainer_accelerator in VERTEX_ACCELERATORS, "trainer_accelerator_type",
                   f"a Vertex accelerator type ({', '.join(VERTEX_ACCELERATORS)})",
                   self.trainer_accelerator_type)
        else:
            _check(re.fullmatch(r"[a-z0-9.-]+/[a-z0-9._-]+", self.trainer_accelerator) is not None,
                   "trainer_accelerator_type",
                   "a Kubernetes resource name such as nvidia.com/gpu",
                   self.trainer_accelerator_type)
        _check(self.container_image != "", "container_image", "an image reference",
               self.container_image)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> PipelineConfig:
        """The defaults, each overridden by an environment variable of its upper-case name.

        E.g. `make pipeline DATA_ROOT=/data/dogs-cats TRAIN_EPOCHS=60 MIN_ACCURACY=0.9`.
        A variable that looks like a setting but is none (a former setting's name, or one
        close to a setting's) stops here, naming the setting it probably meant: ignored,
        it would leave that setting at its default unnoticed.
        """
        _check_no_misspelt_settings(cls, environ)
        values = {}
        for field in dataclasses.fields(cls):
            text = environ.get(field.name.upper(), "")
            if text:
                values[field.name] = _parse(field.name.upper(), text, field.default)
        return cls(**values)

    def check_runs_on(self, target: str, allow_local_paths: bool = False) -> None:
        """Refuses, before any work, what `target` (LOCAL or one of KFP_TARGETS) cannot
        run: every runner calls this first; the fields' own checks ran in __post_init__.

        `allow_local_paths`: a KFP spec run on this machine (kubeflow/contract_run.py).
        """
        if target == LOCAL:
            if self.trainer_workers > 1:
                raise ValueError(
                    f"Invalid setting trainer_workers={self.trainer_workers} for the local "
                    "engine, which trains in the Trainer's own process: several workers are "
                    "launched on a Kubeflow or Vertex target (make kubeflow-compile).")
            if self.beam_runner == "dataflow":
                raise ValueError(
                    "Invalid setting beam_runner='dataflow' for the local engine: expected "
                    "direct or flink (Dataflow runs the Beam components of a Kubeflow or "
                    "Vertex spec: make kubeflow-compile).")
            return
        if self.spans:
            raise ValueError(
                f"Invalid setting spans=true for kfp_target={target!r}: retraining "
                "on spans trains on a window of spans chosen by TFX's SpanRangeStrategy "
                "resolver, which TFX's Kubeflow V2 compiler does not support (only the latest "
                "and latest-blessed strategies), and open-source Kubeflow Pipelines runs no "
                "resolver tasks at all (\"resolver executors not implemented\"). Retrain on "
                "spans with `make retrain` on the local engine; on a cluster, a scheduled run "
                "ingests whatever data_root holds when it starts.")
        schemes = CLUSTER_STORAGE_SCHEMES[target]
        for name in ("data_root", "output_dir"):
            path = getattr(self, name)
            if "://" not in path and not allow_local_paths:
                raise ValueError(
                    f"Invalid setting {name}={path!r} for kfp_target={target!r}: expected "
                    f"a {' or '.join(schemes)} URI. A local path exists only on this "
                    "machine, not in the cluster's pods; the pipeline root and the serving "
                    "models live under output_dir.")
        if self.trainer_workers > 1 and self.uses_object_store:
            raise ValueError(
                f"Invalid setting trainer_workers={self.trainer_workers} with data_root="
                f"{self.data_root!r} and output_dir={self.output_dir!r}: the Trainer's "
                "TFJob workers get neither the object store's settings nor its credentials, "
                "which KFP gives its task pods only, and tensorflow-io's S3 filesystem would "
                "abort each as it exits (kubeflow/object_store.py). Train on one node, or "
                "keep both on gs://.")
        if self.trainer_workers > 1 and target == "vertex" and not self.vertex_project:
            raise ValueError("Invalid setting vertex_project='': expected the Google Cloud "
                             "project that runs the Trainer's custom job (trainer_workers="
                             f"{self.trainer_workers} on kfp_target='vertex').")
        if self.beam_runner == "flink" and not self.flink_job_server:
            raise ValueError(f"Invalid setting flink_job_server='' for beam_runner=flink "
                             f"on kfp_target={target!r}: expected the host of the "
                             "cluster's Beam Flink job server (kubeflow/README.md).")

    def check_data_root_exists(self) -> None:
        """A local data root that is missing stops a run before any work starts."""
        if "://" not in self.data_root and not Path(self.data_root).is_dir():
            raise ValueError(f"Invalid setting data_root={self.data_root!r}: expected a folder "
                             f"in the Kaggle layout ({TRAIN_SPLIT_FOLDER}/, "
                             f"{EVAL_SPLIT_FOLDER}/); it does not exist.")

    # Absolute paths (or URIs), all under output_dir so that one setting moves everything.
    @property
    def input_base(self) -> str:
        return _absolute(self.data_root)

    @property
    def pipeline_root(self) -> str:
        return _absolute(self.output_dir, "pipeline_root", self.pipeline_name)

    @property
    def metadata_path(self) -> str:
        return _absolute(self.output_dir, "metadata", self.pipeline_name, "metadata.sqlite")

    @property
    def logs_dir(self) -> str:
        """Each command's whole log (pipeline/console.py), on this machine."""
        return self._local_dir("logs")

    @property
    def serving_model_dir(self) -> str:
        """One folder per pipeline, TF Serving's layout for several models (model name =
        pipeline name): pipelines sharing an output_dir never serve each other's models."""
        return _absolute(self.output_dir, "serving_model", self.pipeline_name)

    @property
    def flink_dir(self) -> str:
        """The local Flink cluster's programs (fetched once) and logs (pipeline/flink.py)."""
        return self._local_dir("flink")

    @property
    def kubeflow_spec_dir(self) -> str:
        """The compiled KFP specs (kubeflow/runner.py), which kubeflow/submit.py sends."""
        return self._local_dir("kubeflow")

    def _local_dir(self, *parts: str) -> str:
        """A path for what only this machine uses, under output_dir; under the default
        output_dir where output_dir is a URI (a cluster's storage: a compiled spec needs
        no access to it, and a JVM runs from no bucket)."""
        base = self.output_dir if "://" not in self.output_dir else _DEFAULT_OUTPUT_DIR
        return _absolute(base, *parts)

    @property
    def distribution_strategy(self) -> str:
        """The Trainer's strategy (one of DISTRIBUTION_STRATEGIES): it follows the workers."""
        return "multi_worker_mirrored" if self.trainer_workers > 1 else "mirrored"

    @property
    def uses_object_store(self) -> bool:
        """Whether data or artifacts are on an S3 API (OBJECT_STORE_SCHEMES)."""
        return any(path.startswith(OBJECT_STORE_SCHEMES) for path in (self.data_root,
                                                                        self.output_dir))

    @property
    def trainer_accelerator(self) -> str:
        """The accelerator type the Trainer requests on the configured KFP target."""
        return self.trainer_accelerator_type or DEFAULT_ACCELERATOR[self.kfp_target]

    def beam_pipeline_args(self, target: str = LOCAL) -> list[str]:
        """Every Beam component's args: beam_runner's, on `target` (LOCAL or a KFP target),
        for a config that check_runs_on(target) accepted.

        Our code reaches Flink's workers as the package of a setup file, which Beam stages
        with each job and every worker installs: the workers (a worker pool beside each
        TaskManager) outlive any one image of our code. Dataflow's workers run
        container_image itself, which holds our code (kubeflow/runner.py compiles with it
        tagged by the code's fingerprint). The DirectRunner's workers run in the
        pipeline's own environment; naming a setup file still stops TFX from packaging its
        own installation into an sdist for every Beam component (2-3 s each), which it
        does for args that name neither a package nor an image. With data or artifacts on
        an object store, every SDK worker imports S3_FILESYSTEM_PACKAGE as it starts.
        """
        plugins = ([f"--beam_plugins={S3_FILESYSTEM_PACKAGE}"] if self.uses_object_store
                   else [])
        return self._runner_args(target) + plugins

    def _runner_args(self, target: str) -> list[str]:
        setup_file = SETUP_FILE if target == LOCAL else IMAGE_SETUP_FILE
        if self.beam_runner == "direct":
            # In a KFP task, the pod's CPU request, not the node's cores, sets the workers.
            workers = self.beam_num_workers if target == LOCAL else max(1, int(self.task_cpu))
            return ["--direct_running_mode=multi_processing", f"--direct_num_workers={workers}",
                    f"--setup_file={setup_file}"]
        if self.beam_runner == "flink":
            job_server = "localhost" if target == LOCAL else self.flink_job_server
            return [
                "--runner=PortableRunner", f"--job_endpoint={job_server}:{FLINK_JOB_SERVER_PORT}",
                # Named here: a job server in a pod tells clients the host it binds, 0.0.0.0.
                f"--artifact_endpoint={job_server}:{FLINK_ARTIFACT_PORT}",
                # The SDK workers come from a worker pool beside each Flink TaskManager (a
                # sidecar on Kubernetes, a local process here), on Beam's usual port.
                "--environment_type=EXTERNAL",
                f"--environment_config=localhost:{FLINK_WORKER_POOL_PORT}",
                # Flink runs a batch job region by region and lets the job's SDK workers
                # go when a region ends; kept this long, the next region reuses them
                # instead of starting its own (boot, install, imports: seconds each).
                "--environment_cache_millis=10000",
                # Unset: Flink's default parallelism (the cluster's; locally one per core).
                *([f"--parallelism={self.beam_num_workers}"] if self.beam_num_workers else []),
                f"--sdk_worker_parallelism={self.beam_num_workers}",
                f"--setup_file={setup_file}"]
        return ["--runner=DataflowRunner", f"--project={self.dataflow_project}",
                f"--region={self.dataflow_region}",
                f"--temp_location={_absolute(self.output_dir, 'beam-temp')}",
                f"--sdk_container_image={self.container_image}"]

    def transform_config(self) -> TransformConfig:
        """Transform's settings; `.to_custom_config()` is its `custom_config`."""
        return _settings_of(TransformConfig, self)

    @property
    def early_image_size_px(self) -> int:
        """The side of the early epochs' training images (early_image_scale)."""
        return max(1, round(self.early_image_scale * self.image_size_px))

    def model_config(self) -> ModelConfig:
        """The Trainer's settings; `.to_custom_config()` is its `custom_config`."""
        return _settings_of(ModelConfig, self)


_DEFAULT_OUTPUT_DIR = PipelineConfig.output_dir


def _absolute(base: str, *parts: str) -> str:
    """`base/parts...`, made absolute unless `base` is a URI such as gs://bucket."""
    joined = "/".join([base.rstrip("/"), *parts])
    return joined if "://" in base else str(Path(joined).absolute())


_Settings = TypeVar("_Settings")


def _settings_of(settings_type: type[_Settings], config: PipelineConfig) -> _Settings:
    """A `settings_type` dataclass whose fields are `config`'s fields of the same names."""
    return settings_type(**{field.name: getattr(config, field.name)
                            for field in dataclasses.fields(settings_type)})


def _check_no_misspelt_settings(cls: type[PipelineConfig], environ: Mapping[str, str]) -> None:
    env_names = [field.name.upper() for field in dataclasses.fields(cls)]
    for variable in sorted(environ):
        if variable in env_names:
            continue
        if variable in FORMER_SETTINGS:
            raise ValueError(f"Unknown setting {variable}: it is no longer a setting; did you "
                             f"mean {FORMER_SETTINGS[variable].upper()}? (make settings lists "
                             "them all)")
        # Upper-cased: a lower-case train_epochs=5 is as ignored as a misspelt one.
        close = difflib.get_close_matches(variable.upper(), env_names, n=1,
                                          cutoff=MISSPELLING_CUTOFF)
        if close:
            raise ValueError(f"Unknown setting {variable}: did you mean {close[0]}? "
                             "(make settings lists them all)")


def _in_interval(value: Any, interval: str) -> bool:
    """Whether `value` is in an interval written as INTERVALS writes it, e.g. "[0, 1)"."""
    least, most = (float(bound) for bound in interval[1:-1].split(","))
    # Every comparison with NaN is false: NaN is in no interval.
    above = value >= least if interval[0] == "[" else value > least
    below = value <= most if interval[-1] == "]" else value < most
    return above and below


def _check(ok: bool, name: str, allowed: str, value: Any) -> None:
    if not ok:
        raise ValueError(f"Invalid setting {name}={value!r}: expected {allowed}.")


def _parse(env_name: str, text: str, default: Any) -> Any:
    """`text` as a value of the default's type; tuples are comma-separated."""
    try:
        if isinstance(default, bool):
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError(text)
            return text.lower() in ("true", "1")
        if isinstance(default, tuple):
            return tuple(item.strip() for item in text.split(","))
        return type(default)(text)
    except ValueError:
        raise ValueError(f"Invalid environment variable {env_name}={text!r}: expected "
                         f"a {type(default).__name__} like {default!r}.") from None
