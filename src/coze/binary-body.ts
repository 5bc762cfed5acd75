import type { Dispatcher } from "undici";
import type { Clock } from "./clock.js";
import { headerValue, readEnvelope } from "./envelope.js";
import { CozeError, fromTransportError, safeMessage } from "./errors.js";

/** A successful answer whose body is a file (speech audio), not a JSON envelope. */
export interface BinaryResponse {
  /** The whole body. */
  body: Buffer;
  /** Its `Content-Type`, `application/octet-stream` when Coze names none. */
  contentType: string;
  status: number;
  logId: string | undefined;
}

/**
 * Reads an answer that is a file on success and a JSON envelope on failure (coze-api.md §15.1:
 * speech). A JSON answer, or any answer with a status of 300 and above, is read as an envelope
 * and its error thrown; a JSON answer that says success is `protocol` (no audio came). Any other
 * 2xx answer is the file, as go reads it (py wants `audio` in the type; Coze's type is not
 * documented), read whole up to `maxBytes`.
 *
 * @throws CozeError as above; `protocol` when the file is over `maxBytes` (the body is
 *   destroyed); a body that fails to arrive as `fromTransportError` says.
 */
export async function readBinary(
  step: string,
  res: Dispatcher.ResponseData,
  maxBytes: number,
  signal: AbortSignal,
  clock: Clock,
): Promise<BinaryResponse> {
  const contentType = headerValue(res.headers, "content-type") ?? "application/octet-stream";
  const logId = headerValue(res.headers, "x-tt-logid");
  if (contentType.includes("json") || res.statusCode >= 300) {
    const answer = await readEnvelope(step, res, maxBytes, signal, clock);
    throw new CozeError("protocol", `${step}: Coze answered JSON instead of a file`, {
      step,
      status: answer.status,
      logId: answer.logId,
    });
  }
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of res.body) {
      const buf = chunk as Buffer;
      size += buf.length;
      if (size > maxBytes) {
        res.body.destroy();
        throw new CozeError("protocol", `${step}: response body too large`, { step, logId });
      }
      chunks.push(buf);
    }
  } catch (err) {
    throw fromTransportError(step, err, signal);
  }
  if (size === 0) {
    throw new CozeError("protocol", safeMessage("protocol", step), { step, logId });
  }
  return { body: Buffer.concat(chunks, size), contentType, status: res.statusCode, logId };
}
