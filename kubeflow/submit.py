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

A command succeeds only when the API said so: every request has a timeout (--timeout), an
answer that is not the API's JSON (e.g. an auth proxy's login page, answered with 200) or
lacks the id asked for is an error, and no message carries the token or the endpoint's
password.
"""
import argparse
import copy
import datetime
import json
import os
import re
import sys
import urllib.parse
from typing import Optional

import kfp
import kfp_server_api
import urllib3
from kfp_server_api import rest
from kfp.client import (KF_PIPELINES_SA_TOKEN_ENV, KF_PIPELINES_SA_TOKEN_PATH,
                        ServiceAccountTokenVolumeCredentials)

from pipeline.config import PipelineConfig

REQUEST_TIMEOUT_S = 60
# A credential in a header that an error body or reason may quote, spelled as clients send
# it (not "bearer token" in a message).
_AUTHORIZATION = re.compile(r"\b(Bearer|Basic) +[^\s'\",;)]+")


class KfpAnswerError(Exception):
    """The API's endpoint answered, but not as the API does (or not in time)."""


def spec_path(config: PipelineConfig, spec_dir: str) -> str:
    """Where the compiled spec of this pipeline is written in spec_dir (YAML: what KFP
    uploads); `make kubeflow-compile` writes it in config.kubeflow_spec_dir."""
    return os.path.join(spec_dir, f"{config.pipeline_name}.yaml")


def schedule_name(config: PipelineConfig) -> str:
    """The display name of the pipeline's recurring run: one per experiment, whatever its cron."""
    return f"{config.pipeline_name} schedule"


def without_credentials(endpoint: str) -> str:
    """The endpoint as it may be printed: without user and password."""
    url = urllib.parse.urlsplit(endpoint)
    return url._replace(netloc=url.netloc.rpartition("@")[2]).geturl()


class Redactor:
    """Removes the token and the endpoint's password from text that may quote them."""

    def __init__(self, endpoint: str, token: Optional[str]):
        self.secrets = [secret for secret in (token, urllib.parse.urlsplit(endpoint).password)
                        if secret]

    def __call__(self, text) -> str:
        text = text.decode(errors="replace") if isinstance(text, bytes) else str(text or "")
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return _AUTHORIZATION.sub(r"\1 ***", text)


class GuardedRest(rest.RESTClientObject):
    """kfp's REST client with a timeout on every request, only JSON objects taken as the
    API's answers, and nothing a credential could be in kept in the errors it raises (kfp
    logs them, and a proxy may echo the request's headers)."""

    def __init__(self, configuration, endpoint: str, redact: Redactor, timeout_s: float):
        configuration = copy.copy(configuration)
        # urllib3 would retry a GET that timed out, 3 times: the timeout is the whole wait.
        configuration.retries = urllib3.Retry(3, read=False)
        super().__init__(configuration)
        self.endpoint, self.redact, self.timeout_s = endpoint, redact, timeout_s
        self.last_answer = ""  # what the latest request got: status, content type, first line

    def request(self, method, url, *args, **kwargs):
        path = urllib.parse.urlsplit(url).path
        # kfp sets no timeout: a socket that accepts and never answers would block forever.
        kwargs["_request_timeout"] = (self.timeout_s, self.timeout_s)
        try:
            response = super().request(method, url, *args, **kwargs)
        except kfp_server_api.ApiException as error:
            # kfp's API client decodes the body: bytes it stays.
            error.reason, error.body = self.redact(error.reason), self.redact(error.body).encode()
            error.headers = None
            raise
        except urllib3.exceptions.TimeoutError:
            raise KfpAnswerError(f"KFP API at {self.endpoint} did not answer within "
                                 f"{self.timeout_s} s ({method} {path}).") from None
        first_line = self.redact(response.data).strip().partition("\n")[0][:200]
        self.last_answer = (f"{response.status}, {response.getheader('Content-Type')}, "
                            f"first line {first_line!r}")
        try:
            answer = json.loads(response.data)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise KfpAnswerError(f"KFP API at {self.endpoint} answered {method} {path} with "
                                 f"something not the API's JSON: {self.last_answer}. Is the "
                                 "endpoint the API's, and the token valid?")
        return response


class Client(kfp.Client):
    """kfp's client, every request of which goes through GuardedRest."""

    def __init__(self, guarded_rest, **options):
        self._make_guarded_rest = guarded_rest
        super().__init__(**options)
        self._guard()

    def _guard(self) -> None:
        api_client = self._healthz_api.api_client  # every service's, one
        if not isinstance(api_client.rest_client, GuardedRest):
            api_client.rest_client = self._make_guarded_rest(api_client.configuration)

    def get_kfp_healthz(self, sleep_duration: int = 5):
        self._guard()  # kfp.Client's constructor asks this before it returns
        return super().get_kfp_healthz(sleep_duration)

    def answered(self, value: Optional[str], key: str) -> str:
        """The id an answer carries; an answer without it is not the API's."""
        if not value:
            rest_client = self._healthz_api.api_client.rest_client
            raise KfpAnswerError(f"KFP API at {rest_client.endpoint} answered without {key}: "
                                 f"{rest_client.last_answer}.")
        return value


