"""kubeflow/submit.py against a loopback Kubeflow Pipelines API.

The fake answers the KFP v2beta1 REST calls the kfp client makes, keeps experiments and
recurring runs in memory and records every request. In multi-user mode it behaves as
multi-user Kubeflow: healthz says so, every other call needs the bearer token, and
experiments live in a namespace. The spec submitted is a small hand-written one: the
submission only sends it, so nothing here compiles the pipeline.
"""
import itertools
import json
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import kfp
import pytest
import yaml

from kubeflow import submit
from pipeline.source import REPO_ROOT

TOKEN = "token-of-alice"
ALICE = ("--namespace", "team-a", "--existing-token", TOKEN)
SCHEDULE = "cats-dogs-resnet schedule"
SPEC = {
    "pipelineInfo": {"name": "cats-dogs-resnet"},
    "root": {
        "inputDefinitions": {"parameters": {"data_root": {
            "parameterType": "STRING", "defaultValue": "gs://bucket/cats-dogs"}}},
        "dag": {"tasks": {"ImageExampleGen": {
            "taskInfo": {"name": "ImageExampleGen"},
            "componentRef": {"name": "ImageExampleGen"}}}},
    },
    "components": {"ImageExampleGen": {"executorLabel": "ImageExampleGen_executor"}},
    "deploymentSpec": {"executors": {"ImageExampleGen_executor": {
        "container": {"image": "cats-dogs-resnet:0.1.0"}}}},
    "schemaVersion": "2.1.0",
    "sdkVersion": "tfx-1.16.0",
}


class FakeKfp:
    """The API's state, and its answer to each call as (HTTP status, JSON body)."""

    def __init__(self, multi_user: bool):
        self.multi_user = multi_user
        self.requests = []
        self.pipelines = []
        self.experiments = []
        self.recurring_runs = []
        self.fail_with = None  # an HTTP status every call answers
        self.drop = None  # a key every answer leaves out
        self.echo_authorization = False  # a refusal quotes the request's Authorization
        self._ids = itertools.count(1)

    def add_experiment(self, name, namespace=""):
        experiment = {"experiment_id": f"experiment-{next(self._ids)}", "display_name": name,
                      "namespace": namespace}
        self.experiments.append(experiment)
        return experiment

    def add_recurring_run(self, experiment, body):
        recurring_run = {
            **body, "recurring_run_id": f"recurring-{next(self._ids)}",
            "experiment_id": experiment["experiment_id"], "namespace": experiment["namespace"],
            "status": "ENABLED" if body.get("mode", "ENABLE") == "ENABLE" else "DISABLED"}
        self.recurring_runs.append(recurring_run)
        return recurring_run

    def schedules(self, namespace=""):
        return [run for run in self.recurring_runs
                if run["display_name"] == SCHEDULE and run["namespace"] == namespace]

    @staticmethod
    def _filtered(items, query):
        """Items matching the query's filter, which kfp sends as JSON: EQUALS predicates."""
        predicates = json.loads(query.get("filter", ['{"predicates": []}'])[0])["predicates"]
        for predicate in predicates:
            assert predicate["operation"] in ("EQUALS", 1), predicate
        return [item for item in items if all(
            item.get(predicate["key"]) == predicate["stringValue"] for predicate in predicates)]

    def _missing_namespace(self, namespace):
        if self.multi_user and not namespace:
            return 400, {"code": 3, "message": "Invalid input error: in multi-user mode, "
                                               "experiments need a namespace"}
        return None

    def list_pipelines(self, query, body):
        return 200, {"pipelines": self.pipelines, "total_size": len(self.pipelines)}

    def upload_pipeline(self, query, body):
        return 200, {"pipeline_id": "pipeline-1", "display_name": query["name"][0]}

    def upload_pipeline_version(self, query, body):
        return 200, {"pipeline_id": query["pipelineid"][0], "pipeline_version_id": "version-2"}

    def list_experiments(self, query, body):
        namespace = query.get("namespace", [""])[0]
        refusal = self._missing_namespace(namespace)
        if refusal:
            return refusal
        found = self._filtered([experiment for experiment in self.experiments
                                if experiment["namespace"] == namespace], query)
        return 200, {"experiments": found, "total_size": len(found)}

    def create_experiment(self, query, body):
        return (self._missing_namespace(body.get("namespace"))
                or (200, self.add_experiment(body["display_name"], body.get("namespace", ""))))

    def create_run(self, query, body):
        return 200, {"run_id": "run-1", "experiment_id": body["experiment_id"]}

    def create_recurring_run(self, query, body):
        [experiment] = [experiment for experiment in self.experiments
                        if experiment["experiment_id"] == body["experiment_id"]]
        return 200, self.add_recurring_run(experiment, body)

    def list_recurring_runs(self, query, body):
        found = self.recurring_runs
        for key in ("experiment_id", "namespace"):
            if key in query:
                found = [run for run in found if run[key] == query[key][0]]
        found = self._filtered(found, query)
        start = int(query.get("page_token", ["0"])[0] or 0)
        end = start + int(query.get("page_size", [len(found)])[0])
        # The proto names this field recurringRuns, unlike every other list's snake_case.
        page = {"recurringRuns": found[start:end], "total_size": len(found)}
        if end < len(found):
            page["next_page_token"] = str(end)
        return 200, page

    def _recurring_run(self, recurring_run_id):
        return next((run for run in self.recurring_runs
                     if run["recurring_run_id"] == recurring_run_id), None)

    def delete_recurring_run(self, query, body, recurring_run_id):
        recurring_run = self._recurring_run(recurring_run_id)
        if recurring_run is None:
            return 404, {"code": 5, "message": f"recurring run {recurring_run_id} not found"}
        self.recurring_runs.remove(recurring_run)
        return 200, {}

    def disable_recurring_run(self, query, body, recurring_run_id):
        self._recurring_run(recurring_run_id)["status"] = "DISABLED"
        return 200, {}


