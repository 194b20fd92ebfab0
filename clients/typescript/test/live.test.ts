/**
 * The TypeScript client against running gateways, over gRPC (connect-node, HTTP/2) and over
 * gRPC-Web (connect-web on Node's fetch, HTTP/1.1), the same cases for both:
 * AI_SERVICE_ADDR (the echo provider, no keys), AI_SERVICE_FAULTS_ADDR (route "slow": echo
 * with 200ms between deltas; route "limited": an upstream that answers 429 with Retry-After: 7)
 * and AI_SERVICE_AUTH_ADDR (client keys required: AI_SERVICE_AUTH_KEY for every route,
 * AI_SERVICE_AUTH_OTHER_KEY for route "other" only). `make test` starts them
 * (scripts/with-servers.sh) and sets the variables; without AI_SERVICE_ADDR this file skips.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";

import {
  ChatRequestSchema,
  FinishReason,
  StreamChatRequestSchema,
  ToolChoiceMode,
  type ChatRequest,
} from "../src/gen/aiservice/v1/chat_pb.js";
import {
  collect,
  dial,
  ERROR_DOMAIN,
  errorDetails,
  textOf,
  userText,
  type AiServiceClient,
} from "../src/index.js";

const echoAddr = process.env.AI_SERVICE_ADDR;

function addr(name: string): string {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set but AI_SERVICE_ADDR is: start every gateway`);
  }
  return value;
}

function chatRequest(model: string, text: string): ChatRequest {
  return create(ChatRequestSchema, { model, messages: [userText(text)] });
}

function streamRequest(model: string, text: string) {
  return create(StreamChatRequestSchema, { model, messages: [userText(text)] });
}

/** The error a promise rejects with; fails when it resolves. */
async function failure(promise: Promise<unknown>): Promise<ConnectError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof ConnectError, `not a ConnectError: ${error}`);
    return error;
  }
  assert.fail("the call succeeded");
}

/** A request that makes the echo provider call the tool `lookup` with {"text": <echo>}. */
function toolRequest(text: string) {
  return {
    model: "echo",
    messages: [userText(text)],
    tools: [{ name: "lookup", description: "Looks a thing up.", parametersJson: '{"type":"object"}' }],
    toolChoice: { choice: { case: "mode" as const, value: ToolChoiceMode.REQUIRED } },
  };
}

