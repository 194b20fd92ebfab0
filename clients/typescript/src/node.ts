/**
 * The client in Node: `dial` connects to the gateway over gRPC (HTTP/2, connect-node), or over
 * gRPC-Web (connect-web on Node's fetch) when asked, the way a browser page would.
 */
import { createGrpcTransport } from "@connectrpc/connect-node";
import { createGrpcWebTransport } from "@connectrpc/connect-web";

import { clientOn, interceptorsOf, type AiServiceClient, type ClientOptions } from "./client.js";

/** How `dial` connects. */
export interface DialOptions extends ClientOptions {
  /** Without TLS, for a gateway on localhost or behind a mesh that terminates TLS. */
  plaintext?: boolean;
  /** `grpc` (the default, HTTP/2) or `grpc-web` (HTTP/1.1 through fetch). */
  protocol?: "grpc" | "grpc-web";
}

/**
 * A client for the gateway at `address` (`host:port`). Like gRPC's own clients it connects on
 * the first call. TLS by default with Node's trusted roots.
 */
export function dial(address: string, options: DialOptions = {}): AiServiceClient {
  const baseUrl = `${options.plaintext ? "http" : "https"}://${address}`;
  const interceptors = interceptorsOf(options);
  const transport =
    options.protocol === "grpc-web"
      ? createGrpcWebTransport({ baseUrl, interceptors })
      : createGrpcTransport({ baseUrl, interceptors });
  return clientOn(transport);
}
