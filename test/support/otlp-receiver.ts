import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { BinaryReader, type WireType } from "@bufbuild/protobuf/wire";

/** One span as an OTLP receiver sees it, ids in lowercase hex. */
export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  /** `""` for a root span. */
  parentSpanId: string;
  traceState: string;
  name: string;
  /** OTLP SpanKind: 1 internal, 2 server, 3 client. */
  kind: number;
  attributes: Record<string, unknown>;
  /** OTLP status code: 0 unset, 1 ok, 2 error. */
  status: { code: number; message: string };
  /** The resource's attributes (`service.name`). */
  resource: Record<string, unknown>;
}

/** One export request the receiver got. */
export interface ReceivedExport {
  contentType: string;
  headers: Record<string, string | string[] | undefined>;
  /** The body as it came. */
  body: Buffer;
}

/** A local OTLP/HTTP traces receiver (protobuf and JSON) on 127.0.0.1, port 0. */
export interface OtlpReceiver {
  /** `http://127.0.0.1:PORT/v1/traces`. */
  readonly url: string;
  /** Every export request so far. */
  readonly exports: ReceivedExport[];
  /** Export requests dropped while `down`. */
  readonly refused: number;
  /** Every span of every export so far, decoded. */
  spans(): ReceivedSpan[];
  /** `ok` answers 200; `down` drops each connection before answering (a collector that is down). */
  mode: "ok" | "down";
  close(): Promise<void>;
}

/** Starts an {@link OtlpReceiver}. */
export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const exports: ReceivedExport[] = [];
  const sockets = new Set<Socket>();
  const receiver = {
    url: "",
    exports,
    mode: "ok" as "ok" | "down",
    refused: 0,
    spans: () => exports.flatMap(decodeExport),
    close: async () => {},
  };
  const server = createServer((req, res) => {
    if (receiver.mode === "down") {
      receiver.refused++;
      req.socket.destroy();
      return;
    }
    void readBody(req).then((body) => {
      exports.push({
        contentType: req.headers["content-type"] ?? "",
        headers: { ...req.headers },
        body,
      });
      const json = (req.headers["content-type"] ?? "").includes("json");
      res.writeHead(200, { "content-type": json ? "application/json" : "application/x-protobuf" });
      res.end(json ? "{}" : undefined);
    });
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  receiver.url = `http://127.0.0.1:${port}/v1/traces`;
  receiver.close = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      for (const s of sockets) s.destroy();
    });
  return receiver;
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** The spans of one export, protobuf or JSON. */
export function decodeExport(e: ReceivedExport): ReceivedSpan[] {
  return e.contentType.includes("json") ? decodeJson(e.body) : decodeProtobuf(e.body);
}

// --- JSON (OTLP/HTTP JSON: ids as hex strings) ---------------------------------------------

type JsonValue = {
  stringValue?: string;
  boolValue?: boolean;
  intValue?: string | number;
  doubleValue?: number;
  arrayValue?: { values?: JsonValue[] };
};
type JsonAttrs = { key: string; value: JsonValue }[] | undefined;

function jsonValue(v: JsonValue): unknown {
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.boolValue !== undefined) return v.boolValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.doubleValue !== undefined) return v.doubleValue;
  if (v.arrayValue !== undefined) return (v.arrayValue.values ?? []).map(jsonValue);
  return undefined;
}

function jsonAttributes(list: JsonAttrs): Record<string, unknown> {
  return Object.fromEntries((list ?? []).map((kv) => [kv.key, jsonValue(kv.value)]));
}

