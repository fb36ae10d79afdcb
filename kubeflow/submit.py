"""Submits the compiled spec (kubeflow/runner.py) to a Kubeflow Pipelines API server.

    python -m kubeflow.submit upload
    python -m kubeflow.submit run        [--param data_root=gs://...]
    python -m kubeflow.submit schedule   --cron "0 0 3 * * 1"
    python -m kubeflow.submit schedules
    python -m kubeflow.submit unschedule [--id RECURRING_RUN_ID]

`upload` adds the spec as a new version of the pipeline (creating it the first time);
`run` starts one run of the spec itself, in the experiment named after the pipeline,
writing under the config's pipeline root. `schedule` makes the same a recurring run, the
experiment's one schedule of this pipeline: run again, it replaces it. `schedules` lists
that schedule, `unschedule` deletes it (or, with --id, that recurring run).

Connection, as kfp's client and CLI take it:
  endpoint   --endpoint, else KF_PIPELINES_ENDPOINT (kfp.Client's), else KFP_ENDPOINT (kfp CLI's)
  namespace  --namespace, else KFP_NAMESPACE (kfp CLI's), else kfp's context: the namespace
             saved in ~/.config/kfp/context.json or, in a pod on multi-user Kubeflow, the
             pod's. Multi-user Kubeflow needs one: the namespace of your profile.
  token      --existing-token, else KFP_EXISTING_TOKEN (kfp CLI's), else the service-account
             token in the file KF_PIPELINES_SA_TOKEN_PATH names (default
             /var/run/secrets/kubeflow/pipelines/token), if there is one.
"""
import argparse
import datetime
import json
import os
import sys
from typing import Optional

import kfp
import kfp_server_api
import urllib3
from kfp.client import (KF_PIPELINES_SA_TOKEN_ENV, KF_PIPELINES_SA_TOKEN_PATH,
                        ServiceAccountTokenVolumeCredentials)

from pipeline.config import PipelineConfig

SPEC_DIR = os.path.join("outputs", "kubeflow")


def spec_path(config: PipelineConfig, spec_dir: str = SPEC_DIR) -> str:
    """Where the compiled spec of this pipeline is written (YAML: what KFP uploads)."""
    return os.path.join(spec_dir, f"{config.pipeline_name}.yaml")


def schedule_name(config: PipelineConfig) -> str:
    """The display name of the pipeline's recurring run: one per experiment, whatever its cron."""
    return f"{config.pipeline_name} schedule"


def connect(endpoint: str, namespace: Optional[str], token: Optional[str]) -> kfp.Client:
    """kfp's client; a namespace or token not given is left to kfp's own defaults."""
    options = {}
    if namespace:
        options["namespace"] = namespace
    if token:
        options["existing_token"] = token
    else:
        # kfp.Client reads this file only when it finds the API itself (no endpoint, in a pod).
        token_file = os.environ.get(KF_PIPELINES_SA_TOKEN_ENV) or KF_PIPELINES_SA_TOKEN_PATH
        if os.path.isfile(token_file):
            options["credentials"] = ServiceAccountTokenVolumeCredentials(token_file)
    return kfp.Client(host=endpoint, **options)


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


def _named(name: str) -> str:
    """A KFP list filter: display_name == name."""
    return json.dumps({"predicates": [
        {"operation": "EQUALS", "key": "display_name", "stringValue": name}]})


def _recurring_runs(client: kfp.Client, experiment_id: str,
                    name: str) -> list[kfp_server_api.V2beta1RecurringRun]:
    """The experiment's recurring runs of that name, every page of them."""
    found, page_token = [], ""
    while True:
        page = client.list_recurring_runs(page_token=page_token, experiment_id=experiment_id,
                                          filter=_named(name))
        found += page.recurring_runs or []
        page_token = page.next_page_token
        if not page_token:
            return found


def _schedules(client: kfp.Client, config: PipelineConfig,
               experiment: str) -> list[kfp_server_api.V2beta1RecurringRun]:
    """The pipeline's schedules in the experiment (in the client's namespace), if it exists."""
    experiments = client.list_experiments(filter=_named(experiment)).experiments
    if not experiments:
        return []
    return _recurring_runs(client, experiments[0].experiment_id, schedule_name(config))


