import type { TracingConfig } from "../../src/config/index.js";
import { type Demo, startDemo } from "../../src/demo.js";
import type { RecordedRequest } from "../../src/emulator/index.js";
import { type Gateway, startGateway } from "../../src/gateway.js";
import { createObservability } from "../../src/observability/index.js";
import { captureLog, type LogCapture } from "./log-capture.js";

/** A demo gateway in this process whose log lines the test reads, with or without tracing. */
export interface TracedGateway {
  demo: Demo;
  gateway: Gateway;
  url: string;
  key: string;
  logs: LogCapture;
  /** The request line of `requestId` once written (waits up to 5 s). */
  requestLine(requestId: string): Promise<Record<string, unknown>>;
  /** The emulator's record of the Coze calls a request line names by log id. */
  cozeCalls(line: Record<string, unknown>): RecordedRequest[];
  close(): Promise<void>;
}

/** The settings of `tracing` a test does not care about, at their defaults. */
export function tracingConfig(
  otlpEndpoint: string,
  overrides: Partial<TracingConfig> = {},
): TracingConfig {
  return {
    otlpEndpoint,
    protocol: "http/protobuf",
    headers: {},
    serviceName: "coze-gateway",
    sampleRatio: 1,
    maxQueueSpans: 2048,
    exportTimeoutMs: 10_000,
    ...overrides,
  };
}

/** Starts the emulator and a demo gateway (polling every 10 ms) with `tracing`, if given. */
export async function startTracedGateway(tracing?: TracingConfig): Promise<TracedGateway> {
  const demo = await startDemo({ port: 0, deltaMs: 0, pollIntervalMs: 10 });
  demo.config.tracing = tracing;
  const logs = captureLog();
  let gateway: Gateway;
  try {
    gateway = await startGateway({
      config: demo.config,
      observability: createObservability({ destination: logs.out, metricsRoute: false }),
    });
  } catch (err) {
    await demo.close();
    throw err;
  }
  return {
    demo,
    gateway,
    url: gateway.url,
    key: demo.apiKey,
    logs,
    async requestLine(requestId) {
      for (let waited = 0; waited <= 5_000; waited += 10) {
        const line = logs.lines().find((l) => l.msg === "request" && l.requestId === requestId);
        if (line !== undefined) return line;
        await new Promise((r) => setTimeout(r, 10));
      }
      throw new Error(`no request line for ${requestId}`);
    },
    cozeCalls(line) {
      const ids = (line.cozeLogIds as string[] | undefined) ?? [];
      return demo.emulator.requests().filter((r) => ids.includes(r.logid));
    },
    async close() {
      await gateway.close();
      await demo.close();
    },
  };
}
