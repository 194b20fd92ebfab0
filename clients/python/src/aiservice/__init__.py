"""Python client for ai-service.

The generated API lives in :mod:`aiservice.v1` (``chat_pb2`` and ``embed_pb2`` messages,
``*_pb2_grpc`` stubs). This package adds a thin layer: open a channel (TLS or plaintext, with
an optional client key sent as ``authorization: Bearer …``), collect a stream into one result,
read an Embed answer's vectors whatever their encoding (:func:`vectors`), and decode
the rich error details the gateway attaches to every failure.
"""

from aiservice.client import (
    ERROR_DOMAIN,
    AsyncClient,
    Client,
    ErrorDetails,
    StreamResult,
    collect,
    collect_async,
    embed_request,
    error_details,
    text_of,
    user,
    vectors,
)

__all__ = [
    "ERROR_DOMAIN",
    "AsyncClient",
    "Client",
    "ErrorDetails",
    "StreamResult",
    "collect",
    "collect_async",
    "embed_request",
    "error_details",
    "text_of",
    "user",
    "vectors",
]
