#!/usr/bin/env python3
"""FMU Gateway from Python, end to end, with the client generated from the OpenAPI spec.

    openapi-python-client generate --url http://127.0.0.1:8080/api/openapi.json
    pip install ./fmu-gateway-api-client
    python flow.py --base-url http://127.0.0.1:8080 path/to/model.fmu

Every step calls one operation of the generated client (`fmu_gateway_api_client`), checks
the HTTP status it answered and that the answer was parsed into the model the spec
promises, and prints one line. The first failure stops the script with a non-zero exit.

The server should run with a short synchronous wait so that the long run below is answered
202 (the default wait is 5 s), and without Stripe, as the README's quick start does:

    FMU_GATEWAY_SYNC_WAIT_MS=500 fmu-gateway serve
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from http import HTTPStatus
from pathlib import Path
from typing import TypeVar

import httpx
from fmu_gateway_api_client import AuthenticatedClient
from fmu_gateway_api_client.api.account import get_account
from fmu_gateway_api_client.api.billing import get_billing, start_checkout
from fmu_gateway_api_client.api.fmus import get_fmu, list_fmus, upload_fmu
from fmu_gateway_api_client.api.keys import create_key, list_keys, revoke_key
from fmu_gateway_api_client.api.runs import cancel_run, create_run, get_run, get_run_result, list_runs
from fmu_gateway_api_client.api.usage import list_usage
from fmu_gateway_api_client.models import (
    Account,
    ApiKeyInfo,
    BillingOverview,
    CheckoutRequest,
    CheckoutRequestPlan,
    CheckoutStarted,
    CreatedKey,
    Error401,
    Error401Code,
    Error409,
    Error409Code,
    Error503,
    Error503Code,
    Fmu,
    Interface,
    NewKeyRequest,
    ResultFormat,
    Run,
    RunCreate,
    RunList,
    RunResult,
    RunStatus,
    Solver,
    UploadFmuBody,
    UsageList,
)
from fmu_gateway_api_client.types import File, Response

T = TypeVar("T")

FINISHED = {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED}

# A run that ends within the server's synchronous wait: answered 201 with its results inline.
QUICK_RUN = RunCreate(fmu_id="lib:BouncingBall", stop_time=3.0, output_interval=0.01)

# A run of a few seconds (10 million Euler steps of Model Exchange): answered 202 + Location
# when the server's synchronous wait is shorter than that.
LONG_RUN = RunCreate(
    fmu_id="lib:BouncingBall",
    interface=Interface.ME,
    solver=Solver.EULER,
    stop_time=100.0,
    step_size=1e-5,
    output_interval=0.01,
)


class FlowError(Exception):
    """A step answered something other than what it should."""


def short(value: object, limit: int = 300) -> str:
    """The start of a value's repr, for error messages (results can be megabytes)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"… ({len(text)} characters)"


def expect(
    step: str, response: Response, status: HTTPStatus | set[HTTPStatus], model: type[T], note: str = ""
) -> T:
    """Checks a response's status and that `.parsed` is a `model`, prints the step, returns it."""
    allowed = status if isinstance(status, set) else {status}
    if response.status_code not in allowed:
        expected = sorted(int(s) for s in allowed)
        got = int(response.status_code)
        raise FlowError(f"{step}: expected {expected}, got {got}: {short(response.content)}")
    if not isinstance(response.parsed, model):
        got = type(response.parsed).__name__
        raise FlowError(f"{step}: expected a {model.__name__}, got {got}: {short(response.parsed)}")
    print(f"ok  {step:<28} {int(response.status_code)} {model.__name__:<16} {note}".rstrip())
    return response.parsed


def expect_list(step: str, response: Response, item: type[T], note: str = "") -> list[T]:
    """Like `expect` for operations answering a JSON array: every element must be an `item`."""
    if response.status_code != HTTPStatus.OK:
        raise FlowError(f"{step}: expected 200, got {int(response.status_code)}: {short(response.content)}")
    items = response.parsed
    if not isinstance(items, list) or not all(isinstance(i, item) for i in items):
        raise FlowError(f"{step}: expected a list of {item.__name__}, got {short(items)}")
    print(f"ok  {step:<28} 200 list[{item.__name__}] {note}".rstrip())
    return items


def register(base_url: str, email: str, password: str) -> str:
    """`POST /register` (a compatibility route, not in the v1 spec): a new account's API key."""
    answer = httpx.post(f"{base_url}/register", json={"email": email, "password": password}, timeout=30)
    if answer.status_code != HTTPStatus.CREATED:
        raise FlowError(f"register: expected 201, got {answer.status_code}: {answer.text}")
    body = answer.json()
    print(f"ok  {'register (httpx)':<28} 201 {body['user_id']} with {body['credits']} credits")
    return body["api_key"]


