# Two commands a user needs: `make pipeline` and `make test`. Each installs what it needs.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# Drops the warnings this machine's pip configuration prints for every package.
PIP_QUIET := 2>&1 | { grep -v '^WARNING: Location' || true; }

PIPELINE_NAME ?= cats-dogs-resnet
DEFAULT_DATA_ROOT := outputs/data/default
DATA_ROOT ?= $(DEFAULT_DATA_ROOT)
# Where the TFX CLI keeps its registry of local pipelines (the CLI's own default).
LOCAL_HOME ?= $(HOME)/tfx/local

export TF_USE_LEGACY_KERAS := 1
# A line per stage on the console, the whole log in outputs/logs/ (VERBOSE=1: both).
CONSOLE = $(BIN)/python -m pipeline.console
# oneDNN's CPU kernels, which TensorFlow enables by itself only on AVX-512 CPUs (models/__init__.py).
export TF_ENABLE_ONEDNN_OPTS ?= 1
# Every PipelineConfig field can be set by its upper-case name: make pipeline TRAIN_EPOCHS=90
export PIPELINE_NAME DATA_ROOT LOCAL_HOME
# Values a user gives (PIPELINE_NAME, DATA_ROOT, RUN, COMPARE_WITH, CRON, ID...) reach
# recipes as environment variables ("$$RUN"), never pasted into a shell command line,
# where `RUN='x; id'` would run `id`. (Variables set on make's command line are exported.)

.PHONY: pipeline pipeline-run register retrain history report test venv clean bench bench-model bench-photos \
        bench-first-run \
        flink-runner bench-flink help settings predict

# The commands, each from the "## " comment on its target's line: the one place they are described.
help:  ## These commands
	@grep -hE '^[a-z-]+:.*  ## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z-]+):.*  ## (.*)$$/\1\t\2/' | \
	  expand -t 22 | sed 's/^/make /'

# Every setting: default, allowed values, current value (from PipelineConfig itself).
settings: venv  ## Every setting: its default, allowed values and current value
	$(BIN)/python -m pipeline.settings

# The virtual environment, from the fully pinned lock. Re-created when the lock changes.
# TFX 1.16 declares Requires-Python <3.11 although it runs on 3.11: hence the flag.
$(VENV)/.installed: requirements.lock setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip==24.3.1 $(PIP_QUIET)
	$(BIN)/pip install -q --no-deps --ignore-requires-python -r requirements.lock $(PIP_QUIET)
	$(BIN)/pip install -q --no-deps --no-build-isolation -e . $(PIP_QUIET)
	$(BIN)/python -c "import tfx.v1, tensorflow_transform, tensorflow_model_analysis, pipeline" \
	  2>$(VENV)/import-check.log || { cat $(VENV)/import-check.log >&2; exit 1; }
	touch $@

venv: $(VENV)/.installed  ## Create .venv from the pinned lock (every command does it first)

# The whole pipeline on DATA_ROOT (default: the generated dataset), through the TFX CLI,
# holding the pipeline root's lock until the run ends, the processes it starts included
# (pipeline/run_lock.py): a second run exits at once, with status 75 and who holds it.
# Google Cloud client libraries warn about Python 3.11 at every import; noise for a CLI.
pipeline: export PYTHONWARNINGS := ignore::FutureWarning
pipeline: venv  ## Generate the default dataset (DATA_ROOT unset), then run the whole pipeline
	@$(CONSOLE) pipeline -- $(BIN)/python -m pipeline.run_lock "make pipeline" \
	  $(MAKE) -s --no-print-directory pipeline-run

# The steps of `make pipeline`, run under its lock.
pipeline-run: export PYTHONWARNINGS := ignore::FutureWarning
pipeline-run: venv
	if [ "$$DATA_ROOT" = "$(DEFAULT_DATA_ROOT)" ]; then \
	  $(BIN)/python -m data.generate --output $(DEFAULT_DATA_ROOT); fi
	$(MAKE) --no-print-directory register
	$(BIN)/tfx run create --engine=local --pipeline_name="$$PIPELINE_NAME"
	$(BIN)/python -m pipeline.summary
	$(BIN)/cats-dogs-report

# The evaluation report (HTML + JSON under outputs/reports/) of the latest run, or of
# RUN=<run id or Evaluator output path>; COMPARE_WITH=<another run> puts two side by side.
report: export PYTHONWARNINGS := ignore::FutureWarning
report: venv  ## The evaluation report of the newest run (RUN=<run>, COMPARE_WITH=<run>)
	$(BIN)/cats-dogs-report $${RUN:+"$$RUN"} $${COMPARE_WITH:+--compare-with "$$COMPARE_WITH"}

