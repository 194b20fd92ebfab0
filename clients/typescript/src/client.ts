/**
 * The thin layer over the generated stubs in `src/gen` (protobuf-es v2 messages, Connect
 * service descriptors), shared by Node and the browser: a client key sent as
 * `authorization: Bearer <key>` on every call, the chat and embeddings clients on one
 * transport, a user message from text, a StreamChat stream collected into one result, and the
 * `google.rpc` details (ErrorInfo, BadRequest, RetryInfo) the gateway attaches to every
 * failure. Everything else is the generated API itself. The transport is the caller's choice:
 * `dial` (./node.ts) for gRPC or gRPC-Web in Node, `dialWeb` (./web.ts) in a browser.
 */
import { create } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createClient,
  type Client,
  type Interceptor,
  type Transport,
} from "@connectrpc/connect";

import {
  ChatService,
  MessageSchema,
  ReasoningSchema,
  Role,
  ToolCallSchema,
  type Finish,
  type Message,
  type Reasoning,
  type ReasoningDelta,
  type StreamChatResponse,
  type ToolCall,
  type Usage,
} from "./gen/aiservice/v1/chat_pb.js";
import { EmbedService } from "./gen/aiservice/v1/embed_pb.js";
import {
  BadRequestSchema,
  ErrorInfoSchema,
  RetryInfoSchema,
  type BadRequest,
  type ErrorInfo,
  type RetryInfo,
} from "./gen/google/rpc/error_details_pb.js";

/** The google.rpc.ErrorInfo domain of every error the gateway returns. */
export const ERROR_DOMAIN = "ai-service";

/** The gateway's services on one transport. */
export interface AiServiceClient {
  /** The generated ChatService client: chat, streamChat, listModels. */
  chat: Client<typeof ChatService>;
  /** The generated EmbedService client. */
  embed: Client<typeof EmbedService>;
  /** The transport both use, for other clients on the same connection. */
  transport: Transport;
}

/** Options common to every transport. */
export interface ClientOptions {
  /** Sent on every call as `authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /** More interceptors, run after the one that adds the key. */
  interceptors?: Interceptor[];
}

/** An interceptor that sends `apiKey` on every call as `authorization: Bearer <apiKey>`. */
export function bearer(apiKey: string): Interceptor {
  return (next) => (request) => {
    request.header.set("authorization", `Bearer ${apiKey}`);
    return next(request);
  };
}

/** The interceptors of `options`: the key's first. */
export function interceptorsOf(options: ClientOptions): Interceptor[] {
  const key = options.apiKey ? [bearer(options.apiKey)] : [];
  return [...key, ...(options.interceptors ?? [])];
}

/** The chat and embeddings clients on `transport`. */
export function clientOn(transport: Transport): AiServiceClient {
  return {
    chat: createClient(ChatService, transport),
    embed: createClient(EmbedService, transport),
    transport,
  };
}

/** A user message with one text part. */
export function userText(text: string): Message {
  return create(MessageSchema, {
    role: Role.USER,
    content: [{ part: { case: "text", value: text } }],
  });
}

/** The text parts of a message, joined. */
export function textOf(message: Message | undefined): string {
  return (message?.content ?? [])
    .map((part) => (part.part.case === "text" ? part.part.value : ""))
    .join("");
}

/** A whole streamed answer. */
export interface StreamResult {
  /** Every content delta, joined. */
  text: string;
  /** The tool calls rebuilt from their deltas, in index order. */
  toolCalls: ToolCall[];
  /** The stream's usage event. */
  usage?: Usage;
  /** The stream's last event. */
  finish?: Finish;
  /**
   * The reasoning parts rebuilt from the reasoning deltas; send them back, in order and
   * before the text, in the assistant message of the next turn.
   */
  reasoning: Reasoning[];
  /** Every event in the order received. */
  events: StreamChatResponse[];
}

/**
 * Reads a StreamChat stream to its end. Rejects with the stream's `ConnectError` when the
 * stream fails, and with an `Error` when it ends without a finish event or has events after it.
 */
export async function collect(stream: AsyncIterable<StreamChatResponse>): Promise<StreamResult> {
  const result: StreamResult = { text: "", toolCalls: [], reasoning: [], events: [] };
  const calls = new Map<number, ToolCall>();
  for await (const event of stream) {
    if (result.finish) {
      throw new Error(`aiservice: event after finish: ${event.event.case}`);
    }
    result.events.push(event);
    const e = event.event;
    switch (e.case) {
      case "contentDelta":
        result.text += e.value.text;
        break;
      case "toolCallDelta": {
        const call = calls.get(e.value.index) ?? create(ToolCallSchema);
        calls.set(e.value.index, call);
        call.id ||= e.value.id;
        call.name ||= e.value.name;
        call.argumentsJson += e.value.argumentsDelta;
        call.signature ||= e.value.signature;
        break;
      }
      case "reasoningDelta":
        result.reasoning = foldReasoning(result.reasoning, e.value);
        break;
      case "usage":
        result.usage = e.value;
        break;
      case "finish":
        result.finish = e.value;
        break;
    }
  }
  result.toolCalls = [...calls.entries()].sort(([a], [b]) => a - b).map(([, call]) => call);
  if (!result.finish) {
    throw new Error("aiservice: stream ended without a finish event");
  }
  return result;
}

/**
 * Adds one reasoning delta to the parts rebuilt so far: text appends to the open part (no
 * signature, not redacted) or opens one, a signature closes the open part (or stands alone),
 * and redacted data is a part of its own.
 */
export function foldReasoning(parts: Reasoning[], delta: ReasoningDelta): Reasoning[] {
  if (delta.redactedData) {
    return [...parts, create(ReasoningSchema, { redactedData: delta.redactedData })];
  }
  const last = parts.at(-1);
  const open = last !== undefined && !last.signature && !last.redactedData;
  const out = [...parts];
  if (!open && (delta.text || delta.signature)) {
    out.push(create(ReasoningSchema));
  }
  const current = out.at(-1);
  if (current) {
    current.text += delta.text;
    if (delta.signature) {
      current.signature = delta.signature;
    }
  }
  return out;
}

/** What a failed call says about itself. */
export interface ErrorDetails {
  /** The gRPC code (Connect's `Code` enum: `Code.NotFound`, …). */
  code: Code;
  /** The status message. */
  message: string;
  /** Why, in UPPER_SNAKE (`MODEL_NOT_FOUND`, …), with domain and metadata. */
  info?: ErrorInfo;
  /** Which request fields are wrong, for INVALID_ARGUMENT. */
  badRequest?: BadRequest;
  /** How long to wait before retrying, for RESOURCE_EXHAUSTED. */
  retryInfo?: RetryInfo;
}

/**
 * The code, message and `google.rpc` details of a failed call (any error: one that is no
 * `ConnectError` reads as `Code.Unknown` without details).
 */
export function errorDetails(error: unknown): ErrorDetails {
  const failure = ConnectError.from(error);
  return {
    code: failure.code,
    message: failure.rawMessage,
    info: failure.findDetails(ErrorInfoSchema)[0],
    badRequest: failure.findDetails(BadRequestSchema)[0],
    retryInfo: failure.findDetails(RetryInfoSchema)[0],
  };
}
