import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { LineBatcher } from "./line-batcher.js";

/** A sink that records each write and each flushSync. */
function recordingSink() {
  const calls: string[] = [];
  return {
    calls,
    write(text: string) {
      calls.push(text);
    },
    flushSync() {
      calls.push("<flushSync>");
    },
  };
}

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe("LineBatcher", () => {
  it("writes a full batch at once, in order, as one write", () => {
    const sink = recordingSink();
    const batcher = new LineBatcher(sink, { maxChars: 30, maxDelayMs: 200 });
    for (let i = 0; i < 7; i++) batcher.write(`line ${i}\n`);
    // 7 chars a line: the 5th line reaches 35 ≥ 30.
    expect(sink.calls).toEqual(["line 0\nline 1\nline 2\nline 3\nline 4\n"]);
    vi.advanceTimersByTime(199);
    expect(sink.calls).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(sink.calls).toEqual(["line 0\nline 1\nline 2\nline 3\nline 4\n", "line 5\nline 6\n"]);
  });

  it("writes a lone line within maxDelayMs of its arrival, and nothing when idle", () => {
    const sink = recordingSink();
    const batcher = new LineBatcher(sink, { maxChars: 1024, maxDelayMs: 200 });
    batcher.write("first\n");
    vi.advanceTimersByTime(150);
    batcher.write("second\n");
    vi.advanceTimersByTime(50);
    // The delay counts from the batch's first line, not its last.
    expect(sink.calls).toEqual(["first\nsecond\n"]);
    vi.advanceTimersByTime(10_000);
    expect(sink.calls).toHaveLength(1);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("flushSync writes what is pending, then flushes the sink", () => {
    const sink = recordingSink();
    const batcher = new LineBatcher(sink, { maxChars: 1024, maxDelayMs: 200 });
    batcher.write("a\n");
    batcher.write("b\n");
    batcher.flushSync();
    expect(sink.calls).toEqual(["a\nb\n", "<flushSync>"]);
    expect(vi.getTimerCount()).toBe(0);
    batcher.flushSync();
    expect(sink.calls).toEqual(["a\nb\n", "<flushSync>", "<flushSync>"]);
  });

  it("makes one sink write per batch for a stream of request lines", () => {
    const sink = recordingSink();
    const batcher = new LineBatcher(sink, { maxChars: 16 * 1024, maxDelayMs: 200 });
    const line = `${JSON.stringify({ level: "info", msg: "request", pad: "x".repeat(150) })}\n`;
    for (let i = 0; i < 1000; i++) batcher.write(line);
    batcher.flushSync();
    const writes = sink.calls.filter((c) => c !== "<flushSync>");
    expect(writes.join("")).toBe(line.repeat(1000));
    const linesPerBatch = Math.ceil((16 * 1024) / line.length);
    expect(writes).toHaveLength(Math.ceil(1000 / linesPerBatch));
  });
});
