/**
 * The helper without a gateway: the bearer header it sends, how `collect` rebuilds text, tool
 * calls and reasoning from deltas (and refuses a stream without a finish), and how
 * `errorDetails` reads the google.rpc details, against Connect's in-memory router transport
 * serving ChatService.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createRouterTransport } from "@connectrpc/connect";

import {
  ChatResponseSchema,
  ChatService,
  FinishReason,
  StreamChatResponseSchema,
  type StreamChatResponse,
} from "../src/gen/aiservice/v1/chat_pb.js";
import { BadRequestSchema, ErrorInfoSchema, RetryInfoSchema } from "../src/gen/google/rpc/error_details_pb.js";
import { clientOn, collect, errorDetails, interceptorsOf, textOf, userText } from "../src/index.js";

function event(e: MessageInitShape<typeof StreamChatResponseSchema>["event"]): StreamChatResponse {
  return create(StreamChatResponseSchema, { event: e });
}

async function* stream(events: StreamChatResponse[]): AsyncIterable<StreamChatResponse> {
  yield* events;
}

describe("helper", () => {
  it("sends the key as exactly `authorization: Bearer <key>`", async () => {
    const seen: (string | null)[] = [];
    const transport = createRouterTransport(
      ({ service }) =>
        service(ChatService, {
          chat: (_request, context) => {
            seen.push(context.requestHeader.get("authorization"));
            return create(ChatResponseSchema, { message: userText("ok") });
          },
        }),
      { transport: { interceptors: interceptorsOf({ apiKey: "ais_test_key" }) } },
    );
    const reply = await clientOn(transport).chat.chat({ model: "echo", messages: [userText("hi")] });
    assert.equal(textOf(reply.message), "ok");
    assert.deepEqual(seen, ["Bearer ais_test_key"]);
    assert.equal(interceptorsOf({}).length, 0, "no key, no header");
  });

  it("collect rebuilds text, tool calls and reasoning from their deltas", async () => {
    const result = await collect(
      stream([
        event({ case: "reasoningDelta", value: { text: "think", signature: "", redactedData: "" } }),
        event({ case: "reasoningDelta", value: { text: "ing", signature: "sig-1", redactedData: "" } }),
        event({ case: "contentDelta", value: { text: "Hello " } }),
        event({ case: "toolCallDelta", value: { index: 1, id: "c2", name: "second", argumentsDelta: '{"b":', signature: "" } }),
        event({ case: "toolCallDelta", value: { index: 0, id: "c1", name: "first", argumentsDelta: '{"a":1}', signature: "" } }),
        event({ case: "toolCallDelta", value: { index: 1, id: "", name: "", argumentsDelta: "2}", signature: "s" } }),
        event({ case: "contentDelta", value: { text: "world" } }),
        event({ case: "usage", value: { inputTokens: 2, outputTokens: 3, totalTokens: 5 } }),
        event({ case: "finish", value: { reason: FinishReason.TOOL_CALLS } }),
      ]),
    );
    assert.equal(result.text, "Hello world");
    assert.deepEqual(
      result.toolCalls.map((c) => [c.id, c.name, c.argumentsJson, c.signature]),
      [
        ["c1", "first", '{"a":1}', ""],
        ["c2", "second", '{"b":2}', "s"],
      ],
    );
    assert.deepEqual(result.reasoning.map((r) => [r.text, r.signature]), [["thinking", "sig-1"]]);
    assert.equal(result.usage?.totalTokens, 5);
    assert.equal(result.events.length, 9);
  });

  it("collect refuses a stream without a finish, or with events after it", async () => {
    await assert.rejects(collect(stream([event({ case: "contentDelta", value: { text: "cut" } })])), /without a finish/);
    await assert.rejects(
      collect(
        stream([
          event({ case: "finish", value: { reason: FinishReason.STOP } }),
          event({ case: "contentDelta", value: { text: "late" } }),
        ]),
      ),
      /after finish/,
    );
  });

  it("errorDetails reads ErrorInfo, BadRequest and RetryInfo from a failed call", async () => {
    const transport = createRouterTransport(({ service }) =>
      service(ChatService, {
        chat: () => {
          throw new ConnectError("slow down", Code.ResourceExhausted, undefined, [
            { desc: ErrorInfoSchema, value: { reason: "RATE_LIMITED", domain: "ai-service", metadata: { route: "r" } } },
            { desc: BadRequestSchema, value: { fieldViolations: [{ field: "messages", description: "empty" }] } },
            { desc: RetryInfoSchema, value: { retryDelay: { seconds: 7n } } },
          ]);
        },
      }),
    );
    const error = await clientOn(transport).chat.chat({}).then(
      () => assert.fail("the call succeeded"),
      (e: unknown) => e,
    );
    const details = errorDetails(error);
    assert.equal(details.code, Code.ResourceExhausted);
    assert.equal(details.message, "slow down");
    assert.equal(details.info?.reason, "RATE_LIMITED");
    assert.equal(details.info?.metadata.route, "r");
    assert.equal(details.badRequest?.fieldViolations[0]?.field, "messages");
    assert.equal(details.retryInfo?.retryDelay?.seconds, 7n);
    assert.equal(errorDetails(new Error("plain")).code, Code.Unknown);
  });
});
