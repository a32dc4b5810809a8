"""Connections that ask nothing, against a local deployment (its server on its own port, no front in the
way): 1,500 silent and 200 slowloris connections leave ordinary requests answered, and every one of them
gets a 408 and is closed once its head is overdue (serving/connections.py)."""

from __future__ import annotations

import json
import socket
import time

import requests

from backend.data.builtin import load_mnist_test
from backend.serving.connections import HEAD_SECONDS, SWEEP_SECONDS

SILENT, SLOWLORIS = 1500, 200


def port_of(uri: str) -> int:
    return int(uri.split(":")[2].split("/")[0])


def answer_of(connection: socket.socket, timeout: float) -> bytes:
    connection.settimeout(timeout)
    try:
        return connection.recv(4096)
    except OSError:
        return b"(nothing)"


def whole_answer_of(connection: socket.socket, timeout: float) -> bytes:
    """One whole answer: its head may come in one segment and its body in the next."""
    connection.settimeout(timeout)
    answer = b""
    while b"\r\n\r\n" not in answer or len(answer.partition(b"\r\n\r\n")[2]) < length_of(answer):
        chunk = connection.recv(4096)
        if not chunk:
            break
        answer += chunk
    return answer


def length_of(answer: bytes) -> int:
    head = answer.partition(b"\r\n\r\n")[0].lower()
    return int(head.partition(b"content-length:")[2].split(b"\r\n")[0] or 0)


def test_silent_and_slowloris_connections_do_not_hold_a_local_server_and_are_cut_with_408(local_deck, sample_model):
    deployment = local_deck.deployments.deploy_and_wait(sample_model, "besieged", timeout=180)
    port = port_of(deployment.scoring_uri)
    row = {"data": [load_mnist_test().X[0].tolist()]}
    # A client answered once that keeps its connection, then trickles its next head: cut the same way.
    kept = socket.create_connection(("127.0.0.1", port), timeout=5)
    body = json.dumps(row).encode()
    kept.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    assert whole_answer_of(kept, 5.0).startswith(b"HTTP/1.1 200 ")  # all of it: its body must not precede the 408
    kept.sendall(b"POST /score HTTP/1.1\r\n")
    opened = time.monotonic()
    attackers = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(SILENT)]
    for _ in range(SLOWLORIS):
        slow = socket.create_connection(("127.0.0.1", port), timeout=5)
        slow.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\n")  # and never the rest
        attackers.append(slow)
    attackers.append(kept)
    try:
        statuses, latencies = [], []
        session = requests.Session()
        while time.monotonic() - opened < HEAD_SECONDS - 1:  # the whole time the attackers hold their connections
            started = time.monotonic()
            statuses.append(session.post(deployment.scoring_uri, json=row, timeout=5).status_code)
            latencies.append(time.monotonic() - started)
            for trickling in (slow, kept):  # a head that trickles is overdue all the same
                trickling.sendall(b"X-Still: here\r\n")
            time.sleep(0.02)
        assert statuses and set(statuses) == {200}, statuses
        assert sorted(latencies)[int(0.99 * (len(latencies) - 1))] < 1.0
        # Past the deadline (and the sweep's second) every attacker got a 408 and its connection was closed.
        time.sleep(max(0.0, opened + HEAD_SECONDS + 2 * SWEEP_SECONDS - time.monotonic()))
        answers = [answer_of(connection, 2.0) for connection in attackers]
        assert all(answer.startswith(b"HTTP/1.1 408 ") for answer in answers), {a[:40] for a in answers}
        assert b'"type":"RequestTimeout"' in answers[-2]
        assert all(answer_of(connection, 1.0) == b"" for connection in attackers[:50])  # closed by the server
        assert local_deck.deployments.get("besieged").state.value == "Healthy"
    finally:
        for connection in attackers:
            connection.close()
