"""The simulator's additions for the gateway's acceptance tests: embeddings, the request counter and
sequence numbers, and per-request frame counts that show a client's mid-stream disconnect."""

from __future__ import annotations

import base64
import struct

import httpx
import pytest

from shared.local.simulator import EMBEDDING_MODELS, REPLY_TEXT, Fault, Simulator

GOOD = {"Authorization": "Bearer sk-good"}
EMBED = "/compatible-mode/v1/embeddings"
CHAT = "/compatible-mode/v1/chat/completions"


@pytest.fixture(scope="module")
def sim():
    s = Simulator().start()
    yield s
    s.stop()


@pytest.fixture
def client(sim):
    sim.clear()
    with httpx.Client(base_url=sim.url(), timeout=10) as c:
        yield c
    sim.clear()


def test_embeddings_float(client):
    r = client.post(EMBED, headers=GOOD, json={"model": "text-embedding-v3", "input": ["one two", "three"]})
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "list" and body["model"] == "text-embedding-v3"
    assert [d["index"] for d in body["data"]] == [0, 1]
    vectors = [d["embedding"] for d in body["data"]]
    assert [len(v) for v in vectors] == [EMBEDDING_MODELS["text-embedding-v3"]] * 2
    assert 0.99 < sum(x * x for x in vectors[0]) < 1.01
    assert vectors[0] != vectors[1]
    assert body["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    again = client.post(EMBED, headers=GOOD, json={"model": "text-embedding-v3", "input": "one two"}).json()
    assert again["data"][0]["embedding"] == vectors[0]  # deterministic


def test_embeddings_base64_and_dimensions(client):
    r = client.post(EMBED, headers=GOOD, json={"model": "text-embedding-v4", "input": "hi", "dimensions": 8,
                                               "encoding_format": "base64"})
    raw = base64.b64decode(r.json()["data"][0]["embedding"])
    floats = struct.unpack("<8f", raw)
    plain = client.post(EMBED, headers=GOOD, json={"model": "text-embedding-v4", "input": "hi", "dimensions": 8})
    assert floats == pytest.approx(plain.json()["data"][0]["embedding"], abs=1e-6)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"model": "text-embedding-v3"}, 400),
        ({"model": "text-embedding-v3", "input": []}, 400),
        ({"model": "text-embedding-v3", "input": ["x"] * 11}, 400),
        ({"model": "text-embedding-v3", "input": "x", "dimensions": 0}, 400),
        ({"model": "text-embedding-v3", "input": "x", "encoding_format": "int8"}, 400),
        ({"model": "qwen-plus", "input": "x"}, 404),
    ],
)
def test_embeddings_refusals(client, body, status):
    r = client.post(EMBED, headers=GOOD, json=body)
    assert r.status_code == status
    assert r.json()["error"]["message"]


def test_embeddings_need_the_key(client):
    assert client.post(EMBED, json={"model": "text-embedding-v3", "input": "x"}).status_code == 401


def test_received_counts_admin_requests_and_records_carry_seq(client, sim):
    before = sim.received
    client.get("/_sim/faults")
    client.get("/compatible-mode/v1/models", headers=GOOD)
    assert sim.received == before + 2
    assert sim.requests[-1]["seq"] == before + 2


def test_frames_and_disconnect_are_recorded(client, sim):
    client.post(CHAT, headers=GOOD, json={"model": "qwen-plus", "messages": [{"role": "user", "content": "hi"}],
                                          "stream": True})
    assert sim.requests[-1]["frames"] == len(REPLY_TEXT.split()) + 1
    sim.inject(Fault(route=CHAT, stream_stall_after=2))
    with client.stream("POST", CHAT, headers=GOOD, json={"model": "qwen-plus", "stream": True,
                                                         "messages": [{"role": "user", "content": "hi"}]}) as r:
        next(r.iter_bytes())
    assert sim.wait_inflight(0, timeout=10)
    assert sim.requests[-1]["outcome"] == "disconnected"
    assert sim.requests[-1]["frames"] == 2
    client.get("/compatible-mode/v1/models", headers=GOOD)
    assert sim.requests[-1]["frames"] is None  # not a stream
