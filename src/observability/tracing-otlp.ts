// Tracing on: spans by the OpenTelemetry SDK, exported over OTLP/HTTP. Loaded by `createTracing`
// only when the config has a `tracing` section, so a gateway without one never loads the SDK.
// Nothing here registers a global (tracer provider, context manager, propagator): parents are
// passed explicitly, as the request context is (AsyncLocalStorage cost every request, issue #6).
import { Agent as HttpAgent } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import {
  type Attributes,
  type Context,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type Tracer,
  trace,
} from "@opentelemetry/api";
import { ExportResultCode, TraceState } from "@opentelemetry/core";
import { createOtlpHttpExportDelegate } from "@opentelemetry/otlp-exporter-base/node-http";
import {
  JsonTraceSerializer,
  ProtobufTraceSerializer,
  TraceExporterMetricsHelper,
} from "@opentelemetry/otlp-transformer";
import { resourceFromAttributes } from "@opentelemetry/resources";
import {
  BatchSpanProcessor,
  ParentBasedSampler,
  type SpanExporter,
  TraceIdRatioBasedSampler,
  TracerProvider,
} from "@opentelemetry/sdk-trace";
import type { CallInfo, CallSpan, CallTracer } from "../coze/http.js";
import type { LogFn } from "./logger.js";
import type { RequestLine } from "./request-log.js";
import { formatTraceParent, readTraceParent } from "./trace-context.js";
import type { BackgroundTrace, RequestTrace, SpanEnd, Tracing, TracingOptions } from "./tracing.js";

