// The console playground's gRPC-Web client: a hand-written protobuf encoder and decoder for
// the few aiservice.v1 messages it needs (ListModels, StreamChat), and the gRPC-Web framing
// (binary mode, application/grpc-web+proto) over fetch with a streamed body. No framework.
//
// Wire format (gRPC-Web, PROTOCOL-WEB.md): each frame is 1 flag byte, a 4-byte big-endian
// length, then the payload. Flag 0x00 carries a message; flag 0x80 carries the trailers as
// HTTP/1 header lines (grpc-status, grpc-message, grpc-status-details-bin). A call that
// fails before any message may instead put grpc-status in the response headers
// (trailers-only).
"use strict";

const GrpcWeb = (() => {
  const utf8 = new TextEncoder();
  const utf8d = new TextDecoder();

  // --- protobuf encoding -------------------------------------------------------------------

  function varint(out, n) {
    while (n > 0x7f) {
      out.push((n & 0x7f) | 0x80);
      n = Math.floor(n / 128);
    }
    out.push(n);
  }

  function bytesField(out, field, bytes) {
    varint(out, (field << 3) | 2);
    varint(out, bytes.length);
    for (const b of bytes) out.push(b);
  }

  function stringField(out, field, text) {
    if (text) bytesField(out, field, utf8.encode(text));
  }

  function varintField(out, field, n) {
    if (n) {
      varint(out, field << 3);
      varint(out, n);
    }
  }

  const ROLE_USER = 2;

  // StreamChatRequest{model = 1, messages = 2: Message{role = 1, content = 2: ContentPart{text = 1}}}
  function encodeStreamChatRequest(model, text) {
    const part = [];
    stringField(part, 1, text);
    const message = [];
    varintField(message, 1, ROLE_USER);
    bytesField(message, 2, part);
    const request = [];
    stringField(request, 1, model);
    bytesField(request, 2, message);
    return Uint8Array.from(request);
  }

  // --- protobuf decoding -------------------------------------------------------------------

  // Calls visit(field, wireType, value) for each field of `bytes`; length-delimited values
  // are Uint8Arrays, varints numbers.
  function fields(bytes, visit) {
    let i = 0;
    const readVarint = () => {
      let n = 0;
      let scale = 1;
      for (;;) {
        if (i >= bytes.length) throw new Error("truncated varint");
        const b = bytes[i++];
        n += (b & 0x7f) * scale;
        if (b < 0x80) return n;
        scale *= 128;
      }
    };
    while (i < bytes.length) {
      const key = readVarint();
      const field = Math.floor(key / 8);
      const wire = key & 7;
      if (wire === 0) visit(field, wire, readVarint());
      else if (wire === 2) {
        const len = readVarint();
        if (i + len > bytes.length) throw new Error("truncated field");
        visit(field, wire, bytes.subarray(i, i + len));
        i += len;
      } else if (wire === 1) i += 8;
      else if (wire === 5) i += 4;
      else throw new Error("unsupported wire type " + wire);
    }
  }

  const str = (v) => utf8d.decode(v);

  // ListModelsResponse{models = 1: Model{name = 1, aliases = 2, targets = 3, available = 4}}
  function decodeListModels(bytes) {
    const models = [];
    fields(bytes, (f, w, v) => {
      if (f !== 1 || w !== 2) return;
      const model = { name: "", aliases: [], available: false };
      fields(v, (mf, mw, mv) => {
        if (mf === 1) model.name = str(mv);
        else if (mf === 2) model.aliases.push(str(mv));
        else if (mf === 4) model.available = mv !== 0;
      });
      models.push(model);
    });
    return models;
  }

  const FINISH_REASONS = ["UNSPECIFIED", "STOP", "LENGTH", "TOOL_CALLS", "CONTENT_FILTER", "OTHER"];

  // StreamChatResponse{content_delta = 1: {text = 1}, usage = 3: {input = 1, output = 2,
  // total = 3}, finish = 4: {reason = 1, provider = 4, provider_model = 5}}
  function decodeStreamEvent(bytes) {
    let event = { kind: "other" };
    fields(bytes, (f, w, v) => {
      if (w !== 2) return;
      if (f === 1) {
        let text = "";
        fields(v, (cf, _cw, cv) => { if (cf === 1) text = str(cv); });
        event = { kind: "content", text };
      } else if (f === 3) {
        const usage = { input: 0, output: 0, total: 0 };
        fields(v, (uf, _uw, uv) => {
          if (uf === 1) usage.input = uv;
          else if (uf === 2) usage.output = uv;
          else if (uf === 3) usage.total = uv;
        });
        event = { kind: "usage", usage };
      } else if (f === 4) {
        const finish = { reason: "UNSPECIFIED", provider: "", model: "" };
        fields(v, (ff, _fw, fv) => {
          if (ff === 1) finish.reason = FINISH_REASONS[fv] || String(fv);
          else if (ff === 4) finish.provider = str(fv);
          else if (ff === 5) finish.model = str(fv);
        });
        event = { kind: "finish", finish };
      }
    });
    return event;
  }

  // google.rpc.Status{code = 1, message = 2, details = 3: Any{type_url = 1, value = 2}};
  // ErrorInfo{reason = 1, domain = 2}. Returns the ErrorInfo reason, if any.
  function errorReason(statusBytes) {
    let reason = "";
    fields(statusBytes, (f, w, v) => {
      if (f !== 3 || w !== 2) return;
      let typeUrl = "";
      let value = null;
      fields(v, (af, _aw, av) => {
        if (af === 1) typeUrl = str(av);
        else if (af === 2) value = av;
      });
      if (typeUrl.endsWith("/google.rpc.ErrorInfo") && value) {
        fields(value, (ef, _ew, ev) => { if (ef === 1) reason = str(ev); });
      }
    });
    return reason;
  }

  // --- gRPC-Web framing --------------------------------------------------------------------

  const CODES = ["OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
    "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL",
    "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"];

  // A failed call: gRPC code name, message and ErrorInfo reason.
  class GrpcError extends Error {
    constructor(code, message, reason) {
      super(`${CODES[code] || code}${reason ? " " + reason : ""}: ${message}`);
      this.code = CODES[code] || String(code);
      this.grpcMessage = message;
      this.reason = reason;
    }
  }

  function base64Bytes(text) {
    const padded = text + "===".slice((text.length + 3) % 4);
    const raw = atob(padded.replace(/-/g, "+").replace(/_/g, "/"));
    return Uint8Array.from(raw, (c) => c.charCodeAt(0));
  }

  // grpc-status & co. from a header source (Headers, or the trailer frame's lines).
  function statusOf(get) {
    const code = get("grpc-status");
    if (code === null || code === undefined) return null;
    let message = get("grpc-message") || "";
    try { message = decodeURIComponent(message); } catch (_) { /* keep it raw */ }
    let reason = "";
    const details = get("grpc-status-details-bin");
    if (details) {
      try { reason = errorReason(base64Bytes(details)); } catch (_) { /* no reason */ }
    }
    return { code: Number(code), message, reason };
  }

  function frame(message) {
    const out = new Uint8Array(5 + message.length);
    new DataView(out.buffer).setUint32(1, message.length);
    out.set(message, 5);
    return out;
  }

  // Calls `method` on `base` (the gRPC port's origin) with `request` bytes; onMessage gets
  // each response message's bytes as it arrives. Resolves when the call ended OK; rejects
  // with a GrpcError (or a network error) otherwise.
  async function call(base, method, request, key, onMessage, signal) {
    const headers = {
      "content-type": "application/grpc-web+proto",
      "x-grpc-web": "1",
      "grpc-timeout": "60S",
    };
    if (key) headers.authorization = "Bearer " + key;
    const response = await fetch(base + "/" + method, {
      method: "POST", headers, body: frame(request), signal, mode: "cors",
      credentials: "omit", cache: "no-store", referrerPolicy: "no-referrer",
    });
    const early = statusOf((name) => response.headers.get(name));
    if (!response.ok) throw new GrpcError(14, `HTTP ${response.status}`, "");
    let buffer = new Uint8Array(0);
    let trailer = null;
    const reader = response.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      const joined = new Uint8Array(buffer.length + value.length);
      joined.set(buffer);
      joined.set(value, buffer.length);
      buffer = joined;
      while (buffer.length >= 5) {
        const len = new DataView(buffer.buffer, buffer.byteOffset).getUint32(1);
        if (buffer.length < 5 + len) break;
        const flag = buffer[0];
        const payload = buffer.slice(5, 5 + len);
        buffer = buffer.slice(5 + len);
        if (flag & 0x80) {
          const lines = {};
          for (const line of utf8d.decode(payload).split("\r\n")) {
            const at = line.indexOf(":");
            if (at > 0) lines[line.slice(0, at).trim().toLowerCase()] = line.slice(at + 1).trim();
          }
          trailer = statusOf((name) => (name in lines ? lines[name] : null));
        } else {
          onMessage(payload);
        }
      }
    }
    const status = trailer || early;
    if (!status) throw new GrpcError(2, "the stream ended without a status", "");
    if (status.code !== 0) throw new GrpcError(status.code, status.message, status.reason);
  }

  const SERVICE = "aiservice.v1.ChatService/";

  return {
    GrpcError,
    encodeStreamChatRequest,
    decodeStreamEvent,
    decodeListModels,
    errorReason,
    async listModels(base, key) {
      let models = [];
      await call(base, SERVICE + "ListModels", new Uint8Array(0), key,
        (bytes) => { models = decodeListModels(bytes); });
      return models;
    },
    // Streams an answer: onEvent({kind: "content" | "usage" | "finish", ...}) per event.
    streamChat(base, key, model, text, onEvent, signal) {
      return call(base, SERVICE + "StreamChat", encodeStreamChatRequest(model, text), key,
        (bytes) => onEvent(decodeStreamEvent(bytes)), signal);
    },
  };
})();