ROUTES = [
    ("GET", "/apis/v2beta1/pipelines", FakeKfp.list_pipelines),
    ("POST", "/apis/v2beta1/pipelines/upload", FakeKfp.upload_pipeline),
    ("POST", "/apis/v2beta1/pipelines/upload_version", FakeKfp.upload_pipeline_version),
    ("GET", "/apis/v2beta1/experiments", FakeKfp.list_experiments),
    ("POST", "/apis/v2beta1/experiments", FakeKfp.create_experiment),
    ("POST", "/apis/v2beta1/runs", FakeKfp.create_run),
    ("GET", "/apis/v2beta1/recurringruns", FakeKfp.list_recurring_runs),
    ("POST", "/apis/v2beta1/recurringruns", FakeKfp.create_recurring_run),
    ("DELETE", "/apis/v2beta1/recurringruns/([^/:]+)", FakeKfp.delete_recurring_run),
    ("POST", "/apis/v2beta1/recurringruns/([^/:]+):disable", FakeKfp.disable_recurring_run),
]


class FakeKfpApi(BaseHTTPRequestHandler):
    """HTTP in front of the server's FakeKfp."""

    def log_message(self, *args):
        pass

    def _answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method):
        api = self.server.api
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        api.requests.append({
            "method": method, "path": url.path, "query": query, "body": body,
            "content_type": self.headers.get("Content-Type", ""),
            "authorization": self.headers.get("Authorization")})
        if api.fail_with:
            return self._answer(api.fail_with, {"code": 5,
                                                "message": f"fake failure {api.fail_with}"})
        if url.path == "/apis/v2beta1/healthz":
            return self._answer(200, {"multi_user": api.multi_user})
        if api.multi_user and self.headers.get("Authorization") != f"Bearer {TOKEN}":
            echoed = (f" (got {self.headers.get('Authorization')})" if api.echo_authorization
                      else "")
            return self._answer(401, {"code": 16, "message": f"no valid bearer token{echoed}"})
        for route_method, pattern, handler in ROUTES:
            match = re.fullmatch(pattern, url.path)
            if route_method == method and match:
                is_json = self.headers.get("Content-Type", "").startswith("application/json")
                status, answer = handler(api, query, json.loads(body) if is_json and body
                                         else body, *match.groups())
                answer.pop(api.drop, None)
                return self._answer(status, answer)
        self._answer(404, {"code": 5, "message": f"no route {method} {url.path}"})

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_DELETE(self):
        self._handle("DELETE")


