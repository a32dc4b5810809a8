"""No client takes a deployment down with bodies (issue 21): 64 MiB of `0,` under the byte limit, nine
100 MiB bodies held unfinished, 256 connections trickling their bodies: on a real 512 MiB container and
a local process the worker stays the same process, /health answers, ordinary single rows are answered.
Malformed bodies are 400s, not 500s."""

from __future__ import annotations

import asyncio
import io
import json
import statistics
from pathlib import Path

import numpy as np
import orjson
import pytest
import requests

from backend.data.builtin import load_mnist_test
from backend.deployments import DEFAULT_SCRIPT
from backend.runtimes import DeployConfig
from backend.runtimes.docker import container_name
from backend.serving import bodies, environment
from backend.serving.routes import create_app
from backend.serving.script import ScoringScript, load_script
from benchmarks import attacks

from .test_docker_runtime import docker_deck  # noqa: F401  (a fixture)
from .test_score_fast_path import asgi_call

ROW = load_mnist_test().X[0].tolist()
SMALL = DeployConfig(cpu_cores=1, memory_gb=0.5, max_body_mb=128)


@pytest.fixture()
def script(model_env):
    module = load_script(DEFAULT_SCRIPT)
    module.init()
    return ScoringScript.of(module)


def test_bodies_that_are_not_rows_of_real_numbers_are_400s_not_500s(script):
    app = create_app(script, {"model": "sklearn_mnist:1"})
    json_type = {"Content-Type": "application/json"}
    for body in (b'{"data": [[[0, 0], [0, 0]]]}', orjson.dumps({"data": [[[0.5] * 28] * 28] * 2}),
                 b'{"data": [[{"a": 1}]]}', b'{"data": [[]]}'):
        status, _, answer = asgi_call(app, body=body, headers=json_type)
        assert status == 400, (body[:40], answer)
    for array in (np.zeros((1, 784), np.complex128), np.zeros((1, 784), "U1"), np.zeros((1, 784), "M8[s]"),
                  np.zeros((1, 784), [("a", "f4")]), np.zeros((1, 784), bool), np.zeros((1, 784), object)):
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=True)
        status, _, answer = asgi_call(app, body=buffer.getvalue(), headers={"Content-Type": "application/x-npy"})
        assert status == 400, (array.dtype, answer)
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((2, 784), np.float32))
    status, _, answer = asgi_call(app, body=buffer.getvalue(), headers={"Content-Type": "application/x-npy"})
    assert (status, json.loads(answer)) == (200, [0, 0]) or status == 200


def test_a_users_own_script_still_gets_a_3d_body_unchanged(model_env, tmp_path):
    echo = tmp_path / "echo_score.py"
    echo.write_text("def init():\n    pass\n\ndef run(raw_data):\n    return {'got': raw_data}\n")
    module = load_script(str(echo))
    module.init()
    body = '{"data": [[[0, 0], [0, 0]]]}'
    status, _, answer = asgi_call(create_app(ScoringScript.of(module), {}), body=body.encode(), headers={"Content-Type": "application/json"})
    assert (status, json.loads(answer)) == (200, {"got": body})


def test_json_whose_parse_cannot_fit_is_a_413_pointing_to_npy_and_npy_of_it_is_scored(script, monkeypatch):
    monkeypatch.setenv(environment.BUDGET_ENV, "64")
    app = create_app(script, {"model": "sklearn_mnist:1", "max_body_bytes": 64 * 2**20})
    rows = orjson.dumps({"data": [[0.5] * 784] * 2000})  # 6.3 MB of JSON: ~70 MB parsed at 44 B a value
    status, headers, answer = asgi_call(app, body=rows, headers={"Content-Type": "application/json"})
    refusal = json.loads(answer)
    assert status == 413 and refusal["type"] == "BodyTooCostly" and headers["connection"] == "close", refusal
    assert "application/x-npy" in refusal["error"] and "64 MiB per worker" in refusal["error"]
    buffer = io.BytesIO()
    np.save(buffer, np.full((2000, 784), 0.5, np.float32))  # the same rows as .npy: 6.3 MB, ~20 MB scored
    status, _, answer = asgi_call(app, body=buffer.getvalue(), headers={"Content-Type": "application/x-npy"})
    assert status == 200 and len(json.loads(answer)) == 2000
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((8000, 784), np.uint8))  # 6.3 MB of pixels: ~56 MB once scaled to float32, checked
    status, _, answer = asgi_call(app, body=buffer.getvalue(), headers={"Content-Type": "application/x-npy"})
    refusal = json.loads(answer)
    assert status == 413 and refusal["error"].startswith("this .npy body (6.0 MiB) would take about"), refusal
    assert "send them as .npy" not in refusal["error"]
    v2_body = orjson.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [2000, 784],
                                        "data": [[0.5] * 784] * 2000}]})
    status, _, answer = asgi_call(app, path="/v2/models/sklearn_mnist/infer", body=v2_body,
                                  headers={"Content-Type": "application/json"})
    assert status == 413 and "application/x-npy" in json.loads(answer)["error"]


