import { createServer } from "node:net";
import { afterEach, describe, expect, it, vi } from "vitest";

const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

afterEach(() => {
  vi.doUnmock("./tracing-otlp.js");
  vi.resetModules();
});

describe("tracing off", () => {
  it("never loads the OpenTelemetry SDK", async () => {
    const loaded = vi.fn();
    vi.doMock("./tracing-otlp.js", () => {
      loaded();
      return { startOtlpTracing: () => ({}) };
    });
    const { createTracing, forwardingTracing } = await import("./tracing.js");
    expect(await createTracing(undefined, () => {})).toBe(forwardingTracing);
    expect(loaded).not.toHaveBeenCalled();
  });

  it("passes a caller's trace context on unchanged, one header for every call", async () => {
    const { forwardingTracing } = await import("./tracing.js");
    expect(forwardingTracing.recording).toBe(false);
    expect(forwardingTracing.begin({})).toBeUndefined();
    expect(forwardingTracing.begin({ traceparent: "garbage" })).toBeUndefined();
    const trace = forwardingTracing.begin({ traceparent, tracestate: "rojo=1" });
    expect(trace?.traceId).toBe("4bf92f3577b34da6a3ce929d0e0e4736");
    const first = trace?.call("chat.create", "POST");
    expect(first).toEqual({ traceparent, tracestate: "rojo=1" });
    // No span objects: every call of the request shares the one header pair.
    expect(trace?.call("chat.retrieve", "GET")).toBe(first);
    expect(forwardingTracing.enter(trace, "rpc x")).toBeUndefined();
  });

  it("writes a later version's header as version 00 with only the sampled flag", async () => {
    const { forwardingTracing } = await import("./tracing.js");
    const trace = forwardingTracing.begin({
      traceparent: "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03-future",
    });
    expect(trace?.call("chat.create", "POST").traceparent).toBe(traceparent);
  });
});

describe("tracing on", () => {
  it("loads the SDK, and stops within the export timeout when the collector is unreachable", async () => {
    const { createTracing } = await import("./tracing.js");
    // A port nothing listens on any more: every export is refused.
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
    const { port } = probe.address() as { port: number };
    await new Promise((resolve) => probe.close(resolve));
    const endpoint = `http://127.0.0.1:${port}/v1/traces`;
    const log = vi.fn();
    const tracing = await createTracing(
      {
        otlpEndpoint: endpoint,
        protocol: "http/protobuf",
        headers: {},
        serviceName: "test",
        sampleRatio: 1,
        maxQueueSpans: 16,
        exportTimeoutMs: 1000,
      },
      log,
    );
    expect(tracing.recording).toBe(true);
    const trace = tracing.begin({});
    expect(trace?.traceId).toMatch(/^[0-9a-f]{32}$/);
    const call = trace?.call("chat.create", "POST");
    expect(call?.traceparent).toMatch(new RegExp(`^00-${trace?.traceId}-[0-9a-f]{16}-01$`));
    call?.end?.({
      step: "chat.create",
      status: 200,
      durationMs: 1,
      outcome: "ok",
      logId: "l",
      retriedAuth: false,
      retries: 0,
    });
    const started = performance.now();
    await tracing.shutdown();
    expect(performance.now() - started).toBeLessThan(3000);
    expect(log.mock.calls).toEqual([
      [
        "warn",
        "tracing: span export failed; spans are dropped until it works again",
        { endpoint, error: "ECONNREFUSED" },
      ],
    ]);
  });
});
