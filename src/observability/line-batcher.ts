/** Where a {@link LineBatcher} writes its batches: pino's sonic-boom destination, or any stream. */
export interface LineSink {
  write(text: string): unknown;
  /** Writes out what the sink holds, synchronously (sonic-boom has it). */
  flushSync?(): void;
}

/** Options of {@link LineBatcher}. */
export interface LineBatcherOptions {
  /** A batch is written once it holds this many UTF-16 code units. */
  maxChars: number;
  /** A line waits at most this long before its batch is written, in ms. */
  maxDelayMs: number;
}

/**
 * Gathers log lines into batches before they reach the sink: one `write` per batch instead of one
 * per line, in order. In front of sonic-boom because its `write` measures the UTF-8 length of its
 * whole pending buffer on every call, flattening it: quadratic in the lines of a batch, and paid in
 * allocation by every request (issue #6). A batch is written when it is full or `maxDelayMs`
 * after its first line, whichever is first, and at once by {@link flushSync}. Its timer does not
 * keep the process alive.
 */
export class LineBatcher {
  readonly #sink: LineSink;
  readonly #maxChars: number;
  readonly #maxDelayMs: number;
  #lines: string[] = [];
  #chars = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(sink: LineSink, options: LineBatcherOptions) {
    this.#sink = sink;
    this.#maxChars = options.maxChars;
    this.#maxDelayMs = options.maxDelayMs;
  }

  /** Adds one or more whole lines (pino writes one at a time). Always `true`: never backpressure. */
  write(line: string): boolean {
    this.#lines.push(line);
    this.#chars += line.length;
    if (this.#chars >= this.#maxChars) this.#writeBatch();
    else if (this.#timer === undefined) {
      this.#timer = setTimeout(() => this.#writeBatch(), this.#maxDelayMs);
      this.#timer.unref();
    }
    return true;
  }

  /** Writes the pending batch, then has the sink write out what it holds, synchronously. */
  flushSync(): void {
    this.#writeBatch();
    this.#sink.flushSync?.();
  }

  #writeBatch(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (this.#lines.length === 0) return;
    const text = this.#lines.length === 1 ? (this.#lines[0] as string) : this.#lines.join("");
    this.#lines = [];
    this.#chars = 0;
    this.#sink.write(text);
  }
}