def test_a_body_beyond_the_budget_waits_then_gets_503_with_retry_after_and_the_budget_comes_back(script, monkeypatch):
    monkeypatch.setenv(environment.BUDGET_ENV, "16")
    monkeypatch.setattr(bodies, "WAIT_SECONDS", 0.3)
    app = create_app(script, {"model": "sklearn_mnist:1"})
    budget = app.score_endpoint.budget
    rows = orjson.dumps({"data": [[0.5] * 784] * 20})  # ~60 KB: fits, but chunked and beyond SMALL_BODY_BYTES
    rows = rows[:-2] + b"," + orjson.dumps([[0.5] * 784] * 20)[1:-1].replace(b" ", b"") + b"]}"

    async def scenario():
        stalled = asyncio.Event()

        async def stall():  # a declared 7.5 MiB body (15 MiB reserved) whose rest never comes
            if not stalled.is_set():
                stalled.set()
                return {"type": "http.request", "body": b'{"data": [', "more_body": True}
            await asyncio.sleep(30)

        scope = {"type": "http", "method": "POST", "path": "/score", "query_string": b"",
                 "headers": [(b"content-type", b"application/json"), (b"content-length", str(15 * 2**19).encode())]}
        holder = asyncio.create_task(app.score_endpoint.answer(scope, stall))
        await stalled.wait()
        assert budget.in_use == 15 * 2**20
        second = dict(scope, headers=[(b"content-type", b"application/json"),
                                      (b"content-length", str(len(rows)).encode())])
        messages = [{"type": "http.request", "body": rows, "more_body": False}]

        async def receive():
            return messages.pop(0)

        refused = await app.score_endpoint.answer(second, receive)
        holder.cancel()
        try:
            await holder
        except asyncio.CancelledError:
            pass
        return refused

    refused = asyncio.run(scenario())
    assert refused.status == 503 and refused.headers["Retry-After"] == "2", refused
    assert "retry after 2 s" in json.loads(refused.body)["error"]
    assert budget.in_use == 0
    status, _, answer = asgi_call(app, body=rows, headers={"Content-Type": "application/json"})
    assert status == 200 and len(json.loads(answer)) == 40 and budget.in_use == 0


def test_a_body_that_trickles_is_cut_after_the_grace_with_408(script, monkeypatch):
    monkeypatch.setattr(bodies, "GRACE_SECONDS", 0.3)
    app = create_app(script, {"model": "sklearn_mnist:1"})
    sent = []

    async def trickle():
        if sent:
            await asyncio.sleep(0.1)
        sent.append(1)
        return {"type": "http.request", "body": b"0", "more_body": True}

    status, headers, answer = asgi_call(app, headers={"Content-Type": "application/json"}, receive=trickle)
    assert status == 408 and headers["connection"] == "close" and "KiB/s" in json.loads(answer)["error"]
    assert len(sent) < 10


def worker_pid(uri: str) -> int:
    return requests.get(uri.rsplit("/", 1)[0] + "/info", timeout=10).json()["worker_pid"]


def check_survives(uri: str, attack, probe_pause: float = 0.05) -> attacks.Probe:
    """Runs `attack` while ordinary rows and /health are sent; asserts the worker is the same process
    afterwards, every probe answered 200 and a row scores right."""
    pid = worker_pid(uri)
    probe = attacks.Probe(uri, ROW)
    attacks.during(attack, probe)
    assert probe.statuses and set(probe.statuses) == {200}, sorted(set(probe.statuses))
    assert set(probe.health) == {200}, sorted(set(probe.health))
    assert worker_pid(uri) == pid, "the worker was replaced: it died"
    assert requests.post(uri, json={"data": [ROW]}, timeout=10).json() == [7]
    return probe


