/**
 * Streams one answer from the gateway and prints it as it arrives, then its usage:
 *   node build/examples/chat.js [--addr 127.0.0.1:8080] [--plaintext] [--web] hello world
 * `--web` speaks gRPC-Web (as a browser would) instead of gRPC; the client key, if the
 * gateway wants one, comes from AI_SERVICE_API_KEY. A failure prints its code and details.
 */
import { parseArgs } from "node:util";

import { Code } from "@connectrpc/connect";

import { FinishReason } from "../src/gen/aiservice/v1/chat_pb.js";
import { collect, dial, errorDetails, userText } from "../src/index.js";

const { values, positionals } = parseArgs({
  options: {
    addr: { type: "string", default: "127.0.0.1:8080" },
    plaintext: { type: "boolean", default: false },
    web: { type: "boolean", default: false },
    model: { type: "string", default: "echo" },
  },
  allowPositionals: true,
});

const client = dial(values.addr, {
  plaintext: values.plaintext,
  protocol: values.web ? "grpc-web" : "grpc",
  apiKey: process.env.AI_SERVICE_API_KEY,
});

try {
  const stream = client.chat.streamChat(
    { model: values.model, messages: [userText(positionals.join(" ") || "hello world")] },
    { timeoutMs: 30_000 },
  );
  // Print each delta as it comes, and let collect() check the stream's order.
  const printed = (async function* () {
    for await (const event of stream) {
      if (event.event.case === "contentDelta") {
        process.stdout.write(event.event.value.text);
      }
      yield event;
    }
  })();
  const result = await collect(printed);
  console.log(`\n[${values.web ? "gRPC-Web" : "gRPC"}] ${result.usage?.totalTokens ?? 0} tokens, finish ${FinishReason[result.finish?.reason ?? FinishReason.UNSPECIFIED]}`);
} catch (error) {
  const details = errorDetails(error);
  console.error(`failed: ${Code[details.code]} ${details.message} ${details.info?.reason ?? ""}`);
  process.exitCode = 1;
}