# Classifies IMAGES (file names, space-separated; wildcards allowed) with the newest
# pushed model: label and probability, or the error, per file.
predict: export PYTHONWARNINGS := ignore::FutureWarning
predict: venv  ## Classify IMAGES="a.jpg b.png" with the newest pushed model
	$(BIN)/cats-dogs-predict $${IMAGES-}

# Registers the pipeline with the TFX CLI (create, or update), unless it is registered
# with the same code and settings already (pipeline/registration.py).
register: export PYTHONWARNINGS := ignore::FutureWarning
register: venv  ## Register the pipeline with the TFX CLI, if its code or settings changed
	$(BIN)/python -m pipeline.registration

# One retraining cycle on span-<N> drops (SPANS=true DATA_ROOT=...): see the README.
retrain: export PYTHONWARNINGS := ignore::FutureWarning
retrain: venv  ## One retraining cycle on span-<N> drops (SPANS=true DATA_ROOT=...)
	@$(CONSOLE) retrain -- $(BIN)/python -m pipeline.retrain

# The runs so far: time, spans, eval accuracy, blessed, pushed version.
history: venv  ## The runs so far: time, spans, eval accuracy, blessed, pushed version
	$(BIN)/python -m pipeline.history

# The report tests open the HTML in headless Chromium (Debian's package). The suite runs
# in TEST_WORKERS processes (a pipeline run keeps ~1.2 of 2 cores busy: two overlap well),
# each taking whole groups of tests (tests/conftest.py); the slowest are listed at the end.
# SeaweedFS (the tests' S3 server, built once with Go: below) is built before the workers
# start, so that they do not build it side by side.
SEAWEEDFS := outputs/bin/weed
TEST_WORKERS ?= 2
test: venv $(SEAWEEDFS)  ## Unit tests and end-to-end runs on tiny generated data (~18-27 min)
	test -x /usr/bin/chromium || { apt-get update -q && apt-get install -y -q chromium; }
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder --durations=20

clean:  ## Remove outputs/ (data, runs, models, reports)
	rm -rf outputs

# Beam on Flink (BEAM_RUNNER=flink), ahead of a first run, which does it itself: Beam's
# Flink job server fetched with Maven (flink/pom.xml: about 150 MB, kept in ~/.m2), Beam's
# SDK worker boot program built with Go, the SDK workers' venv (pipeline/flink.py).
flink-runner: venv  ## Fetch and build Beam's Flink runner ahead of a first BEAM_RUNNER=flink run
	$(BIN)/python -m pipeline.flink

# Benchmarks (benchmarks/RESULTS.md: what each measures, the latest figures). Each prints
# its figures and its ratio against a baseline measured in the same run.
bench-model: export PYTHONWARNINGS := ignore::FutureWarning
bench-model: venv  ## Benchmark: model training speed
	@$(CONSOLE) --show-stdout bench-model -- $(BIN)/python -m benchmarks.model_speed

# Ingestion and Transform on Flink (parallelism 1 and 2) against the DirectRunner.
bench-flink: export PYTHONWARNINGS := ignore::FutureWarning
bench-flink: venv  ## Benchmark: ingestion and Transform on Flink against the DirectRunner
	@$(CONSOLE) --show-stdout bench-flink -- $(BIN)/python -m benchmarks.flink

# Our pipeline against a plain Keras script on real photos: DATA_ROOT=<photos, Kaggle layout>.
bench-photos: export PYTHONWARNINGS := ignore::FutureWarning
bench-photos: venv  ## Benchmark: our pipeline against a plain Keras script (DATA_ROOT=<photos>)
	test "$$DATA_ROOT" != "$(DEFAULT_DATA_ROOT)" || { echo "Set DATA_ROOT to real photos." >&2; exit 1; }
	@$(CONSOLE) --show-stdout bench-photos -- $(BIN)/python -m benchmarks.real_photos --data-root "$$DATA_ROOT"

# A new user's first `make pipeline`, phase by phase, with and without the early stop.
bench-first-run: export PYTHONWARNINGS := ignore::FutureWarning
bench-first-run: venv  ## Benchmark: the first make pipeline, phase by phase, with and without early stop
	@$(CONSOLE) --show-stdout bench-first-run -- $(BIN)/python -m benchmarks.first_run

# The input benchmark reads the Transform output of `make pipeline` (cached if current).
bench: export PYTHONWARNINGS := ignore::FutureWarning
bench: pipeline  ## Every benchmark, after make pipeline
	@$(CONSOLE) --show-stdout bench -- $(BIN)/python -m benchmarks.model_speed
	@$(CONSOLE) --show-stdout bench -- $(BIN)/python -m benchmarks.cpu_kernels
	@$(CONSOLE) --show-stdout bench -- $(BIN)/python -m benchmarks.input_pipeline
	@$(CONSOLE) --show-stdout bench -- $(BIN)/python -m benchmarks.ingestion
	@$(CONSOLE) --show-stdout bench -- $(BIN)/python -m benchmarks.pipeline_scaling
	@$(CONSOLE) --show-stdout bench -- $(BIN)/python -m benchmarks.statistics_memory