for (const protocol of ["grpc", "grpc-web"] as const) {
  describe(`over ${protocol}`, { skip: echoAddr ? false : "AI_SERVICE_ADDR is not set" }, () => {
    const client = (address: string, apiKey?: string): AiServiceClient =>
      dial(address, { plaintext: true, protocol, apiKey });
    const echo = () => client(addr("AI_SERVICE_ADDR"));

    it("Chat echoes with usage and the request id", async () => {
      let requestId: string | null = null;
      let contentType: string | null = null;
      const reply = await echo().chat.chat(chatRequest("echo", "hello world"), {
        timeoutMs: 10_000,
        headers: { "x-request-id": `ts-${protocol}-unary` },
        onHeader: (headers) => {
          requestId = headers.get("x-request-id");
          contentType = headers.get("content-type");
        },
      });
      // The transport really spoke the protocol under test.
      assert.equal(contentType, protocol === "grpc" ? "application/grpc" : "application/grpc-web+proto");
      assert.equal(textOf(reply.message), "hello world");
      assert.equal(reply.provider, "echo");
      assert.equal(reply.finishReason, FinishReason.STOP);
      assert.equal(reply.usage?.totalTokens, (reply.usage?.inputTokens ?? 0) + (reply.usage?.outputTokens ?? 0));
      assert.ok((reply.usage?.outputTokens ?? 0) > 0);
      assert.equal(requestId, `ts-${protocol}-unary`);
    });

    it("StreamChat sends deltas, then usage, then finish", async () => {
      const result = await collect(
        echo().chat.streamChat(streamRequest("echo", "one two three four"), { timeoutMs: 10_000 }),
      );
      assert.equal(result.text, "one two three four");
      const cases = result.events.map((e) => e.event.case);
      assert.ok(cases.filter((c) => c === "contentDelta").length >= 2, `${cases}`);
      assert.deepEqual(cases.slice(-2), ["usage", "finish"]);
      assert.equal(result.finish?.reason, FinishReason.STOP);
      assert.ok((result.usage?.totalTokens ?? 0) > 0);
    });

    it("ListModels lists the echo route", async () => {
      const models = await echo().chat.listModels({}, { timeoutMs: 10_000 });
      assert.ok(models.models.some((m) => m.name === "echo" && m.available), JSON.stringify(models.models.map((m) => m.name)));
    });

    it("a required tool is called, unary and streamed", async () => {
      const reply = await echo().chat.chat(toolRequest("weather in Paris"), { timeoutMs: 10_000 });
      assert.equal(reply.finishReason, FinishReason.TOOL_CALLS);
      const [call] = reply.message?.toolCalls ?? [];
      assert.equal(call?.name, "lookup");
      assert.deepEqual(JSON.parse(call?.argumentsJson ?? ""), { text: "weather in Paris" });
      assert.ok(call?.id);

      const streamed = await collect(echo().chat.streamChat(toolRequest("weather in Oslo"), { timeoutMs: 10_000 }));
      assert.equal(streamed.finish?.reason, FinishReason.TOOL_CALLS);
      assert.equal(streamed.toolCalls.length, 1);
      assert.equal(streamed.toolCalls[0]?.name, "lookup");
      assert.deepEqual(JSON.parse(streamed.toolCalls[0]?.argumentsJson ?? ""), { text: "weather in Oslo" });
    });

    it("INVALID_ARGUMENT carries ErrorInfo and a BadRequest field violation", async () => {
      const error = await failure(
        echo().chat.chat(create(ChatRequestSchema, { model: "echo" }), {
          timeoutMs: 10_000,
          headers: { "x-request-id": `ts-${protocol}-invalid` },
        }),
      );
      const details = errorDetails(error);
      assert.equal(details.code, Code.InvalidArgument);
      assert.equal(details.info?.domain, ERROR_DOMAIN);
      assert.equal(details.info?.reason, "INVALID_REQUEST");
      const fields = details.badRequest?.fieldViolations.map((v) => v.field) ?? [];
      assert.ok(fields.includes("messages"), `${fields}`);
      // A failed call is answered trailers-only: the id comes back with the status.
      assert.equal(error.metadata.get("x-request-id"), `ts-${protocol}-invalid`);
    });

    it("an unknown model is NOT_FOUND with MODEL_NOT_FOUND", async () => {
      const details = errorDetails(
        await failure(echo().chat.chat(chatRequest("no-such-model", "hi"), { timeoutMs: 10_000 })),
      );
      assert.equal(details.code, Code.NotFound);
      assert.equal(details.info?.reason, "MODEL_NOT_FOUND");
      assert.equal(details.info?.metadata.model, "no-such-model");
    });

    it("a stream's deadline expires before its finish", async () => {
      const slow = client(addr("AI_SERVICE_FAULTS_ADDR"));
      const seen: string[] = [];
      const error = await failure(
        (async () => {
          for await (const event of slow.chat.streamChat(streamRequest("slow", "one two three four five"), {
            timeoutMs: 300,
          })) {
            seen.push(event.event.case ?? "");
          }
        })(),
      );
      assert.equal(error.code, Code.DeadlineExceeded);
      assert.ok(!seen.includes("finish"), `${seen}`);
    });

    it("a cancelled stream ends at once", async () => {
      const slow = client(addr("AI_SERVICE_FAULTS_ADDR"));
      const abort = new AbortController();
      const started = Date.now();
      const seen: string[] = [];
      const error = await failure(
        (async () => {
          const words = "one two three four five six seven eight nine ten";
          for await (const event of slow.chat.streamChat(streamRequest("slow", words), {
            signal: abort.signal,
            timeoutMs: 10_000,
          })) {
            seen.push(event.event.case ?? "");
            if (event.event.case === "contentDelta") {
              abort.abort();
            }
          }
        })(),
      );
      assert.equal(error.code, Code.Canceled);
      assert.deepEqual(seen, ["contentDelta"]);
      // Ten deltas 200ms apart take two seconds; the cancel ends it after the first.
      assert.ok(Date.now() - started < 1_500, `${Date.now() - started}ms`);
    });

    it("an upstream rate limit is RESOURCE_EXHAUSTED with RetryInfo", async () => {
      const faults = client(addr("AI_SERVICE_FAULTS_ADDR"));
      const details = errorDetails(await failure(faults.chat.chat(chatRequest("limited", "hi"), { timeoutMs: 10_000 })));
      assert.equal(details.code, Code.ResourceExhausted);
      assert.equal(details.info?.reason, "UPSTREAM_RATE_LIMITED");
      const delay = Number(details.retryInfo?.retryDelay?.seconds ?? 0n);
      assert.ok(delay > 0 && delay <= 7, `${delay}`);
    });

    const keyCases: [string, string | undefined, Code, string][] = [
      ["without a key", undefined, Code.Unauthenticated, "UNAUTHENTICATED"],
      ["with a wrong key", "not-a-key", Code.Unauthenticated, "UNAUTHENTICATED"],
      ["with a key for another route", "AI_SERVICE_AUTH_OTHER_KEY", Code.PermissionDenied, "ROUTE_NOT_ALLOWED"],
    ];
    for (const [name, key, code, reason] of keyCases) {
      it(`client keys: ${name}`, async () => {
        const apiKey = key && (process.env[key] ?? key);
        const keyed = client(addr("AI_SERVICE_AUTH_ADDR"), apiKey);
        const details = errorDetails(await failure(keyed.chat.chat(chatRequest("echo", "hi"), { timeoutMs: 10_000 })));
        assert.equal(details.code, code);
        assert.equal(details.info?.reason, reason);
      });
    }

    it("client keys: a valid key is served, unary and streamed", async () => {
      const keyed = client(addr("AI_SERVICE_AUTH_ADDR"), addr("AI_SERVICE_AUTH_KEY"));
      const reply = await keyed.chat.chat(chatRequest("echo", "with a key"), { timeoutMs: 10_000 });
      assert.equal(textOf(reply.message), "with a key");
      const streamed = await collect(keyed.chat.streamChat(streamRequest("other", "streamed with a key"), { timeoutMs: 10_000 }));
      assert.equal(streamed.text, "streamed with a key");
    });
  });
}
