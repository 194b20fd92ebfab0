"""Python client for ai-service.

The generated API lives in :mod:`aiservice.v1` (``chat_pb2`` messages, ``chat_pb2_grpc``
stubs). This package adds a thin layer: open a channel (TLS or plaintext, with an optional
client key sent as ``authorization: Bearer …``), collect a stream into one result, and decode
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
    error_details,
    text_of,
    user,
)

__all__ = [
    "ERROR_DOMAIN",
    "AsyncClient",
    "Client",
    "ErrorDetails",
    "StreamResult",
    "collect",
    "collect_async",
    "error_details",
    "text_of",
    "user",
]