def connect(endpoint: str, namespace: Optional[str], token: Optional[str],
            timeout_s: float = REQUEST_TIMEOUT_S) -> Client:
    """kfp's client; a namespace or token not given is left to kfp's own defaults."""
    printable = without_credentials(endpoint)
    redact = Redactor(endpoint, token)
    # kfp prints links to the UI, on the API's host unless told.
    options = {"ui_host": printable}
    if namespace:
        options["namespace"] = namespace
    if token:
        options["existing_token"] = token
    else:
        # kfp.Client reads this file only when it finds the API itself (no endpoint, in a pod).
        token_file = os.environ.get(KF_PIPELINES_SA_TOKEN_ENV) or KF_PIPELINES_SA_TOKEN_PATH
        if os.path.isfile(token_file):
            options["credentials"] = ServiceAccountTokenVolumeCredentials(token_file)
    return Client(lambda configuration: GuardedRest(configuration, printable, redact, timeout_s),
                  host=endpoint, **options)


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


def upload(client: Client, spec: str, config: PipelineConfig) -> None:
    name = config.pipeline_name
    pipeline_id = client.get_pipeline_id(name)
    if pipeline_id is None:
        pipeline = client.upload_pipeline(spec, pipeline_name=name)
        print(f"Uploaded pipeline {name} "
              f"({client.answered(pipeline.pipeline_id, 'pipeline_id')}).")
        return
    version_name = f"{name} {datetime.datetime.now().isoformat(timespec='seconds')}"
    version = client.upload_pipeline_version(
        spec, pipeline_version_name=version_name, pipeline_id=pipeline_id)
    version_id = client.answered(version.pipeline_version_id, "pipeline_version_id")
    print(f"Uploaded version {version_name!r} ({version_id}) of {name}.")


def run(client: Client, spec: str, config: PipelineConfig, experiment: str,
        parameters: dict[str, str]) -> None:
    experiment_id = client.answered(client.create_experiment(experiment).experiment_id,
                                    "experiment_id")
    job_name = f"{config.pipeline_name} {datetime.datetime.now().isoformat(timespec='seconds')}"
    result = client.run_pipeline(
        experiment_id, job_name, pipeline_package_path=spec, params=parameters,
        pipeline_root=config.pipeline_root)
    print(f"Started run {client.answered(result.run_id, 'run_id')}.")


def schedule(client: Client, spec: str, config: PipelineConfig, experiment: str,
             parameters: dict[str, str], cron: str) -> None:
    experiment_id = client.answered(client.create_experiment(experiment).experiment_id,
                                    "experiment_id")
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
    recurring_run_id = client.answered(recurring_run.recurring_run_id, "recurring_run_id")
    print(f"Created recurring run {recurring_run_id} {name!r}: {cron}.")


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
    parser.add_argument("--spec", default=spec_path(config, config.kubeflow_spec_dir),
                        help="the compiled spec (default: %(default)s)")
    parser.add_argument("--experiment", default=config.pipeline_name)
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="a pipeline parameter for this run: data_root, train_args")
    parser.add_argument("--cron", help="schedule: 6-field cron, e.g. '0 0 3 * * 1'")
    parser.add_argument("--id", dest="recurring_run_id",
                        help="unschedule: delete this recurring run only")
    parser.add_argument("--timeout", type=float, default=REQUEST_TIMEOUT_S, metavar="SECONDS",
                        help="for each request to answer (default: %(default)s)")
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
    endpoint = without_credentials(args.endpoint)
    redact = Redactor(args.endpoint, args.existing_token)
    try:
        client = connect(args.endpoint, args.namespace, args.existing_token, args.timeout)
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
    except KfpAnswerError as error:
        print(error, file=sys.stderr)
        return 1
    except kfp_server_api.ApiException as error:
        print(f"KFP API at {endpoint} answered {error.status} {redact(error.reason)}: "
              f"{redact(error.body).strip()}", file=sys.stderr)
        return 1
    except urllib3.exceptions.HTTPError as error:
        print(f"Cannot reach the KFP API at {endpoint}: {redact(error)}", file=sys.stderr)
        return 1
    except TimeoutError as error:
        # kfp.Client, given no namespace, asks the API whether it is multi-user, and gives up
        # after 5 failed tries (~25 s): the endpoint is likely not the API's.
        print(f"KFP API at {endpoint}: {redact(error)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
