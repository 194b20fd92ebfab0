"""The client key reaches the server as ``authorization: Bearer <key>``, blocking and
asyncio, as a recording in-process server sees it (test_client_keys covers the gateway side)."""

from concurrent import futures

import grpc
import pytest

from aiservice import AsyncClient, Client
from aiservice.v1 import chat_pb2, chat_pb2_grpc


class Recorder(chat_pb2_grpc.ChatServiceServicer):
    def __init__(self) -> None:
        self.auth: list[list[str]] = []

    def ListModels(self, request, context):
        self.auth.append([v for k, v in context.invocation_metadata() if k == "authorization"])
        return chat_pb2.ListModelsResponse()


@pytest.fixture
def recorder():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    recorder = Recorder()
    chat_pb2_grpc.add_ChatServiceServicer_to_server(recorder, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    recorder.target = f"127.0.0.1:{port}"
    yield recorder
    server.stop(None)


def test_blocking_client_sends_the_key(recorder):
    with Client(recorder.target, plaintext=True, api_key="k-123") as client:
        client.chat.ListModels(chat_pb2.ListModelsRequest(), timeout=10)
    with Client(recorder.target, plaintext=True) as client:
        client.chat.ListModels(chat_pb2.ListModelsRequest(), timeout=10)
    assert recorder.auth == [["Bearer k-123"], []]


async def test_async_client_sends_the_key(recorder):
    async with AsyncClient(recorder.target, plaintext=True, api_key="k-456") as client:
        await client.chat.ListModels(chat_pb2.ListModelsRequest(), timeout=10)
    assert recorder.auth == [["Bearer k-456"]]
