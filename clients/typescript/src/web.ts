/**
 * The client in a browser: `dialWeb` calls the gateway over gRPC-Web with the page's fetch
 * (connect-web), so nothing of Node is imported. The gateway must list the page's origin in
 * `server.grpc_web.allowed_origins`.
 */
import { createGrpcWebTransport } from "@connectrpc/connect-web";

import { clientOn, interceptorsOf, type AiServiceClient, type ClientOptions } from "./client.js";

export * from "./client.js";

/** A client for the gateway whose gRPC port is at `baseUrl` (`https://gateway.example:8080`). */
export function dialWeb(baseUrl: string, options: ClientOptions = {}): AiServiceClient {
  return clientOn(createGrpcWebTransport({ baseUrl, interceptors: interceptorsOf(options) }));
}
