"""The device's chunk link routes answers to whoever asked, through the in-memory transport.

No broker: what is tested is the routing (by request id, garbage and strays counted, late
answers after ``forget`` dropped) and the reconnect generation, which the fetcher uses to
know that requests sent before a reconnect may be lost.
"""

from __future__ import annotations

import queue

from edge_agent.transport import topics
from edge_agent.transport.client import Message
from edge_agent.transport.memory import MemoryBroker
from edge_agent.trust.device.link import RegistryLink
from edge_agent.trust.protocol import ChunkRequest, ChunkResponse, decode_request

R1, R2, R9 = "a1a1a1a1", "b2b2b2b2", "c9c9c9c9"  # request ids as the fetcher makes them (hex)
PATH = "targets/digits/1.onnx"


def test_answers_reach_the_request_that_asked_and_strays_are_counted():
    broker = MemoryBroker()
    device, registry = broker.client("dev-1"), broker.client("registry")
    device.connect()
    registry.connect()
    requests: list[Message] = []
    registry.subscribe(topics.registry_requests_filter(), requests.append)
    link = RegistryLink(device, "dev-1")  # type: ignore[arg-type]
    inbox: queue.Queue[ChunkResponse] = queue.Queue(maxsize=4)
    link.expect(R1, inbox)
    link.send(ChunkRequest(R1, PATH, 0, 4096))
    (request,) = requests
    assert request.topic == topics.registry_request("dev-1")
    decoded = decode_request(request.payload)
    assert decoded is not None and decoded.id == R1
    answer = topics.registry_response("dev-1")
    registry.publish(answer, ChunkResponse(R1, PATH, 0, 200, 3, b"abc").encode())
    registry.publish(answer, ChunkResponse(R9, PATH, 0, 200, 3, b"abc").encode())
    registry.publish(answer, b"\x00 garbage")
    got = inbox.get_nowait()
    assert (got.id, bytes(got.data)) == (R1, b"abc")
    assert link.ignored == 2
    link.forget(R1)
    registry.publish(answer, ChunkResponse(R1, PATH, 0, 200, 3, b"abc").encode())
    assert inbox.empty() and link.ignored == 3


def test_a_reconnect_advances_the_generation_and_keeps_the_subscription():
    broker = MemoryBroker()
    device, registry = broker.client("dev-2"), broker.client("registry")
    registry.connect()
    link = RegistryLink(device, "dev-2")  # type: ignore[arg-type]
    device.connect()
    assert link.generation == 1
    device.drop()
    device.reconnect()
    assert link.generation == 2
    inbox: queue.Queue[ChunkResponse] = queue.Queue()
    link.expect(R2, inbox)
    registry.publish(
        topics.registry_response("dev-2"), ChunkResponse(R2, PATH, 0, 200, 1, b"x").encode()
    )
    assert inbox.get_nowait().id == R2
    link.close()
    registry.publish(
        topics.registry_response("dev-2"), ChunkResponse(R2, PATH, 0, 200, 1, b"x").encode()
    )
    assert link.ignored == 0  # closed: no longer listening at all
