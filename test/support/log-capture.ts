import { PassThrough } from "node:stream";

/** A destination for a logger under test, and what was written into it. */
export interface LogCapture {
  out: PassThrough;
  /** Everything written so far. */
  text(): string;
  /** The JSON lines written so far, parsed. */
  lines(): Record<string, unknown>[];
}

/** Creates a {@link LogCapture}. Writes arrive asynchronously: await a turn before reading. */
export function captureLog(): LogCapture {
  const out = new PassThrough();
  let text = "";
  out.on("data", (chunk: Buffer) => {
    text += chunk.toString();
  });
  return {
    out,
    text: () => text,
    lines: () =>
      text
        .split("\n")
        .filter(Boolean)
        .map((line) => JSON.parse(line) as Record<string, unknown>),
  };
}