def wait_for(client: AuthenticatedClient, run_id: str, timeout_s: float = 120.0) -> Run:
    """Polls `GET /runs/{id}` until the run has finished."""
    deadline = time.monotonic() + timeout_s
    polls = 0
    while True:
        polls += 1
        run = expect_quietly(get_run.sync_detailed(run_id, client=client))
        if run.status in FINISHED:
            print(f"ok  {'get_run (polled)':<28} 200 {'Run':<16} {run.status.value} after {polls} polls")
            return run
        if time.monotonic() > deadline:
            raise FlowError(f"run {run_id} still {run.status.value} after {timeout_s} s")
        time.sleep(0.25)


def expect_quietly(response: Response) -> Run:
    """`expect(..., 200, Run)` without the printed line, for polling."""
    if response.status_code != HTTPStatus.OK or not isinstance(response.parsed, Run):
        raise FlowError(
            f"get_run: expected 200 and a Run, got {int(response.status_code)}: {short(response.content)}"
        )
    return response.parsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("fmu", type=Path, help="an FMU file to upload")
    parser.add_argument("--base-url", default="http://127.0.0.1:8080", help="where the server runs")
    parser.add_argument("--email", default=f"flow-{uuid.uuid4().hex[:12]}@example.com")
    parser.add_argument("--password", default="a long example password")
    args = parser.parse_args()
    base_url = args.base_url.rstrip("/")

    # -- An account, then a client that sends its key as `Authorization: Bearer …`.
    api_key = register(base_url, args.email, args.password)
    api_url = f"{base_url}/api/v1"
    client = AuthenticatedClient(
        base_url=api_url,
        token=api_key,
        raise_on_unexpected_status=True,  # a status the spec does not list raises UnexpectedStatus
        timeout=httpx.Timeout(60.0),  # creating a run waits for it up to the server's sync wait
    )
    me = expect("get_account", get_account.sync_detailed(client=client), HTTPStatus.OK, Account)
    print(f"    {me.email}: {me.credits_} credits")

    # -- The built-in library and an upload.
    fmus = expect_list("list_fmus", list_fmus.sync_detailed(client=client), Fmu)
    print(f"    library: {', '.join(sorted(f.library_id for f in fmus if f.library_id))}")
    ball = expect(
        "get_fmu lib:BouncingBall",
        get_fmu.sync_detailed("lib:BouncingBall", client=client),
        HTTPStatus.OK,
        Fmu,
    )
    print(f"    {ball.model_name} (FMI {ball.fmi_version}): {', '.join(v.name for v in ball.variables)}")

    with args.fmu.open("rb") as f:
        upload = upload_fmu.sync_detailed(
            client=client, body=UploadFmuBody(file=File(payload=f, file_name=args.fmu.name))
        )
    # 201: stored; 200: this account had already uploaded these exact bytes.
    mine = expect("upload_fmu", upload, {HTTPStatus.CREATED, HTTPStatus.OK}, Fmu, args.fmu.name)
    expect(
        "get_fmu (the upload)",
        get_fmu.sync_detailed(mine.id, client=client),
        HTTPStatus.OK,
        Fmu,
        mine.id[:16] + "…",
    )

    # -- A quick run: finished within the request, results inline.
    quick = expect(
        "create_run (quick)",
        create_run.sync_detailed(client=client, body=QUICK_RUN, idempotency_key=str(uuid.uuid4())),
        HTTPStatus.CREATED,
        Run,
    )
    if quick.status != RunStatus.SUCCEEDED or not isinstance(quick.result, RunResult):
        raise FlowError(f"the quick run should have succeeded with inline results: {short(quick)}")
    points, variables = len(quick.result.time), ", ".join(quick.result.variables)
    print(f"    {quick.id} {quick.status.value}: {points} points of {variables}")

    # -- A long run: 202 with Location, then poll until it has finished.
    started = create_run.sync_detailed(client=client, body=LONG_RUN)
    if started.status_code == HTTPStatus.CREATED:
        raise FlowError("the long run was answered 201: start the server with FMU_GATEWAY_SYNC_WAIT_MS=500")
    long = expect(
        "create_run (long)", started, HTTPStatus.ACCEPTED, Run, f"Location: {started.headers['location']}"
    )
    long = wait_for(client, long.id)
    if long.status != RunStatus.SUCCEEDED:
        raise FlowError(f"the long run ended {long.status.value}: {long.error}")

    # -- Its results, as JSON columns and as CSV.
    columns = expect(
        "get_run_result (json)",
        get_run_result.sync_detailed(long.id, client=client, format_=ResultFormat.JSON),
        HTTPStatus.OK,
        RunResult,
    )
    print(f"    {len(columns.time)} points, h ends at {columns.columns['h'][-1]:.3g} m")
    # openapi-python-client reads only the first media type a response declares, so the
    # generated get_run_result parses every 200 as JSON. CSV is fetched through the client's
    # own httpx session (same base URL, same key) and checked by hand.
    answer = client.get_httpx_client().get(f"/runs/{long.id}/result", params={"format": "csv"})
    content_type = answer.headers.get("content-type", "")
    if answer.status_code != HTTPStatus.OK or not content_type.startswith("text/csv"):
        raise FlowError(f"result as CSV: got {answer.status_code} {content_type}: {short(answer.content)}")
    csv = answer.text
    print(f"ok  {'get_run_result (csv, httpx)':<28} 200 {'str':<16} {content_type}")
    print(f"    {csv.splitlines()[0]} … {len(csv.splitlines()) - 1} rows")

    runs = expect("list_runs", list_runs.sync_detailed(client=client), HTTPStatus.OK, RunList)
    print(f"    {runs.total} runs: {', '.join(f'{r.id} {r.status.value}' for r in runs.items)}")

    # -- Cancelling: a run still going is cancelled; one that has ended is a 409.
    doomed = expect(
        "create_run (to cancel)",
        create_run.sync_detailed(client=client, body=LONG_RUN),
        HTTPStatus.ACCEPTED,
        Run,
    )
    cancelled = expect("cancel_run", cancel_run.sync_detailed(doomed.id, client=client), HTTPStatus.OK, Run)
    if cancelled.status != RunStatus.CANCELLED:
        raise FlowError(f"cancel_run answered a run that is {cancelled.status.value}")
    print(f"    {cancelled.id} cancelled while {doomed.status.value}")
    ended = expect(
        "cancel_run (finished run)",
        cancel_run.sync_detailed(quick.id, client=client),
        HTTPStatus.CONFLICT,
        Error409,
    )
    if ended.code != Error409Code.CONFLICT:
        raise FlowError(f"cancel_run (finished run): expected conflict, got {ended.code}")
    print(f"    {ended.code.value}: {ended.message}")

    # -- What the runs cost.
    usage = expect("list_usage", list_usage.sync_detailed(client=client), HTTPStatus.OK, UsageList)
    print(f"    {usage.total} usage rows, {sum(u.credits_ for u in usage.items)} credits")

    # -- API keys: a second key, listed, revoked; a revoked key is refused.
    created = expect(
        "create_key",
        create_key.sync_detailed(client=client, body=NewKeyRequest(label="flow.py")),
        HTTPStatus.CREATED,
        CreatedKey,
    )
    keys = expect_list("list_keys", list_keys.sync_detailed(client=client), ApiKeyInfo)
    if created.key.id not in {k.id for k in keys}:
        raise FlowError(f"the new key {created.key.id} is not listed")
    revoked = expect(
        "revoke_key", revoke_key.sync_detailed(created.key.id, client=client), HTTPStatus.OK, ApiKeyInfo
    )
    if revoked.active:
        raise FlowError(f"key {revoked.id} is still active after revoke")
    with AuthenticatedClient(base_url=api_url, token=created.api_key, raise_on_unexpected_status=True) as old:
        refused = expect(
            "get_account (revoked key)",
            get_account.sync_detailed(client=old),
            HTTPStatus.UNAUTHORIZED,
            Error401,
        )
    if refused.code != Error401Code.REVOKED_API_KEY:
        raise FlowError(f"get_account (revoked key): expected revoked_api_key, got {refused.code}")
    print(f"    {refused.code.value}: {refused.message}")

    # -- Billing: the balance and history; buying answers 503 when Stripe is not configured.
    billing = expect("get_billing", get_billing.sync_detailed(client=client), HTTPStatus.OK, BillingOverview)
    print(f"    plan {billing.plan.name}, {billing.credits_} credits, billing: {billing.billing_enabled}")
    checkout = start_checkout.sync_detailed(client=client, body=CheckoutRequest(plan=CheckoutRequestPlan.PRO))
    if billing.billing_enabled:
        started_checkout = expect("start_checkout", checkout, HTTPStatus.OK, CheckoutStarted)
        print(f"    pay at {started_checkout.checkout_url}")
    else:
        refusal = expect("start_checkout", checkout, HTTPStatus.SERVICE_UNAVAILABLE, Error503)
        if refusal.code != Error503Code.BILLING_NOT_CONFIGURED:
            raise FlowError(f"start_checkout: expected billing_not_configured, got {refusal.code}")
        print(f"    {refusal.code.value}: {refusal.message}")

    print("flow.py: all steps passed")


if __name__ == "__main__":
    try:
        main()
    except FlowError as e:
        print(f"FAILED {e}", file=sys.stderr)
        sys.exit(1)