# Kubeflow Pipelines (kubeflow/README.md). Settings as for `make pipeline`, plus
# KFP_TARGET (kubeflow or vertex), OUTPUT_DIR and DATA_ROOT (gs://; on kubeflow also
# minio:// or s3://, with KFP_LAUNCHER_PROVIDERS, KFP_OBJECT_STORE_ENDPOINT), CONTAINER_IMAGE,
# BEAM_RUNNER (with FLINK_JOB_SERVER or DATAFLOW_PROJECT), TRAINER_GPU_COUNT. Submission
# needs KF_PIPELINES_ENDPOINT (or KFP_ENDPOINT); on multi-user Kubeflow KFP_NAMESPACE and
# KFP_EXISTING_TOKEN (or a service-account token file); a schedule CRON (6 fields);
# kubeflow-unschedule ID=<id> deletes only that recurring run.
CONTAINER_IMAGE ?= cats-dogs-resnet
# docker, podman or buildah: whichever this machine has.
CONTAINER_TOOL ?= $(firstword $(shell command -v docker podman buildah 2>/dev/null))
KUBEFLOW_SUBMIT := $(BIN)/python -m kubeflow.submit
export CONTAINER_IMAGE

.PHONY: kubeflow-compile kubeflow-image kubeflow-local kubeflow-upload kubeflow-run \
        kubeflow-schedule kubeflow-schedules kubeflow-unschedule

kubeflow-compile: export PYTHONWARNINGS := ignore::FutureWarning
kubeflow-compile: venv  ## Compile the pipeline to a KFP v2 spec (kubeflow/README.md)
	$(BIN)/python -m kubeflow.runner

# Tagged with the fingerprint of the code it holds, unless CONTAINER_IMAGE names a tag: the
# CPU image and the GPU one (the same tag + -gpu), which the Trainer runs when it has GPUs.
# IMAGE_VARIANTS=gpu builds only the GPU one (cpu: only the CPU one).
IMAGE_VARIANTS ?= cpu gpu
export IMAGE_VARIANTS
kubeflow-image: venv  ## Build and push the components' images (CPU and GPU)
	test -n "$(CONTAINER_TOOL)" || { echo "No docker, podman or buildah on this machine." >&2; exit 1; }
	for variant in $$IMAGE_VARIANTS; do \
	  image=$$($(BIN)/python -m kubeflow.image --variant "$$variant"); \
	  $(CONTAINER_TOOL) build -f kubeflow/Dockerfile --build-arg VARIANT="$$variant" -t "$$image" .; \
	  $(CONTAINER_TOOL) push "$$image"; \
	done

# The compiled spec run on this machine as KFP's launcher runs it (local paths allowed).
kubeflow-local: export PYTHONWARNINGS := ignore::FutureWarning
kubeflow-local: export OUTPUT_DIR ?= outputs/kubeflow-local
kubeflow-local: venv  ## Run the compiled spec on this machine as KFP's launcher does
	if [ "$$DATA_ROOT" = "$(DEFAULT_DATA_ROOT)" ]; then \
	  $(BIN)/python -m data.generate --output $(DEFAULT_DATA_ROOT); fi
	@$(CONSOLE) --show-stdout kubeflow-local -- $(BIN)/python -m kubeflow.contract_run

kubeflow-upload kubeflow-run kubeflow-schedule kubeflow-schedules kubeflow-unschedule: \
  export PYTHONWARNINGS := ignore::FutureWarning
kubeflow-upload: venv  ## Upload the spec to Kubeflow Pipelines
	$(KUBEFLOW_SUBMIT) upload
kubeflow-run: venv  ## Run the spec on Kubeflow Pipelines
	$(KUBEFLOW_SUBMIT) run
kubeflow-schedule: venv  ## Schedule the spec (CRON=<6 fields>)
	$(KUBEFLOW_SUBMIT) schedule --cron "$${CRON-}"
kubeflow-schedules: venv  ## List the recurring runs
	$(KUBEFLOW_SUBMIT) schedules
kubeflow-unschedule: venv  ## Delete the recurring run ID=<id>
	$(KUBEFLOW_SUBMIT) unschedule $${ID:+--id "$$ID"}

