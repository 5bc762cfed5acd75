import { Counter, Histogram, Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { hotCounter, hotHistogram } from "./hot-metrics.js";

const buckets = [0.001, 0.01, 0.1, 1];
const observations: [string, string, number][] = [
  ["POST /v1/chat/completions", "200", 0.0005],
  ["POST /v1/chat/completions", "200", 0.004],
  ["POST /v1/chat/completions", "200", 0.004],
  ["POST /v1/chat/completions", "429", 0.02],
  ["cozegateway.v1.ChatService/Chat", "ok", 0.1],
  ["cozegateway.v1.ChatService/Chat", "ok", 7.5],
  // Back to an earlier label set, and sets that differ from the last one in one label only.
  ["POST /v1/chat/completions", "200", 0.05],
  ["POST /v1/chat/completions", "ok", 0.2],
  ["cozegateway.v1.ChatService/Chat", "ok", 0.003],
];

describe("hot metrics", () => {
  it("expose exactly what prom-client's Counter and Histogram expose for the same updates, a histogram's counter too", async () => {
    const reference = new Registry();
    const counter = new Counter({
      name: "t_requests_total",
      help: "requests",
      labelNames: ["method", "code"],
      registers: [reference],
    });
    const histogram = new Histogram({
      name: "t_seconds",
      help: "latency",
      labelNames: ["method", "code"],
      buckets,
      registers: [reference],
    });
    const ours = new Registry();
    const hotH = hotHistogram(ours, {
      name: "t_seconds",
      help: "latency",
      labelNames: ["method", "code"],
      buckets,
      counter: { name: "t_requests_total", help: "requests" },
    });
    const hotC = hotCounter(ours, {
      name: "t_calls_total",
      help: "calls",
      labelNames: ["method", "code"],
    });
    const calls = new Counter({
      name: "t_calls_total",
      help: "calls",
      labelNames: ["method", "code"],
      registers: [reference],
    });
    for (const [method, code, seconds] of observations) {
      counter.inc({ method, code });
      histogram.observe({ method, code }, seconds);
      calls.inc({ method, code }, 2);
      hotC.series(method, code).inc(2);
      hotH.series(method, code).observe(seconds);
    }
    const text = await ours.metrics();
    expect(text).toBe(await reference.metrics());
    expect(text).toContain(
      't_seconds_bucket{le="0.1",method="POST /v1/chat/completions",code="200"} 4',
    );
    expect(text).toContain(
      't_seconds_bucket{le="+Inf",method="cozegateway.v1.ChatService/Chat",code="ok"} 3',
    );
  });

  it("refuses a value that is not a finite number and a wrong number of labels", () => {
    const h = hotHistogram(new Registry(), { name: "h", help: "h", labelNames: ["a"], buckets });
    expect(() => h.series("x").observe(Number.NaN)).toThrow(TypeError);
    expect(() => h.series("x", "y")).toThrow(TypeError);
  });
});
