"""Submits the compiled spec (kubeflow/runner.py) to a Kubeflow Pipelines API server.

    python -m kubeflow.submit upload   --endpoint URL
    python -m kubeflow.submit run      --endpoint URL [--param data_root=gs://...]
    python -m kubeflow.submit schedule --endpoint URL --cron "0 0 3 * * 1"

`upload` adds the spec as a new version of the pipeline (creating it the first time);
`run` starts one run and `schedule` creates a recurring run, both of the spec itself,
in the experiment named after the pipeline, writing under the config's pipeline root.
The endpoint may also come from KFP_ENDPOINT.
"""
import argparse
import datetime
import os
import sys

import kfp
import kfp_server_api
import urllib3

from kubeflow.runner import spec_path
from pipeline.config import PipelineConfig


def _parameters(pairs: list[str]) -> dict[str, str]:
    """["name=value", ...] -> {name: value}."""
    parameters = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise SystemExit(f"--param {pair!r}: expected name=value, e.g. data_root=gs://b/d.")
        parameters[name] = value
    return parameters


def _check_cron(cron: str) -> str:
    if len(cron.split()) != 6:
        raise SystemExit(f"--cron {cron!r}: KFP expects 6 fields (second minute hour "
                         "day-of-month month day-of-week), e.g. '0 0 3 * * 1' for Mondays 03:00.")
    return cron


def upload(client: kfp.Client, spec: str, config: PipelineConfig) -> None:
    name = config.pipeline_name
    pipeline_id = client.get_pipeline_id(name)
    if pipeline_id is None:
        pipeline = client.upload_pipeline(spec, pipeline_name=name)
        print(f"Uploaded pipeline {name} ({pipeline.pipeline_id}).")
        return
    version_name = f"{name} {datetime.datetime.now().isoformat(timespec='seconds')}"
    version = client.upload_pipeline_version(
        spec, pipeline_version_name=version_name, pipeline_id=pipeline_id)
    print(f"Uploaded version {version_name!r} ({version.pipeline_version_id}) of {name}.")


def run(client: kfp.Client, spec: str, config: PipelineConfig, experiment: str,
        parameters: dict[str, str]) -> None:
    experiment_id = client.create_experiment(experiment).experiment_id
    job_name = f"{config.pipeline_name} {datetime.datetime.now().isoformat(timespec='seconds')}"
    result = client.run_pipeline(
        experiment_id, job_name, pipeline_package_path=spec, params=parameters,
        pipeline_root=config.pipeline_root)
    print(f"Started run {result.run_id}.")


def schedule(client: kfp.Client, spec: str, config: PipelineConfig, experiment: str,
             parameters: dict[str, str], cron: str) -> None:
    experiment_id = client.create_experiment(experiment).experiment_id
    recurring_run = client.create_recurring_run(
        experiment_id, f"{config.pipeline_name} ({cron})", cron_expression=cron,
        # One run at a time, and no backfill of the runs missed while paused.
        max_concurrency=1, no_catchup=True,
        pipeline_package_path=spec, params=parameters, pipeline_root=config.pipeline_root)
    print(f"Created recurring run {recurring_run.recurring_run_id}: {cron}.")


def main(argv: list[str]) -> int:
    config = PipelineConfig.from_env()
    parser = argparse.ArgumentParser(prog="python -m kubeflow.submit", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["upload", "run", "schedule"])
    parser.add_argument("--endpoint", default=os.environ.get("KFP_ENDPOINT"),
                        help="KFP API, e.g. http://localhost:8080 (port-forwarded ml-pipeline-ui)")
    parser.add_argument("--spec", default=spec_path(config),
                        help="the compiled spec (default: %(default)s)")
    parser.add_argument("--experiment", default=config.pipeline_name)
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="a pipeline parameter for this run: data_root, train_args")
    parser.add_argument("--cron", help="schedule: 6-field cron, e.g. '0 0 3 * * 1'")
    args = parser.parse_args(argv)
    if not args.endpoint:
        parser.error("no KFP endpoint: pass --endpoint or set KFP_ENDPOINT.")
    if not os.path.isfile(args.spec):
        parser.error(f"no compiled spec at {args.spec}: run `make kubeflow-compile` first.")
    if args.command == "schedule" and not args.cron:
        parser.error("schedule needs --cron.")
    parameters = _parameters(args.param)
    cron = _check_cron(args.cron) if args.command == "schedule" else None
    try:
        client = kfp.Client(host=args.endpoint)
        if args.command == "upload":
            upload(client, args.spec, config)
        elif args.command == "run":
            run(client, args.spec, config, args.experiment, parameters)
        else:
            schedule(client, args.spec, config, args.experiment, parameters, cron)
    except kfp_server_api.ApiException as error:
        print(f"KFP API at {args.endpoint} answered {error.status} {error.reason}: "
              f"{(error.body or '').strip()}", file=sys.stderr)
        return 1
    except urllib3.exceptions.HTTPError as error:
        print(f"Cannot reach the KFP API at {args.endpoint}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
