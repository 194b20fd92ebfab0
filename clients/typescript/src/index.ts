/**
 * `@ai-service/client` in Node: the helper (./client.ts) and `dial` (./node.ts). Browsers
 * import `@ai-service/client/web`; the generated messages and services are under
 * `@ai-service/client/gen/aiservice/v1/chat_pb.js` (and `embed_pb.js`).
 */
export * from "./client.js";
export { dial, type DialOptions } from "./node.js";