/** One Coze call's span; its context is what Coze receives as `traceparent`. */
class OtlpCall implements CallSpan {
  readonly traceparent: string;
  readonly tracestate: string | undefined;
  readonly #tracer: Tracer;
  readonly #span: Span;
  constructor(tracer: Tracer, span: Span) {
    this.#tracer = tracer;
    this.#span = span;
    const { traceId, spanId, traceFlags, traceState } = span.spanContext();
    this.traceparent = formatTraceParent(traceId, spanId, (traceFlags & 1) === 1);
    this.tracestate = traceState?.serialize() || undefined;
  }
  token(): (failed: boolean) => void {
    if (!this.#span.isRecording()) return () => {};
    const wait = this.#tracer.startSpan(
      "coze token",
      { kind: SpanKind.INTERNAL },
      trace.setSpan(ROOT_CONTEXT, this.#span),
    );
    return (failed) => {
      if (failed) wait.setStatus({ code: SpanStatusCode.ERROR });
      wait.end();
    };
  }
  end(info: CallInfo): void {
    const span = this.#span;
    if (span.isRecording()) {
      span.setAttributes(callAttributes(info));
      if (info.outcome !== "ok")
        span.setStatus({ code: SpanStatusCode.ERROR, message: info.outcome });
    }
    span.end();
  }
}

/** What a Coze call's span says: the step, status, Coze's log id, retries. No URL, no body. */
function callAttributes(info: CallInfo): Attributes {
  const attributes: Attributes = {
    "coze.outcome": info.outcome,
    "coze.retries": info.retries,
  };
  if (info.status !== undefined) attributes["http.response.status_code"] = info.status;
  if (info.logId !== undefined) attributes["coze.logid"] = info.logId;
  if (info.retriedAuth) attributes["coze.retried_auth"] = true;
  return attributes;
}

/** The spans of one request: its own, the stages under it, and its Coze calls. */
class OtlpTrace implements RequestTrace {
  readonly traceId: string;
  readonly #tracer: Tracer;
  readonly #span: Span;
  /** Where children go: the innermost open stage, else the request. */
  #parent: Context;
  constructor(tracer: Tracer, span: Span) {
    this.#tracer = tracer;
    this.#span = span;
    this.traceId = span.spanContext().traceId;
    this.#parent = trace.setSpan(ROOT_CONTEXT, span);
  }
  call(step: string, method: string): CallSpan {
    const span = this.#tracer.startSpan(
      `coze ${step}`,
      { kind: SpanKind.CLIENT, attributes: { "coze.step": step, "http.request.method": method } },
      this.#parent,
    );
    return new OtlpCall(this.#tracer, span);
  }
  enter(name: string): SpanEnd {
    const span = this.#tracer.startSpan(name, { kind: SpanKind.INTERNAL }, this.#parent);
    const previous = this.#parent;
    const inside = trace.setSpan(ROOT_CONTEXT, span);
    this.#parent = inside;
    return (failed) => {
      if (failed) span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
      if (this.#parent === inside) this.#parent = previous;
    };
  }
  end(line: RequestLine): void {
    const span = this.#span;
    if (span.isRecording()) {
      span.updateName(line.method);
      span.setAttributes(requestAttributes(line));
      if (line.outcome === "error") {
        span.setStatus({ code: SpanStatusCode.ERROR, message: line.reason ?? line.code });
      }
    }
    span.end();
  }
}

/** What a request's span says: its log line's fields, so a trace and a line tell the same. */
function requestAttributes(line: RequestLine): Attributes {
  const a: Attributes = {
    "gateway.route": line.method,
    "gateway.code": line.code,
    "gateway.outcome": line.outcome,
  };
  if (line.requestId !== undefined) a["gateway.request_id"] = line.requestId;
  if (line.caller !== undefined) a["gateway.caller"] = line.caller;
  if (line.client !== undefined) a["client.address"] = line.client;
  if (line.model !== undefined) a["gateway.model"] = line.model;
  if (line.kind !== undefined) a["gateway.kind"] = line.kind;
  if (line.channel !== undefined) a["gateway.channel"] = line.channel;
  if (line.promptTokens !== undefined) a["gen_ai.usage.input_tokens"] = line.promptTokens;
  if (line.completionTokens !== undefined) a["gen_ai.usage.output_tokens"] = line.completionTokens;
  if (line.reason !== undefined) a["gateway.reason"] = line.reason;
  if (line.field !== undefined) a["gateway.field"] = line.field;
  if (line.cozeLogIds !== undefined) a["coze.logids"] = [...line.cozeLogIds];
  if (line.aborted) a["gateway.aborted"] = true;
  return a;
}

/** The endpoint as logs show it: no query (the config allows none anyway). */
function shownEndpoint(url: string): string {
  const u = new URL(url);
  return `${u.origin}${u.pathname}`;
}

/** A short, safe name for an export failure: a status or an errno, never a body. */
function failureOf(error: unknown): Record<string, unknown> {
  const e = error as { code?: unknown; name?: unknown } | undefined;
  if (typeof e?.code === "number") return { status: e.code };
  if (typeof e?.code === "string") return { error: e.code };
  return { error: typeof e?.name === "string" ? e.name : "unknown" };
}

/**
 * The OTLP/HTTP exporter, built from the SDK's parts with every setting explicit (the packaged
 * exporters also read `OTEL_EXPORTER_OTLP_*` from the environment, which nothing below `main.ts`
 * may do). A failed export is logged once, with the endpoint and the status or error code, until
 * one succeeds again; its spans are dropped.
 */
function createExporter(
  options: TracingOptions,
  log: LogFn,
): { exporter: SpanExporter; close(): void } {
  const json = options.protocol === "http/json";
  const headers = {
    ...options.headers,
    "Content-Type": json ? "application/json" : "application/x-protobuf",
  };
  const agent = options.otlpEndpoint.startsWith("https:")
    ? new HttpsAgent({ keepAlive: true })
    : new HttpAgent({ keepAlive: true });
  const delegate = createOtlpHttpExportDelegate(
    {
      url: options.otlpEndpoint,
      headers: async () => headers,
      agentFactory: () => agent,
      compression: "none",
      // The batch processor sends one export at a time; the second is shutdown's.
      concurrencyLimit: 2,
      timeoutMillis: options.exportTimeoutMs,
    },
    json ? JsonTraceSerializer : ProtobufTraceSerializer,
    "otlp_http_span_exporter",
    TraceExporterMetricsHelper,
    undefined,
  );
  const endpoint = shownEndpoint(options.otlpEndpoint);
  let failing = false;
  const exporter: SpanExporter = {
    export(spans, done) {
      delegate.export(spans, (result) => {
        if (result.code === ExportResultCode.SUCCESS) {
          if (failing) log("info", "tracing: span export works again", { endpoint });
          failing = false;
        } else if (!failing) {
          failing = true;
          log("warn", "tracing: span export failed; spans are dropped until it works again", {
            endpoint,
            ...failureOf(result.error),
          });
        }
        done(result);
      });
    },
    forceFlush: () => delegate.forceFlush(),
    shutdown: () => delegate.shutdown(),
  };
  return { exporter, close: () => agent.destroy() };
}

/**
 * Starts tracing with OTLP export: a span per request (the caller's `traceparent` its parent, a
 * new trace otherwise, sampled by `sampleRatio` unless the caller's sampled flag decides), per
 * RPC or door, per Coze call (with its step and log id) and per token wait. Finished spans wait
 * in a queue of at most `maxQueueSpans` (more are dropped) and leave in batches; an export that
 * fails never fails a request. Registers nothing global.
 */
export function startOtlpTracing(options: TracingOptions, log: LogFn): Tracing {
  const { exporter, close } = createExporter(options, log);
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ "service.name": options.serviceName }),
    sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(options.sampleRatio) }),
    // Model names and Coze log ids are the longest values: bound them anyway.
    spanLimits: { attributeCountLimit: 64, attributeValueLengthLimit: 256 },
    spanProcessors: [
      new BatchSpanProcessor({
        exporter,
        maxQueueSize: options.maxQueueSpans,
        maxExportBatchSize: Math.min(512, options.maxQueueSpans),
        scheduledDelayMillis: 1000,
        exportTimeoutMillis: options.exportTimeoutMs + 1000,
      }),
    ],
  });
  const tracer = provider.getTracer("coze-gateway");
  let stopping: Promise<void> | undefined;
  return {
    recording: true,
    begin(headers) {
      const parent = readTraceParent(headers.traceparent, headers.tracestate);
      const context =
        parent === undefined
          ? ROOT_CONTEXT
          : trace.setSpanContext(ROOT_CONTEXT, {
              traceId: parent.traceId,
              spanId: parent.parentId,
              traceFlags: parent.sampled ? 1 : 0,
              isRemote: true,
              traceState:
                parent.traceState === undefined ? undefined : new TraceState(parent.traceState),
            });
      return new OtlpTrace(tracer, tracer.startSpan("request", { kind: SpanKind.SERVER }, context));
    },
    enter: (t: CallTracer | undefined, name: string) =>
      t instanceof OtlpTrace ? t.enter(name) : undefined,
    end(t, line) {
      if (t instanceof OtlpTrace) t.end(line);
    },
    background(name, attributes): BackgroundTrace | undefined {
      const span = tracer.startSpan(name, { kind: SpanKind.INTERNAL, attributes }, ROOT_CONTEXT);
      // Not sampled: no span, and its Coze calls go without a traceparent.
      if (!span.isRecording()) return undefined;
      return {
        tracer: new OtlpTrace(tracer, span),
        end(failed) {
          if (failed) span.setStatus({ code: SpanStatusCode.ERROR });
          span.end();
        },
      };
    },
    shutdown() {
      stopping ??= (async () => {
        let timer: NodeJS.Timeout | undefined;
        const late = new Promise<void>((resolve) => {
          timer = setTimeout(resolve, options.exportTimeoutMs + 1000);
        });
        await Promise.race([provider.shutdown().catch(() => {}), late]);
        clearTimeout(timer);
        close();
      })();
      return stopping;
    },
  };
}