# Kubeflow Pipelines' own backend compiler (kubeflow/argo/): the Argo Workflow KFP would run.
# It needs the module github.com/kubeflow/pipelines (backend 2.4.0); where the Go module
# proxy does not serve it, KFP_SRC names a local checkout of kubeflow/pipelines at 2.4.0.
KFP_ARGO_COMPILE := outputs/bin/kfp-argo-compile
KFP_SRC ?=
.PHONY: kfp-argo-compile
$(KFP_ARGO_COMPILE): kubeflow/argo/main.go kubeflow/argo/go.mod kubeflow/argo/go.sum
	mkdir -p $(dir $@) outputs/kfp-argo
ifeq ($(KFP_SRC),)
	cd kubeflow/argo && GOWORK=off go build -mod=mod -buildvcs=false -o ../../$@ .
else
	printf 'go 1.22.0\n\nuse %s\n\nreplace github.com/kubeflow/pipelines => %s\n' \
		"$(CURDIR)/kubeflow/argo" "$(abspath $(KFP_SRC))" > outputs/kfp-argo/go.work
	cd kubeflow/argo && GOWORK=$(CURDIR)/outputs/kfp-argo/go.work go build -buildvcs=false -o ../../$@ .
endif
kfp-argo-compile: $(KFP_ARGO_COMPILE)  ## Build KFP's own backend compiler (KFP_SRC=<checkout>)

# SeaweedFS, the S3 API behind KFP's default object store from KFP 2.15: the real server
# tests/s3_server.py starts. Built once with Go from its own module, by its own go.mod and
# go.sum (which `replace` a dependency, so `go install <module>@<version>` refuses it);
# the first build downloads about 700 MB of modules and takes about 9 minutes on 2 cores.
# Delete outputs/bin/weed to build it again (at another SEAWEEDFS_VERSION).
SEAWEEDFS_MODULE := github.com/seaweedfs/seaweedfs
SEAWEEDFS_VERSION := v0.0.0-20261109003541-7506e5f91cd6
.PHONY: seaweedfs
$(SEAWEEDFS):
	mkdir -p $(dir $@)
	source=$$(GOWORK=off go mod download -json $(SEAWEEDFS_MODULE)@$(SEAWEEDFS_VERSION) \
	  | sed -n 's/^\t"Dir": "\(.*\)",$$/\1/p'); \
	test -n "$$source"; \
	cd "$$source" && GOWORK=off GOFLAGS=-mod=readonly go build -buildvcs=false -trimpath \
	  -ldflags="-s -w" -o $(CURDIR)/$@.partial ./weed
	mv $@.partial $@
seaweedfs: $(SEAWEEDFS)  ## Build SeaweedFS, the tests' S3 server

# Kubeflow Pipelines' own driver (kubeflow/kfp_driver/), run against a local MLMD server
# (kubeflow/mlmd_server.py): the ExecutorInput KFP's driver hands each task. Built from
# KFP_SRC, a kubeflow/pipelines source tree at one of KFP_DRIVER_RELEASES (its VERSION
# file), into outputs/bin/kfp-driver-<release>, with that release's build tag.
KFP_DRIVER_RELEASES := 2.4.0 2.5.0 2.17.0
.PHONY: kfp-driver
kfp-driver:  ## Build KFP's own driver (KFP_SRC=<kubeflow/pipelines at a release>)
	@test -n "$(KFP_SRC)" || { echo "kfp-driver: set KFP_SRC to a kubeflow/pipelines source tree at one of $(KFP_DRIVER_RELEASES) (the Go module proxy refuses the module), e.g. git -C REPO worktree add /tmp/kfp-2.4.0 2.4.0" >&2; exit 1; }
	@release=$$(cat "$(KFP_SRC)/VERSION" 2>/dev/null || true); \
	case " $(KFP_DRIVER_RELEASES) " in *" $$release "*) ;; \
	  *) echo "kfp-driver: $(KFP_SRC)/VERSION says '$$release', not one of $(KFP_DRIVER_RELEASES)" >&2; exit 1;; esac; \
	work=$(CURDIR)/outputs/kfp-driver-$$release; src=$(abspath $(KFP_SRC)); \
	mkdir -p $$work outputs/bin && rm -f $$work/go.work && \
	(cd $$work && go work init $(CURDIR)/kubeflow/kfp_driver $$src && \
	  go work edit -replace github.com/kubeflow/pipelines@$$(awk '$$1 == "github.com/kubeflow/pipelines" \
	    {print $$2}' $(CURDIR)/kubeflow/kfp_driver/go.mod)=$$src) && \
	echo "kfp-driver: building outputs/bin/kfp-driver-$$release from $$src" && \
	cd kubeflow/kfp_driver && GOWORK=$$work/go.work go build -buildvcs=false \
	  -tags kfp_$$(echo $$release | cut -d. -f1,2 | tr . _) -o $(CURDIR)/outputs/bin/kfp-driver-$$release .
