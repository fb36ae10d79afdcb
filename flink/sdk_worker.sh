#!/bin/sh
# One Python SDK worker of the local Flink cluster (pipeline/flink.py). Beam's worker pool
# runs this as it runs the SDK container's entry point, with the container contract's
# flags (--id, --provision_endpoint, ...), and it runs that entry point: Beam's boot
# program, which fetches the job's staged files, pip-installs the job's package (from
# --setup_file) and starts the SDK harness.
#
# In a container every worker has a file system of its own; here the workers of a
# machine share one, so each gets a folder under BEAM_WORKERS_DIR for what boot writes:
# the staged files (--semi_persist_dir) and the job's package (pip's target, on the
# harness's PYTHONPATH). Boot installs into the environment it is given (no venv of its
# own under /opt), builds the package with the lock's setuptools (no build isolation)
# and fetches nothing (no package index): a cluster's workers may not reach one either.
set -eu
worker_dir=$(mktemp -d "$BEAM_WORKERS_DIR/worker-XXXXXX")
export RUN_PYTHON_SDK_IN_DEFAULT_ENVIRONMENT=1
export PIP_TARGET="$worker_dir/site-packages" PYTHONPATH="$worker_dir/site-packages"
# (pip reads its --no-* variables inverted: PIP_NO_BUILD_ISOLATION=0 is --no-build-isolation.)
export PIP_NO_INDEX=1 PIP_NO_BUILD_ISOLATION=0
exec "$BEAM_BOOT" --semi_persist_dir="$worker_dir" "$@"