def _serve(api):
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeKfpApi)
    server.api = api
    api.endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    # Polled often: shutdown() waits for the next poll.
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield api
    server.shutdown()
    server.server_close()


@pytest.fixture
def kfp_api():
    yield from _serve(FakeKfp(multi_user=False))


@pytest.fixture
def multi_user_api():
    yield from _serve(FakeKfp(multi_user=True))


@pytest.fixture
def submit_env(monkeypatch, tmp_path):
    monkeypatch.setenv("OUTPUT_DIR", "gs://bucket/runs")
    for name in ("KF_PIPELINES_ENDPOINT", "KFP_ENDPOINT", "KFP_NAMESPACE", "KFP_EXISTING_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KF_PIPELINES_SA_TOKEN_PATH", str(tmp_path / "no-sa-token"))
    # kfp fixed its context file's path, under the real home, when it was imported; and in a
    # pod it would read the pod's namespace.
    monkeypatch.setattr(kfp.Client, "_LOCAL_KFP_CONTEXT", str(tmp_path / "kfp-context.json"))
    monkeypatch.setattr(kfp.Client, "_NAMESPACE_PATH", str(tmp_path / "no-pod-namespace"))
    return tmp_path


@pytest.fixture
def spec_file(tmp_path):
    path = tmp_path / "cats-dogs-resnet.yaml"
    path.write_text(yaml.safe_dump(SPEC))
    return str(path)


def _submit(api, *argv):
    return submit.main([*argv, "--endpoint", api.endpoint])


def _posted(api, path):
    return [json.loads(request["body"]) for request in api.requests
            if request["method"] == "POST" and request["path"] == path]


def _listed(api, path):
    return [request["query"] for request in api.requests
            if request["method"] == "GET" and request["path"] == path]


# --- Submission ----------------------------------------------------------------------

def test_run_sends_the_spec_parameters_root_and_experiment(kfp_api, submit_env, spec_file):
    code = _submit(kfp_api, "run", "--spec", spec_file,
                   "--param", "data_root=gs://bucket/new-images",
                   "--param", 'train_args={"num_steps": 3000}')
    assert code == 0
    [experiment] = kfp_api.experiments
    assert experiment["display_name"] == "cats-dogs-resnet"
    [run] = _posted(kfp_api, "/apis/v2beta1/runs")
    assert run["experiment_id"] == experiment["experiment_id"]
    assert run["display_name"].startswith("cats-dogs-resnet ")
    assert run["pipeline_spec"] == SPEC
    assert run["runtime_config"] == {
        "parameters": {"data_root": "gs://bucket/new-images",
                       "train_args": '{"num_steps": 3000}'},
        "pipeline_root": "gs://bucket/runs/pipeline_root/cats-dogs-resnet",
    }


def test_schedule_sends_the_cron_and_runs_one_at_a_time(kfp_api, submit_env, spec_file):
    code = _submit(kfp_api, "schedule", "--spec", spec_file, "--cron", "0 0 3 * * 1",
                   "--experiment", "weekly-retraining")
    assert code == 0
    [experiment] = kfp_api.experiments
    assert experiment["display_name"] == "weekly-retraining"
    [recurring] = _posted(kfp_api, "/apis/v2beta1/recurringruns")
    assert recurring["display_name"] == SCHEDULE
    assert recurring["trigger"] == {"cron_schedule": {"cron": "0 0 3 * * 1"}}
    assert recurring["mode"] == "ENABLE"
    assert (recurring["max_concurrency"], recurring["no_catchup"]) == (1, True)
    assert recurring["experiment_id"] == experiment["experiment_id"]
    assert recurring["pipeline_spec"] == SPEC
    assert recurring["runtime_config"]["pipeline_root"] == (
        "gs://bucket/runs/pipeline_root/cats-dogs-resnet")


