"""Embed through the client: both encodings against the running echo gateway, and the
vectors helper on its own."""

import struct

import grpc
import pytest

from aiservice import Client, embed_request, error_details, vectors
from aiservice.v1 import embed_pb2


def test_vectors_reads_both_encodings_in_index_order():
    response = embed_pb2.EmbedResponse(
        embeddings=[
            embed_pb2.Embedding(index=1, data=struct.pack("<2f", 1.0, -0.5)),
            embed_pb2.Embedding(index=0, values=[0.25]),
        ]
    )
    assert vectors(response) == [[0.25], [1.0, -0.5]]
    with pytest.raises(ValueError):
        vectors(embed_pb2.EmbedResponse(embeddings=[embed_pb2.Embedding(index=0, data=b"abc")]))
    assert not embed_request("m", ["a"]).HasField("dimensions")
    assert embed_request("m", ["a"], 3).dimensions == 3


def test_embed_in_bytes_and_floats(addr):
    with Client(addr, plaintext=True) as client:
        got, response = client.embeddings("echo", ["a cat", "a dog"], timeout=10)
        assert [len(v) for v in got] == [8, 8]
        assert response.usage.input_tokens == 4
        floats = client.embed.Embed(embed_pb2.EmbedRequest(model="echo", inputs=["a dog"]), timeout=10)
        assert list(floats.embeddings[0].values) == got[1]
        short, _ = client.embeddings("echo", ["a cat"], dimensions=3, timeout=10)
        assert len(short[0]) == 3
        with pytest.raises(grpc.RpcError) as raised:
            client.embed.Embed(embed_pb2.EmbedRequest(model="echo", inputs=["ok", ""]), timeout=10)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert [v.field for v in error_details(raised.value).bad_request.field_violations] == ["inputs[1]"]
