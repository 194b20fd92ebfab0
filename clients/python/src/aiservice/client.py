"""The thin layer over the generated stubs: channels, stream collection, error details."""

from __future__ import annotations

import struct
from collections.abc import AsyncIterable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
import grpc.aio
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2_grpc

from aiservice.v1 import chat_pb2, chat_pb2_grpc, embed_pb2, embed_pb2_grpc

#: The ``google.rpc.ErrorInfo`` domain of every error the gateway returns.
ERROR_DOMAIN = "ai-service"

_DETAILS_KEY = "grpc-status-details-bin"

ChannelOptions = Sequence[tuple[str, Any]]


def _credentials(root_certificates: bytes | None) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(root_certificates=root_certificates)


class _Bearer(grpc.AuthMetadataPlugin):
    def __init__(self, key: str) -> None:
        self._key = key

    def __call__(self, context: Any, callback: Any) -> None:
        callback((("authorization", f"Bearer {self._key}"),), None)


def _with_key(metadata: Any, key: str) -> list[tuple[str, str]]:
    return [*(metadata or ()), ("authorization", f"Bearer {key}")]


class _SyncBearerInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Adds the key on a plaintext channel, where gRPC refuses call credentials."""

    def __init__(self, key: str) -> None:
        self._key = key

    def _details(self, details: Any) -> Any:
        return details._replace(metadata=_with_key(details.metadata, self._key))

    def intercept_unary_unary(self, continuation, client_call_details, request):  # type: ignore[no-untyped-def]
        return continuation(self._details(client_call_details), request)

    def intercept_unary_stream(self, continuation, client_call_details, request):  # type: ignore[no-untyped-def]
        return continuation(self._details(client_call_details), request)


class _AsyncBearerInterceptor(grpc.aio.UnaryUnaryClientInterceptor, grpc.aio.UnaryStreamClientInterceptor):
    """The asyncio counterpart of :class:`_SyncBearerInterceptor`."""

    def __init__(self, key: str) -> None:
        self._key = key

    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        return grpc.aio.ClientCallDetails(
            details.method,
            details.timeout,
            _with_key(details.metadata, self._key),
            details.credentials,
            details.wait_for_ready,
        )

    async def intercept_unary_unary(self, continuation, client_call_details, request):  # type: ignore[no-untyped-def]
        return await continuation(self._details(client_call_details), request)

    async def intercept_unary_stream(self, continuation, client_call_details, request):  # type: ignore[no-untyped-def]
        return await continuation(self._details(client_call_details), request)


class Client:
    """A blocking connection to the gateway with its chat, embeddings and health stubs.

    TLS by default (system roots, or ``root_certificates``); ``plaintext=True`` for a
    gateway on localhost or behind a mesh. ``api_key`` is sent on every call as
    ``authorization: Bearer <key>``. Use it as a context manager or call :meth:`close`.
    """

    def __init__(
        self,
        target: str,
        *,
        plaintext: bool = False,
        api_key: str | None = None,
        root_certificates: bytes | None = None,
        options: ChannelOptions | None = None,
    ) -> None:
        if plaintext:
            channel = grpc.insecure_channel(target, options=options)
            if api_key:
                channel = grpc.intercept_channel(channel, _SyncBearerInterceptor(api_key))
        else:
            creds = _credentials(root_certificates)
            if api_key:
                creds = grpc.composite_channel_credentials(creds, grpc.metadata_call_credentials(_Bearer(api_key)))
            channel = grpc.secure_channel(target, creds, options=options)
        self.channel: grpc.Channel = channel
        self.chat = chat_pb2_grpc.ChatServiceStub(channel)
        self.embed = embed_pb2_grpc.EmbedServiceStub(channel)
        self.health = health_pb2_grpc.HealthStub(channel)

    def embeddings(
        self, model: str, inputs: Sequence[str], *, dimensions: int | None = None, timeout: float | None = None
    ) -> tuple[list[list[float]], embed_pb2.EmbedResponse]:
        """One vector per input, in input order (asked for as compact BYTES), and the response."""
        response = self.embed.Embed(embed_request(model, inputs, dimensions), timeout=timeout)
        return vectors(response), response

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient:
    """The ``grpc.aio`` counterpart of :class:`Client`; use it with ``async with``."""

    def __init__(
        self,
        target: str,
        *,
        plaintext: bool = False,
        api_key: str | None = None,
        root_certificates: bytes | None = None,
        options: ChannelOptions | None = None,
    ) -> None:
        if plaintext:
            interceptors = [_AsyncBearerInterceptor(api_key)] if api_key else None
            channel = grpc.aio.insecure_channel(target, options=options, interceptors=interceptors)
        else:
            creds = _credentials(root_certificates)
            if api_key:
                creds = grpc.composite_channel_credentials(creds, grpc.metadata_call_credentials(_Bearer(api_key)))
            channel = grpc.aio.secure_channel(target, creds, options=options)
        self.channel: grpc.aio.Channel = channel
        self.chat = chat_pb2_grpc.ChatServiceStub(channel)
        self.embed = embed_pb2_grpc.EmbedServiceStub(channel)
        self.health = health_pb2_grpc.HealthStub(channel)

    async def embeddings(
        self, model: str, inputs: Sequence[str], *, dimensions: int | None = None, timeout: float | None = None
    ) -> tuple[list[list[float]], embed_pb2.EmbedResponse]:
        """One vector per input, in input order (asked for as compact BYTES), and the response."""
        response = await self.embed.Embed(embed_request(model, inputs, dimensions), timeout=timeout)
        return vectors(response), response

    async def close(self) -> None:
        await self.channel.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def embed_request(model: str, inputs: Sequence[str], dimensions: int | None = None) -> embed_pb2.EmbedRequest:
    """An Embed request for ``inputs`` that asks for the vectors as little-endian float32 bytes."""
    request = embed_pb2.EmbedRequest(model=model, inputs=list(inputs), encoding=embed_pb2.EMBEDDING_ENCODING_BYTES)
    if dimensions is not None:
        request.dimensions = dimensions
    return request


def vectors(response: embed_pb2.EmbedResponse) -> list[list[float]]:
    """The vectors of an Embed answer in input order, whether they came as FLOAT or BYTES."""
    out: list[list[float] | None] = [None] * len(response.embeddings)
    for embedding in response.embeddings:
        if embedding.index >= len(out) or out[embedding.index] is not None:
            raise ValueError(f"embedding index {embedding.index} out of place")
        if embedding.data:
            if len(embedding.data) % 4:
                raise ValueError(f"embedding {embedding.index} has {len(embedding.data)} bytes, not float32s")
            out[embedding.index] = list(struct.unpack(f"<{len(embedding.data) // 4}f", embedding.data))
        else:
            out[embedding.index] = list(embedding.values)
    return [v for v in out if v is not None]


def user(text: str) -> chat_pb2.Message:
    """A user message with one text part."""
    return chat_pb2.Message(role=chat_pb2.ROLE_USER, content=[chat_pb2.ContentPart(text=text)])


def text_of(message: chat_pb2.Message) -> str:
    """The text parts of a message, joined."""
    return "".join(part.text for part in message.content)


@dataclass
class StreamResult:
    """A whole streamed answer."""

    text: str = ""
    #: The reasoning parts, rebuilt from the reasoning deltas; send them back, in order and
    #: before the text, in the assistant message of the next turn.
    reasoning: list[chat_pb2.Reasoning] = field(default_factory=list)
    usage: chat_pb2.Usage | None = None
    finish: chat_pb2.Finish | None = None
    events: list[chat_pb2.StreamChatResponse] = field(default_factory=list)

    def _add(self, event: chat_pb2.StreamChatResponse) -> None:
        if self.finish is not None:
            raise ValueError(f"event after finish: {event}")
        self.events.append(event)
        kind = event.WhichOneof("event")
        if kind == "content_delta":
            self.text += event.content_delta.text
        elif kind == "reasoning_delta":
            _fold_reasoning(self.reasoning, event.reasoning_delta)
        elif kind == "usage":
            self.usage = event.usage
        elif kind == "finish":
            self.finish = event.finish

    def _done(self) -> StreamResult:
        if self.finish is None:
            raise ValueError("stream ended without a finish event")
        return self


def _fold_reasoning(parts: list[chat_pb2.Reasoning], delta: chat_pb2.ReasoningDelta) -> None:
    """Text appends to the open part (no signature, not redacted) or opens one; a signature
    closes the open part (or stands alone); redacted data is a part of its own."""
    if delta.redacted_data:
        parts.append(chat_pb2.Reasoning(redacted_data=delta.redacted_data))
        return
    is_open = bool(parts) and not parts[-1].signature and not parts[-1].redacted_data
    if not is_open and (delta.text or delta.signature):
        parts.append(chat_pb2.Reasoning())
    if parts:
        parts[-1].text += delta.text
        if delta.signature:
            parts[-1].signature = delta.signature


def collect(stream: Iterable[chat_pb2.StreamChatResponse]) -> StreamResult:
    """Reads a StreamChat stream to its end; a failed stream raises its ``grpc.RpcError``."""
    result = StreamResult()
    for event in stream:
        result._add(event)
    return result._done()


async def collect_async(stream: AsyncIterable[chat_pb2.StreamChatResponse]) -> StreamResult:
    """The asyncio counterpart of :func:`collect`."""
    result = StreamResult()
    async for event in stream:
        result._add(event)
    return result._done()


@dataclass
class ErrorDetails:
    """The rich details of a failed call; absent ones are ``None``."""

    info: error_details_pb2.ErrorInfo | None = None
    bad_request: error_details_pb2.BadRequest | None = None
    retry_info: error_details_pb2.RetryInfo | None = None


def error_details(error: grpc.RpcError) -> ErrorDetails:
    """Decodes the ``google.rpc.Status`` details that the gateway sends in the
    ``grpc-status-details-bin`` trailer; works for blocking and ``grpc.aio`` errors."""
    details = ErrorDetails()
    trailers = error.trailing_metadata() if hasattr(error, "trailing_metadata") else None
    for key, value in trailers or ():
        if key != _DETAILS_KEY:
            continue
        status = status_pb2.Status.FromString(value)
        for any_detail in status.details:
            for attr, cls in (
                ("info", error_details_pb2.ErrorInfo),
                ("bad_request", error_details_pb2.BadRequest),
                ("retry_info", error_details_pb2.RetryInfo),
            ):
                if any_detail.Is(cls.DESCRIPTOR):
                    message = cls()
                    any_detail.Unpack(message)
                    setattr(details, attr, message)
    return details