function decodeJson(body: Buffer): ReceivedSpan[] {
  const request = JSON.parse(body.toString("utf8")) as {
    resourceSpans?: {
      resource?: { attributes?: JsonAttrs };
      scopeSpans?: {
        spans?: {
          traceId: string;
          spanId: string;
          parentSpanId?: string;
          traceState?: string;
          name: string;
          kind?: number;
          attributes?: JsonAttrs;
          status?: { code?: number; message?: string };
        }[];
      }[];
    }[];
  };
  return (request.resourceSpans ?? []).flatMap((rs) => {
    const resource = jsonAttributes(rs.resource?.attributes);
    return (rs.scopeSpans ?? []).flatMap((ss) =>
      (ss.spans ?? []).map((s) => ({
        traceId: s.traceId,
        spanId: s.spanId,
        parentSpanId: s.parentSpanId ?? "",
        traceState: s.traceState ?? "",
        name: s.name,
        kind: s.kind ?? 0,
        attributes: jsonAttributes(s.attributes),
        status: { code: s.status?.code ?? 0, message: s.status?.message ?? "" },
        resource,
      })),
    );
  });
}

// --- protobuf (opentelemetry/proto/collector/trace/v1, read field by field) -----------------

/** Calls `each(field, wireType, reader)` for every field of a message; `each` reads or skips. */
function fields(bytes: Uint8Array, each: (field: number, reader: BinaryReader) => boolean): void {
  const reader = new BinaryReader(bytes);
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (!each(field, reader)) reader.skip(wireType as WireType);
  }
}

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

function anyValue(bytes: Uint8Array): unknown {
  let value: unknown;
  fields(bytes, (f, r) => {
    if (f === 1) value = r.string();
    else if (f === 2) value = r.bool();
    else if (f === 3) value = Number(r.int64());
    else if (f === 4) value = r.double();
    else if (f === 5) {
      const list: unknown[] = [];
      fields(r.bytes(), (g, r2) => {
        if (g !== 1) return false;
        list.push(anyValue(r2.bytes()));
        return true;
      });
      value = list;
    } else return false;
    return true;
  });
  return value;
}

function keyValue(bytes: Uint8Array, into: Record<string, unknown>): void {
  let key = "";
  let value: unknown;
  fields(bytes, (f, r) => {
    if (f === 1) key = r.string();
    else if (f === 2) value = anyValue(r.bytes());
    else return false;
    return true;
  });
  into[key] = value;
}

function decodeSpan(bytes: Uint8Array, resource: Record<string, unknown>): ReceivedSpan {
  const span: ReceivedSpan = {
    traceId: "",
    spanId: "",
    parentSpanId: "",
    traceState: "",
    name: "",
    kind: 0,
    attributes: {},
    status: { code: 0, message: "" },
    resource,
  };
  fields(bytes, (f, r) => {
    if (f === 1) span.traceId = hex(r.bytes());
    else if (f === 2) span.spanId = hex(r.bytes());
    else if (f === 3) span.traceState = r.string();
    else if (f === 4) span.parentSpanId = hex(r.bytes());
    else if (f === 5) span.name = r.string();
    else if (f === 6) span.kind = r.int32();
    else if (f === 9) keyValue(r.bytes(), span.attributes);
    else if (f === 15) {
      fields(r.bytes(), (g, r2) => {
        if (g === 2) span.status.message = r2.string();
        else if (g === 3) span.status.code = r2.int32();
        else return false;
        return true;
      });
    } else return false;
    return true;
  });
  return span;
}

function decodeProtobuf(body: Buffer): ReceivedSpan[] {
  const spans: ReceivedSpan[] = [];
  fields(body, (f, r) => {
    if (f !== 1) return false;
    // ResourceSpans: resource = 1, scope_spans = 2.
    const resource: Record<string, unknown> = {};
    const scopes: Uint8Array[] = [];
    fields(r.bytes(), (g, r2) => {
      if (g === 1) {
        fields(r2.bytes(), (h, r3) => {
          if (h !== 1) return false;
          keyValue(r3.bytes(), resource);
          return true;
        });
      } else if (g === 2) scopes.push(r2.bytes());
      else return false;
      return true;
    });
    for (const scope of scopes) {
      // ScopeSpans: spans = 2.
      fields(scope, (g, r2) => {
        if (g !== 2) return false;
        spans.push(decodeSpan(r2.bytes(), resource));
        return true;
      });
    }
    return true;
  });
  return spans;
}