def test_upload_creates_the_pipeline_then_adds_versions(kfp_api, submit_env, spec_file):
    spec_bytes = Path(spec_file).read_bytes()
    assert _submit(kfp_api, "upload", "--spec", spec_file) == 0
    [upload] = [r for r in kfp_api.requests if r["path"].endswith("/pipelines/upload")]
    assert upload["query"]["name"] == ["cats-dogs-resnet"]
    assert upload["content_type"].startswith("multipart/form-data")
    assert spec_bytes in upload["body"]

    kfp_api.pipelines = [{"pipeline_id": "pipeline-1", "display_name": "cats-dogs-resnet"}]
    assert _submit(kfp_api, "upload", "--spec", spec_file) == 0
    [version] = [r for r in kfp_api.requests if r["path"].endswith("/upload_version")]
    assert version["query"]["pipelineid"] == ["pipeline-1"]
    assert version["query"]["name"][0].startswith("cats-dogs-resnet ")
    assert spec_bytes in version["body"]


# --- Endpoint, namespace and credentials, as kfp takes them --------------------------

@pytest.mark.parametrize("variable", ["KF_PIPELINES_ENDPOINT", "KFP_ENDPOINT"])
def test_the_endpoint_may_come_from_kfp_variables(kfp_api, submit_env, spec_file, monkeypatch,
                                                   variable):
    monkeypatch.setenv(variable, kfp_api.endpoint)
    assert submit.main(["run", "--spec", spec_file]) == 0
    assert _posted(kfp_api, "/apis/v2beta1/runs")


def test_kf_pipelines_endpoint_wins_over_kfp_endpoint(kfp_api, submit_env, spec_file,
                                                      monkeypatch):
    monkeypatch.setenv("KF_PIPELINES_ENDPOINT", kfp_api.endpoint)
    monkeypatch.setenv("KFP_ENDPOINT", "http://127.0.0.1:1")
    assert submit.main(["run", "--spec", spec_file]) == 0


def test_no_endpoint_names_both_variables(submit_env, spec_file, capsys):
    with pytest.raises(SystemExit):
        submit.main(["run", "--spec", spec_file])
    assert "KF_PIPELINES_ENDPOINT" in capsys.readouterr().err


def test_multi_user_calls_carry_the_token_and_the_namespace(multi_user_api, submit_env,
                                                            spec_file):
    assert _submit(multi_user_api, "run", "--spec", spec_file, *ALICE) == 0
    assert {request["authorization"] for request in multi_user_api.requests} == {
        f"Bearer {TOKEN}"}
    assert [query["namespace"] for query in _listed(multi_user_api,
                                                    "/apis/v2beta1/experiments")] == [["team-a"]]
    [experiment] = _posted(multi_user_api, "/apis/v2beta1/experiments")
    assert experiment["namespace"] == "team-a"
    assert _posted(multi_user_api, "/apis/v2beta1/runs")


def test_the_namespace_and_token_may_come_from_the_environment(multi_user_api, submit_env,
                                                               spec_file, monkeypatch):
    monkeypatch.setenv("KFP_NAMESPACE", "team-a")
    monkeypatch.setenv("KFP_EXISTING_TOKEN", TOKEN)
    assert _submit(multi_user_api, "run", "--spec", spec_file) == 0
    [experiment] = multi_user_api.experiments
    assert experiment["namespace"] == "team-a"


def test_the_namespace_may_come_from_kfps_context(multi_user_api, submit_env, spec_file):
    (submit_env / "kfp-context.json").write_text(json.dumps({"namespace": "team-a"}))
    assert _submit(multi_user_api, "run", "--spec", spec_file,
                   "--existing-token", TOKEN) == 0
    [experiment] = multi_user_api.experiments
    assert experiment["namespace"] == "team-a"


def test_the_service_account_token_file_is_used_without_a_token(multi_user_api, submit_env,
                                                                spec_file, monkeypatch):
    token_file = submit_env / "sa-token"
    token_file.write_text(TOKEN + "\n")
    monkeypatch.setenv("KF_PIPELINES_SA_TOKEN_PATH", str(token_file))
    assert _submit(multi_user_api, "run", "--spec", spec_file, "--namespace", "team-a") == 0
    assert {request["authorization"] for request in multi_user_api.requests} == {
        f"Bearer {TOKEN}"}


def test_multi_user_kubeflow_refuses_a_call_without_token_or_namespace(
        multi_user_api, submit_env, spec_file, capsys):
    assert _submit(multi_user_api, "run", "--spec", spec_file, "--namespace", "team-a") == 1
    assert re.search(r"answered 401 .*no valid bearer token", capsys.readouterr().err)
    assert _submit(multi_user_api, "run", "--spec", spec_file,
                   "--existing-token", TOKEN) == 1
    assert re.search(r"answered 400 .*need a namespace", capsys.readouterr().err)
    assert multi_user_api.experiments == []


