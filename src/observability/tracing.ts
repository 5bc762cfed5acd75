import type { CallSpan, CallTracer } from "../coze/http.js";
import type { LogFn } from "./logger.js";
import type { RequestLine } from "./request-log.js";
import { formatTraceParent, readTraceParent } from "./trace-context.js";

/** Where and how spans are exported (the config's `tracing` section). */
export interface TracingOptions {
  /** The OTLP/HTTP traces URL, e.g. `http://127.0.0.1:4318/v1/traces`. */
  otlpEndpoint: string;
  /** `http/protobuf` or `http/json`. */
  protocol: "http/protobuf" | "http/json";
  /** Headers sent with every export (a collector's API key): secrets, never logged. */
  headers: Readonly<Record<string, string>>;
  /** The `service.name` resource attribute. */
  serviceName: string;
  /** Share of new traces recorded, 0 to 1; a caller's sampled flag decides for its own. */
  sampleRatio: number;
  /** Most finished spans waiting for export; more are dropped. */
  maxQueueSpans: number;
  /** Longest one export may take, retries included, in ms. */
  exportTimeoutMs: number;
}

/** An incoming request's headers as Node parsed them (HTTP/1 or HTTP/2), lowercase names. */
export interface TraceHeaders {
  readonly [name: string]: string | string[] | undefined;
}

/** The end of a span: `failed` marks it as an error. */
export type SpanEnd = (failed: boolean) => void;

/** A trace of the gateway's own (discovery's refresh): its Coze calls join it through `tracer`. */
export interface BackgroundTrace {
  readonly tracer: CallTracer;
  /** Ends its span; `failed` marks it as an error. */
  end(failed: boolean): void;
}

/** The trace of one incoming request; its Coze calls join it through {@link CallTracer}. */
export interface RequestTrace extends CallTracer {
  /** 32 hexadecimal digits: the caller's trace, or one of ours. */
  readonly traceId: string;
}

/**
 * What the server asks of tracing. Off (no `tracing` section), nothing is recorded: a caller's
 * `traceparent` goes into the log line and on to Coze as it came, and a request without one costs
 * a header lookup. On, every request is a span of the caller's trace or of a new one.
 */
export interface Tracing {
  /** True when spans are recorded and exported. */
  readonly recording: boolean;
  /**
   * Begins the trace of an incoming request from its `traceparent` and `tracestate` headers (a
   * malformed or repeated `traceparent` is ignored, see `readTraceParent`); `undefined` when
   * the request is not traced.
   */
  begin(headers: TraceHeaders): RequestTrace | undefined;
  /**
   * Starts a span under the request's for a stage of it (an RPC, a door); Coze calls started
   * until it ends are its children. `undefined` when nothing is recorded.
   */
  enter(trace: CallTracer | undefined, name: string): SpanEnd | undefined;
  /** Ends the request's span with what its log line says (no body, no key, no token). */
  end(trace: CallTracer | undefined, line: RequestLine): void;
  /**
   * Starts a new trace for work of the gateway's own, outside any request (a discovery
   * refresh), sampled by `sample_ratio`; `undefined` when nothing is recorded, so that such
   * work sends Coze no `traceparent` then.
   */
  background(
    name: string,
    attributes: Readonly<Record<string, string>>,
  ): BackgroundTrace | undefined;
  /** Exports the spans still queued and stops; resolves within the export timeout. */
  shutdown(): Promise<void>;
}

/** A caller's trace passed on unchanged: no span of ours, the same `traceparent` to Coze. */
class ForwardedTrace implements RequestTrace {
  readonly #span: CallSpan;
  constructor(
    readonly traceId: string,
    span: CallSpan,
  ) {
    this.#span = span;
  }
  call(): CallSpan {
    return this.#span;
  }
}

/**
 * Tracing off: no span objects, no timers. A request with a valid `traceparent` keeps it: its
 * trace id goes into the log line, and every Coze call carries the caller's `traceparent` and
 * `tracestate` as they came (W3C §3.4: a participant that records nothing passes them on), so
 * Coze's side of the trace hangs under the caller's span.
 */
export const forwardingTracing: Tracing = {
  recording: false,
  begin(headers) {
    const { traceparent } = headers;
    if (traceparent === undefined) return undefined;
    const parent = readTraceParent(traceparent, headers.tracestate);
    if (parent === undefined) return undefined;
    return new ForwardedTrace(parent.traceId, {
      traceparent: formatTraceParent(parent.traceId, parent.parentId, parent.sampled),
      tracestate: parent.traceState,
    });
  },
  enter: () => undefined,
  end: () => {},
  background: () => undefined,
  shutdown: async () => {},
};

/**
 * The gateway's tracing: {@link forwardingTracing} without options; with them, spans exported
 * over OTLP/HTTP by the OpenTelemetry SDK, which is loaded only then (`tracing-otlp.ts`).
 */
export async function createTracing(
  options: TracingOptions | undefined,
  log: LogFn,
): Promise<Tracing> {
  if (options === undefined) return forwardingTracing;
  const { startOtlpTracing } = await import("./tracing-otlp.js");
  return startOtlpTracing(options, log);
}
