import { StringDecoder } from "node:string_decoder";
import { CozeError, safeMessage } from "./errors.js";

/**
 * One event of a Coze event stream. Coze sends one `data:` line of JSON per event (coze-api.md
 * §4.5, §5.2), so `data` is that line's value, not parsed.
 */
export interface SseEvent {
  /** The `id:` in force when the data line came: `"0"`, `"1"`, … on workflow streams (§5.2). */
  id: string | undefined;
  /** The `event:` in force when the data line came, such as `conversation.message.delta`. */
  event: string | undefined;
  /** The value of the `data:` line (one leading space removed), or a bare JSON line. */
  data: string;
}

/** Options for {@link createSseDecoder}. */
export interface SseOptions {
  /** The upstream step, named in errors: `chat.stream`, `workflow.stream`, … */
  step: string;
  /**
   * Longest line accepted, in UTF-8 bytes without its line end. A longer line fails the stream
   * with a `protocol` error before more than about this much is buffered. Default 16 MiB.
   */
  maxLineBytes?: number;
}

const defaultMaxLineBytes = 16 * 1024 * 1024;
const LF = 0x0a;
const CR = 0x0d;
const COLON = 0x3a;
const SPACE = 0x20;
const OPEN_BRACE = 0x7b;
const BOM = 0xfeff;

/**
 * Decodes a Coze event stream from raw body chunks (bytes or already decoded text; both may be
 * mixed at character boundaries): one {@link SseEvent} per `data:` line, as soon as that line's
 * end has arrived. Synchronous, so a reader that pulls body chunks itself needs no async generator
 * between the body and the events (issue #6: every generator layer costs allocations on each
 * event, and nested ones keep garbage alive into the old space).
 */
export interface SseDecoder {
  /**
   * Decodes one body chunk and appends the events it completes to `out`.
   * @throws CozeError `protocol` on a bad or too long line; the events before it are in `out`.
   */
  push(chunk: Uint8Array | string, out: SseEvent[]): void;
  /** The end of the body: appends the event of an unterminated last line, if any. */
  end(out: SseEvent[]): void;
}

/**
 * Creates an {@link SseDecoder}. It accepts every framing Coze uses (coze-api.md §4.5, §5.2,
 * §5.3, §8): `field:value` with or without a space after the colon; lines ending in `\n`, `\r\n`
 * or `\r`; `event:` and `id:` before the data line, kept until replaced or until a blank line; no
 * blank line between events; a UTF-8 BOM at the start; an unterminated last line; comments and
 * `retry:` (ignored); and a bare JSON line such as a `{"code":4101,...}` body sent as an event
 * stream (§1.4, §10.1), given with no id and no event. Blank `event:` and `id:` values read as
 * `undefined`. A line that is none of these (unknown field, no colon) or is longer than
 * `maxLineBytes` fails with `CozeError("protocol")`, whose message never contains stream content.
 */