# --- Schedules: one per pipeline and experiment ---------------------------------------

def test_schedule_twice_leaves_one_schedule_with_the_second_cron(multi_user_api, submit_env,
                                                                 spec_file, capsys):
    assert _submit(multi_user_api, "schedule", "--spec", spec_file, *ALICE,
                   "--cron", "0 0 3 * * 1") == 0
    [first] = multi_user_api.schedules("team-a")
    assert _submit(multi_user_api, "schedule", "--spec", spec_file, *ALICE,
                   "--cron", "0 30 4 * * *") == 0
    [second] = multi_user_api.schedules("team-a")
    assert second["trigger"] == {"cron_schedule": {"cron": "0 30 4 * * *"}}
    assert len(multi_user_api.experiments) == 1
    output = capsys.readouterr().out
    assert (f"Deleted the schedule it replaces: {first['recurring_run_id']}  '{SCHEDULE}'  "
            "0 0 3 * * 1  enabled") in output
    assert f"Created recurring run {second['recurring_run_id']}" in output


def test_schedule_replaces_every_duplicate_and_nothing_else(multi_user_api, submit_env,
                                                            spec_file):
    experiment = multi_user_api.add_experiment("cats-dogs-resnet", "team-a")
    other_team = multi_user_api.add_experiment("cats-dogs-resnet", "team-b")
    by_hand = {"display_name": SCHEDULE, "trigger": {"cron_schedule": {"cron": "0 0 1 * * *"}}}
    # More than the client's page of 10.
    for _ in range(12):
        multi_user_api.add_recurring_run(experiment, by_hand)
    multi_user_api.add_recurring_run(experiment, {**by_hand, "display_name": "ad hoc"})
    multi_user_api.add_recurring_run(other_team, by_hand)

    assert _submit(multi_user_api, "schedule", "--spec", spec_file, *ALICE,
                   "--cron", "0 0 3 * * 1") == 0
    [schedule] = multi_user_api.schedules("team-a")
    assert schedule["trigger"] == {"cron_schedule": {"cron": "0 0 3 * * 1"}}
    assert [run["display_name"] for run in multi_user_api.recurring_runs
            if run["namespace"] == "team-a"] == ["ad hoc", SCHEDULE]
    assert len(multi_user_api.schedules("team-b")) == 1


def test_schedules_lists_the_schedule_with_its_cron_and_state(multi_user_api, submit_env,
                                                              spec_file, capsys):
    assert _submit(multi_user_api, "schedule", "--spec", spec_file, *ALICE,
                   "--cron", "0 0 3 * * 1") == 0
    [schedule] = multi_user_api.schedules("team-a")
    # Paused, as in the KFP UI.
    kfp.Client(host=multi_user_api.endpoint, namespace="team-a",
               existing_token=TOKEN).disable_recurring_run(schedule["recurring_run_id"])
    capsys.readouterr()
    assert _submit(multi_user_api, "schedules", *ALICE) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"{schedule['recurring_run_id']}  '{SCHEDULE}'  0 0 3 * * 1  disabled")


def test_unschedule_deletes_the_schedule_or_the_recurring_run_named(multi_user_api, submit_env,
                                                                    spec_file, capsys):
    assert _submit(multi_user_api, "schedule", "--spec", spec_file, *ALICE,
                   "--cron", "0 0 3 * * 1") == 0
    [experiment] = multi_user_api.experiments
    ad_hoc = multi_user_api.add_recurring_run(experiment, {
        "display_name": "ad hoc", "trigger": {"cron_schedule": {"cron": "0 0 1 * * *"}}})
    assert _submit(multi_user_api, "unschedule", *ALICE) == 0
    assert multi_user_api.recurring_runs == [ad_hoc]
    assert _submit(multi_user_api, "schedules", *ALICE) == 0
    assert f"No schedule '{SCHEDULE}' in experiment 'cats-dogs-resnet'" in capsys.readouterr().out

    assert _submit(multi_user_api, "unschedule", *ALICE,
                   "--id", ad_hoc["recurring_run_id"]) == 0
    assert multi_user_api.recurring_runs == []