def _describe(recurring_run: kfp_server_api.V2beta1RecurringRun) -> str:
    trigger = recurring_run.trigger
    when = (trigger.cron_schedule.cron if trigger.cron_schedule
            else f"every {trigger.periodic_schedule.interval_second} s")
    status = (recurring_run.status or "").lower()
    return f"{recurring_run.recurring_run_id}  {recurring_run.display_name!r}  {when}  {status}"


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
    name = schedule_name(config)
    # KFP cannot change a recurring run's trigger or spec: the old one is deleted, and before
    # the new one is created, so that a failed creation leaves no schedule (and says so; a
    # rerun makes it) rather than two.
    for old in _recurring_runs(client, experiment_id, name):
        client.delete_recurring_run(old.recurring_run_id)
        print(f"Deleted the schedule it replaces: {_describe(old)}")
    recurring_run = client.create_recurring_run(
        experiment_id, name, cron_expression=cron,
        # One run at a time, and no backfill of the runs missed while paused.
        max_concurrency=1, no_catchup=True,
        pipeline_package_path=spec, params=parameters, pipeline_root=config.pipeline_root)
    print(f"Created recurring run {recurring_run.recurring_run_id} {name!r}: {cron}.")


def list_schedules(client: kfp.Client, config: PipelineConfig, experiment: str) -> None:
    schedules = _schedules(client, config, experiment)
    if not schedules:
        print(f"No schedule {schedule_name(config)!r} in experiment {experiment!r}.")
    for recurring_run in schedules:
        print(_describe(recurring_run))


def unschedule(client: kfp.Client, config: PipelineConfig, experiment: str,
               recurring_run_id: Optional[str]) -> None:
    if recurring_run_id:
        client.delete_recurring_run(recurring_run_id)
        print(f"Deleted recurring run {recurring_run_id}.")
        return
    schedules = _schedules(client, config, experiment)
    if not schedules:
        print(f"No schedule {schedule_name(config)!r} in experiment {experiment!r} to delete.")
    for recurring_run in schedules:
        client.delete_recurring_run(recurring_run.recurring_run_id)
        print(f"Deleted {_describe(recurring_run)}")


def main(argv: list[str]) -> int:
    config = PipelineConfig.from_env()
    parser = argparse.ArgumentParser(prog="python -m kubeflow.submit", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["upload", "run", "schedule", "schedules",
                                            "unschedule"])
    parser.add_argument("--endpoint", default=(os.environ.get("KF_PIPELINES_ENDPOINT")
                                               or os.environ.get("KFP_ENDPOINT")),
                        help="KFP API, e.g. http://localhost:8080 (port-forwarded ml-pipeline-ui)")
    parser.add_argument("--namespace", default=os.environ.get("KFP_NAMESPACE"),
                        help="multi-user Kubeflow: your profile's namespace")
    parser.add_argument("--existing-token", default=os.environ.get("KFP_EXISTING_TOKEN"),
                        help="a bearer token for the API")
    parser.add_argument("--spec", default=spec_path(config),
                        help="the compiled spec (default: %(default)s)")
    parser.add_argument("--experiment", default=config.pipeline_name)
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="a pipeline parameter for this run: data_root, train_args")
    parser.add_argument("--cron", help="schedule: 6-field cron, e.g. '0 0 3 * * 1'")
    parser.add_argument("--id", dest="recurring_run_id",
                        help="unschedule: delete this recurring run only")
    args = parser.parse_args(argv)
    if not args.endpoint:
        parser.error("no KFP endpoint: pass --endpoint or set KF_PIPELINES_ENDPOINT "
                     "(or KFP_ENDPOINT).")
    if args.command in ("upload", "run", "schedule") and not os.path.isfile(args.spec):
        parser.error(f"no compiled spec at {args.spec}: run `make kubeflow-compile` first.")
    if args.command == "schedule" and not args.cron:
        parser.error("schedule needs --cron.")
    parameters = _parameters(args.param)
    cron = _check_cron(args.cron) if args.command == "schedule" else None
    try:
        client = connect(args.endpoint, args.namespace, args.existing_token)
        if args.command == "upload":
            upload(client, args.spec, config)
        elif args.command == "run":
            run(client, args.spec, config, args.experiment, parameters)
        elif args.command == "schedule":
            schedule(client, args.spec, config, args.experiment, parameters, cron)
        elif args.command == "schedules":
            list_schedules(client, config, args.experiment)
        else:
            unschedule(client, config, args.experiment, args.recurring_run_id)
    except kfp_server_api.ApiException as error:
        print(f"KFP API at {args.endpoint} answered {error.status} {error.reason}: "
              f"{(error.body or '').strip()}", file=sys.stderr)
        return 1
    except urllib3.exceptions.HTTPError as error:
        print(f"Cannot reach the KFP API at {args.endpoint}: {error}", file=sys.stderr)
        return 1
    except TimeoutError as error:
        # kfp.Client, given no namespace, asks the API whether it is multi-user, and gives up
        # after 5 failed tries (~25 s): the endpoint is likely not the API's.
        print(f"KFP API at {args.endpoint}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