export function createSseDecoder(options: SseOptions): SseDecoder {
  const { step } = options;
  const maxLineBytes = options.maxLineBytes ?? defaultMaxLineBytes;
  // Node's native UTF-8 decoder: keeps characters split across chunks whole, and a BOM in the
  // text, so that byte and string chunks get the same handling below. (TextDecoder with
  // `stream: true` prepared its converter again on every chunk: issue #6 profile.) Made on the
  // first byte chunk that ends inside a character: a chunk that ends in ASCII, with nothing held
  // back, is decoded at once. `decoderUsed`: the decoder may hold bytes of a split character.
  let decoder: StringDecoder | undefined;
  let decoderUsed = false;
  let atStart = true;
  // A `\r` ended the previous chunk: a `\n` opening the next one belongs to the same line end.
  let skipLf = false;
  // The start of a line whose end has not arrived yet, in pieces: each piece is scanned once, so a
  // long line in many small chunks costs linear time, and its byte count guards memory.
  let pending: string[] = [];
  let pendingBytes = 0;
  let id: string | undefined;
  let event: string | undefined;

  const protocolError = (reason: string) =>
    new CozeError("protocol", safeMessage("protocol", step), { step, cause: new Error(reason) });

  // Guards memory (§8 asks for no unbounded buffering). UTF-8 needs 1 to 3 bytes per UTF-16 code
  // unit, so a line of at most a third of the limit in code units is counted without a pass.
  const checkLength = (text: string, usedBytes: number) => {
    const budget = maxLineBytes - usedBytes;
    if (text.length * 3 <= budget) return;
    if (text.length > budget || Buffer.byteLength(text, "utf8") > budget) {
      throw protocolError("event stream line too long");
    }
  };
  const appendPending = (piece: string) => {
    checkLength(piece, pendingBytes);
    pendingBytes += Buffer.byteLength(piece, "utf8");
    pending.push(piece);
  };

  // Returns the event the line `text[start, end)` dispatches, if any. No regex, and no string
  // made for the line or its field name: one charCodeAt, one indexOf, one slice for a value.
  const handleLine = (text: string, start: number, end: number): SseEvent | undefined => {
    if (start === end) {
      // A blank line ends the event (§5.2): forget its id and name.
      id = undefined;
      event = undefined;
      return undefined;
    }
    const first = text.charCodeAt(start);
    if (first === COLON) return undefined; // comment
    if (first === OPEN_BRACE) {
      return { id: undefined, event: undefined, data: text.slice(start, end) }; // §1.4
    }
    const colon = text.indexOf(":", start);
    if (colon === -1 || colon >= end) {
      throw protocolError("event stream line without a field name");
    }
    const valueStart =
      colon + 1 < end && text.charCodeAt(colon + 1) === SPACE ? colon + 2 : colon + 1;
    const field = colon - start;
    if (field === 4 && text.startsWith("data", start)) {
      // Dispatch now: Coze data is one line (§4.5), and go, java and js dispatch here too.
      return { id, event, data: text.slice(valueStart, end) };
    }
    if (field === 5 && text.startsWith("event", start)) {
      event = text.slice(valueStart, end).trim() || undefined;
      return undefined;
    }
    if (field === 2 && text.startsWith("id", start)) {
      id = text.slice(valueStart, end).trim() || undefined;
      return undefined;
    }
    if (field === 5 && text.startsWith("retry", start)) return undefined;
    throw protocolError("event stream line with an unknown field");
  };

  const push = (chunk: Uint8Array | string, out: SseEvent[]) => {
    let text: string;
    if (typeof chunk === "string") {
      // Flush bytes still held by the decoder (a complete stream never leaves any).
      text = decoderUsed && decoder ? decoder.end() + chunk : chunk;
      decoderUsed = false;
    } else if (!decoderUsed && (chunk.length === 0 || (chunk[chunk.length - 1] as number) < 0x80)) {
      // Nothing held back and the chunk ends in ASCII, so it ends on a character boundary:
      // decoded at once, the way the decoder would (the usual case; no decoder is made).
      text = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).toString("utf8");
    } else {
      decoder ??= new StringDecoder("utf8");
      text = decoder.write(chunk);
      // A chunk ending in ASCII leaves nothing held back; an empty one changes nothing.
      decoderUsed = chunk.length === 0 || (chunk[chunk.length - 1] as number) >= 0x80;
    }
    const n = text.length;
    if (n === 0) return;
    let pos = 0;
    if (atStart) {
      atStart = false;
      if (text.charCodeAt(0) === BOM) pos = 1;
    }
    if (skipLf) {
      skipLf = false;
      if (text.charCodeAt(pos) === LF) pos++;
    }
    // Positions of the next `\n` and `\r`, each rescanned only once passed, so a chunk full of
    // `\n` lines is not searched to its end for a `\r` on every line.
    let lf = text.indexOf("\n", pos);
    let cr = text.indexOf("\r", pos);
    while (pos < n) {
      if (lf !== -1 && lf < pos) lf = text.indexOf("\n", pos);
      if (cr !== -1 && cr < pos) cr = text.indexOf("\r", pos);
      const end = lf === -1 ? cr : cr === -1 ? lf : Math.min(lf, cr);
      if (end === -1) {
        appendPending(text.slice(pos));
        break;
      }
      let dispatched: SseEvent | undefined;
      if (pending.length > 0) {
        const rest = text.slice(pos, end);
        checkLength(rest, pendingBytes);
        pending.push(rest);
        const line = pending.join("");
        pending = [];
        pendingBytes = 0;
        dispatched = handleLine(line, 0, line.length);
      } else {
        // A third of the limit in code units needs no byte count (see checkLength).
        if ((end - pos) * 3 > maxLineBytes) checkLength(text.slice(pos, end), 0);
        dispatched = handleLine(text, pos, end);
      }
      if (text.charCodeAt(end) === CR) {
        if (end + 1 === n) skipLf = true;
        pos = text.charCodeAt(end + 1) === LF ? end + 2 : end + 1;
      } else {
        pos = end + 1;
      }
      if (dispatched !== undefined) out.push(dispatched);
    }
  };

  // EOF: the decoder may hold an incomplete character (it becomes U+FFFD), and an unterminated
  // last line is still a line (lenient, like js, §4.5; the recorded py fixtures end this way).
  const end = (out: SseEvent[]) => {
    const tail = decoderUsed && decoder ? decoder.end() : "";
    if (tail.length > 0) {
      appendPending(atStart && tail.charCodeAt(0) === BOM ? tail.slice(1) : tail);
    }
    if (pending.length > 0) {
      const line = pending.join("");
      pending = [];
      const dispatched = handleLine(line, 0, line.length);
      if (dispatched !== undefined) out.push(dispatched);
    }
  };
  return { push, end };
}