def test_listing_or_deleting_schedules_needs_no_spec_and_creates_nothing(
        multi_user_api, submit_env, capsys):
    for command in ("schedules", "unschedule"):
        assert _submit(multi_user_api, command, *ALICE, "--spec", "no/such/spec.yaml") == 0
        assert "No schedule" in capsys.readouterr().out
    assert [request["method"] for request in multi_user_api.requests] == ["GET", "GET"]
    assert multi_user_api.experiments == []


# --- Errors ----------------------------------------------------------------------------

@pytest.mark.parametrize("status", [404, 500])
def test_a_server_error_is_reported_with_a_non_zero_exit(kfp_api, submit_env, spec_file,
                                                         status, capsys):
    kfp_api.fail_with = status
    # With a namespace, kfp.Client does not ask the API's healthz whether it is multi-user.
    assert _submit(kfp_api, "run", "--spec", spec_file, "--namespace", "team-a") == 1
    assert re.search(rf"KFP API at http://127\.0\.0\.1:\d+ answered {status} .*fake failure",
                     capsys.readouterr().err)


def test_a_failing_health_check_is_reported_with_a_non_zero_exit(kfp_api, submit_env,
                                                                 spec_file, monkeypatch,
                                                                 capsys):
    kfp_api.fail_with = 404
    monkeypatch.setattr(time, "sleep", lambda seconds: None)  # kfp's 5 s between its tries
    assert _submit(kfp_api, "run", "--spec", spec_file) == 1
    assert re.search(r"KFP API at http://127\.0\.0\.1:\d+: Failed getting healthz",
                     capsys.readouterr().err)
    assert {request["path"] for request in kfp_api.requests} == {"/apis/v2beta1/healthz"}


def test_a_refused_connection_is_reported_with_a_non_zero_exit(submit_env, spec_file, capsys):
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeKfpApi)
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    server.server_close()  # nothing listens on that port any more
    assert submit.main(["run", "--endpoint", endpoint, "--spec", spec_file]) == 1
    assert f"Cannot reach the KFP API at {endpoint}" in capsys.readouterr().err


def test_a_malformed_cron_or_parameter_stops_before_any_request(kfp_api, submit_env, spec_file):
    with pytest.raises(SystemExit, match="6 fields"):
        _submit(kfp_api, "schedule", "--spec", spec_file, "--cron", "0 3 * * 1")
    with pytest.raises(SystemExit, match="name=value"):
        _submit(kfp_api, "run", "--spec", spec_file, "--param", "data_root")
    assert kfp_api.requests == []


def test_submission_does_not_load_tfx_or_the_compiler():
    # In a fresh process: this one has TFX from the other test modules and conftest.
    script = ("import sys, kubeflow.submit; "
              "print(sorted({'tfx', 'kubeflow.runner'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split("\n")[-2] == "[]"


# --- Answers that are not KFP's, and credentials -------------------------------------

LOGIN_PAGE = b"<!DOCTYPE html>\n<html><body>Sign in to continue</body></html>\n"


class LoginPage(BaseHTTPRequestHandler):
    """An auth proxy in front of the API: its login page, 200, whatever is asked."""

    def log_message(self, *args):
        pass

    def _answer(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(LOGIN_PAGE)))
        self.end_headers()
        self.wfile.write(LOGIN_PAGE)

    do_GET = do_POST = do_DELETE = _answer