def run_the_three_attacks(uri: str, bare: bool = True) -> None:
    """The three attacks on `uri`; with `bare`, a server with no front, whose own answers to them are
    checked too (through the front, HAProxy holds part of each body and answers some of them itself)."""
    v2_uri = uri.rsplit("/", 1)[0] + "/v2/models/sklearn_mnist/infer"
    statuses: list[int] = []
    check_survives(uri, lambda: statuses.extend([attacks.send_zeros(uri), attacks.send_zeros(uri, v2_uri)]))
    assert statuses == [413, 413], statuses

    held: list[attacks.Held] = []
    try:
        check_survives(uri, lambda: held.append(attacks.hold_unfinished(uri)))
        # each 100 MiB body takes 200 MiB while it arrives: one or two fit, the others are turned away in 2 s
        if bare:  # 503 while others hold the budget; 413 where two of them cannot fit at all (budgets vary by machine)
            assert sum(status in (413, 503) for status in held[0].statuses) >= 7, held[0].statuses
        assert not set(held[0].statuses) - {0, 408, 413, 503}, held[0].statuses
    finally:
        for h in held:
            h.close()

    slow: list[attacks.Held] = []
    try:
        def attack() -> None:
            slow.append(attacks.hold_slow(uri, seconds=14))
            slow[0].threads[0].join()

        probe = check_survives(uri, attack)
        assert len(probe.statuses) > 50
        # every one answered: 408 once cut after the 10 s grace, or 503 when the budget was taken by the others
        if bare:
            assert set(slow[0].statuses) <= {408, 503} and 408 in slow[0].statuses, slow[0].statuses
        assert not set(slow[0].statuses) - {0, 408, 503}, slow[0].statuses
        assert statistics.quantiles(probe.latencies, n=100, method="inclusive")[98] < 2.0
    finally:
        for h in slow:
            h.close()


@pytest.mark.docker
def test_the_attacks_leave_a_512_mib_container_alive_and_answering(docker_deck, engine, sample_model):  # noqa: F811
    deployment = docker_deck.deployments.deploy_and_wait(sample_model, "bodies-attacked", SMALL, timeout=180)
    info = docker_deck.client.info(deployment.scoring_uri)
    assert 128 * 2**20 < info["body_memory_bytes"] < 512 * 2**20, info
    run_the_three_attacks(deployment.scoring_uri, bare=False)
    container = engine.containers.get(container_name(docker_deck.home.id, "bodies-attacked"))
    container.reload()
    assert container.status == "running" and container.attrs["RestartCount"] == 0
    assert not container.attrs["State"]["OOMKilled"]


def test_the_attacks_leave_a_local_process_alive_and_answering(local_deck, sample_model):
    deployment = local_deck.deployments.deploy_and_wait(sample_model, "bodies-local", SMALL, runtime="local",
                                                        timeout=180)
    info = local_deck.client.info(deployment.scoring_uri)  # budgeted by the deploy config's 512 MiB, as in Docker
    assert 128 * 2**20 < info["body_memory_bytes"] < 512 * 2**20, info
    run_the_three_attacks(deployment.scoring_uri, bare=False)


def test_the_attacks_on_a_bare_server_are_answered_by_its_own_budget(local_deck, sample_model, tmp_path):
    """The server with no front in the way, as a built image or a Kubernetes export runs it."""
    import os
    import subprocess
    import sys
    import time

    from backend.runtimes.probe import free_port

    model_dir = local_deck.registry.materialize(sample_model, tmp_path / "model")
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent / "backend"),
           environment.MEMORY_ENV: "512"}
    server = subprocess.Popen([sys.executable, "-m", "serving", "--script", str(DEFAULT_SCRIPT), "--model-dir",
                               str(model_dir), "--port", str(port), "--max-body-mb", "128", "--model",
                               sample_model.id, "--name", "bare"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    uri = f"http://127.0.0.1:{port}/score"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if requests.get(uri.replace("/score", "/ready"), timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.2)
        run_the_three_attacks(uri)
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