class HeaderEcho(BaseHTTPRequestHandler):
    """A proxy that refuses every call, echoing the request's headers in its body and its
    reason."""

    def log_message(self, *args):
        pass

    def _answer(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        echoed = str(self.headers).encode()
        self.send_response(502, f"Bad Gateway ({self.headers.get('Authorization')})")
        self.send_header("Content-Type", "text/plain")
        self.send_header("X-Echo-Authorization", self.headers.get("Authorization", ""))
        self.send_header("Content-Length", str(len(echoed)))
        self.end_headers()
        self.wfile.write(echoed)

    do_GET = do_POST = do_DELETE = _answer


@pytest.fixture
def stand_in(request):
    """A loopback server with the handler class given by indirect parametrization."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), request.param)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


COMMANDS = [("run",), ("schedule", "--cron", "0 0 3 * * 1"), ("upload",)]


@pytest.mark.parametrize("stand_in", [LoginPage], indirect=True)
@pytest.mark.parametrize("namespace", [(), ("--namespace", "team-a")], ids=["healthz", "ns"])
@pytest.mark.parametrize("command", COMMANDS, ids=lambda command: command[0])
def test_a_login_page_answered_with_200_is_an_error(stand_in, submit_env, spec_file, command,
                                                    namespace, capsys):
    endpoint = f"http://{stand_in}"
    assert submit.main([*command, "--endpoint", endpoint, "--spec", spec_file,
                        *namespace]) == 1
    out, err = capsys.readouterr()
    assert not re.search("Started|Created|Uploaded", out)
    assert re.search(rf"KFP API at {re.escape(endpoint)} answered .+ not the API's JSON: "
                     r"200, text/html; charset=utf-8, first line '<!DOCTYPE html>'", err), err


@pytest.mark.parametrize("command, key", [(("run",), "run_id"),
                                          (("schedule", "--cron", "0 0 3 * * 1"),
                                           "recurring_run_id"),
                                          (("upload",), "pipeline_id")],
                         ids=["run", "schedule", "upload"])
def test_an_answer_without_the_id_is_an_error(kfp_api, submit_env, spec_file, command, key,
                                              capsys):
    kfp_api.drop = key
    assert _submit(kfp_api, *command, "--spec", spec_file) == 1
    out, err = capsys.readouterr()
    assert not re.search("Started|Created|Uploaded", out)
    assert re.search(rf"KFP API at {re.escape(kfp_api.endpoint)} answered without "
                     rf"{key}: 200, application/json, first line '{{", err), err


@pytest.mark.parametrize("namespace", [(), ("--namespace", "team-a")], ids=["healthz", "ns"])
def test_a_server_that_never_answers_fails_within_the_timeout(submit_env, spec_file,
                                                              namespace, capsys):
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never answers
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        assert submit.main(["run", "--endpoint", endpoint, "--spec", spec_file, *namespace,
                            "--timeout", "1"]) == 1
        elapsed = time.monotonic() - started
    assert elapsed < 3
    assert f"KFP API at {endpoint} did not answer within 1.0 s" in capsys.readouterr().err


@pytest.mark.parametrize("stand_in", [HeaderEcho], indirect=True)
@pytest.mark.parametrize("namespace", [(), ("--namespace", "team-a")], ids=["healthz", "ns"])
def test_no_token_or_url_password_is_printed_or_logged(stand_in, submit_env, spec_file,
                                                       monkeypatch, namespace, capsys, caplog):
    monkeypatch.setattr(time, "sleep", lambda seconds: None)  # kfp's 5 s between healthz tries
    assert submit.main(["run", "--endpoint", f"http://alice:pass-of-alice@{stand_in}",
                        "--existing-token", TOKEN, "--spec", spec_file, *namespace]) == 1
    out, err = capsys.readouterr()
    printed = out + err + caplog.text
    assert f"KFP API at http://{stand_in}" in err
    assert "Bearer ***" in printed  # the echo was there, redacted
    assert TOKEN not in printed and "pass-of-alice" not in printed


def test_a_url_password_is_not_printed_on_success(kfp_api, submit_env, spec_file, capsys):
    endpoint = kfp_api.endpoint.replace("http://", "http://alice:pass-of-alice@")
    assert submit.main(["run", "--endpoint", endpoint, "--spec", spec_file]) == 0
    out = capsys.readouterr().out
    assert "Started run run-1." in out and f"{kfp_api.endpoint}/#/runs/details/run-1" in out
    assert "pass-of-alice" not in out


def test_the_service_account_token_is_not_printed_either(multi_user_api, submit_env,
                                                        spec_file, monkeypatch, capsys):
    token_file = submit_env / "sa-token"
    token_file.write_text("token-of-the-pod\n")
    monkeypatch.setenv("KF_PIPELINES_SA_TOKEN_PATH", str(token_file))
    multi_user_api.echo_authorization = True
    assert _submit(multi_user_api, "run", "--spec", spec_file, "--namespace", "team-a") == 1
    err = capsys.readouterr().err
    assert "answered 401" in err and "Bearer ***" in err
    assert "token-of-the-pod" not in err
