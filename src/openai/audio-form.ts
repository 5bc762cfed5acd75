import { Busboy } from "@fastify/busboy";
import type { NodeRequest } from "./node-types.js";
import { badRequest, OpenAiError } from "./openai-error.js";

/** A transcription upload as read: its one file and its text fields. */
export interface AudioForm {
  /** The `file` part; `undefined` when the form has none. */
  file: { data: Buffer; fileName: string; mimeType: string } | undefined;
  /** Each text field's values, in order (`timestamp_granularities[]` may repeat). */
  fields: Map<string, string[]>;
}

/** What {@link readAudioForm} accepts. */
export interface AudioFormLimits {
  /** The whole body, in bytes, however it is sent (declared length or chunked): else 413. */
  bodyBytes: number;
  /** The file, in bytes: else 400 naming `file`. */
  fileBytes: number;
}

// Beyond OpenAI's few fields a form has no business being large.
const fieldLimits = { fields: 16, fieldSize: 64 * 1024, fieldNameSize: 64, headerPairs: 16 };

/**
 * Reads a `multipart/form-data` transcription upload with a streaming parser, keeping at most
 * `fileBytes` of the one `file` part and 64 KiB per text field; nothing else is kept, and the
 * body is read only while it stays within `bodyBytes`. A body dripped slowly is read as it
 * comes (the server's request timeout bounds how long).
 *
 * @throws OpenAiError 400 naming what is wrong: a Content-Type that is not multipart with a
 *   boundary, a malformed body, a file part not named `file`, a second file, a file over
 *   `fileBytes`, too many or too long fields; 413 for a body over `bodyBytes`. Every such
 *   error that leaves the body unread carries `connection: close` on HTTP/1.1, so the rest is
 *   never read. When the client goes away: an `Error`, nothing to answer.
 */
export function readAudioForm(req: NodeRequest, limits: AudioFormLimits): Promise<AudioForm> {
  const type = req.headers["content-type"] ?? "";
  if (!/^multipart\/form-data\s*;.*boundary=/i.test(type)) {
    return Promise.reject(
      refuse(
        req,
        badRequest(
          null,
          `Content-Type must be multipart/form-data with a boundary (a form with a file part named 'file'); got ${JSON.stringify(type.split(";")[0]?.slice(0, 64) ?? "")}`,
          "invalid_content_type",
        ),
      ),
    );
  }
  return new Promise<AudioForm>((resolve, reject) => {
    const form: AudioForm = { file: undefined, fields: new Map() };
    const bb = Busboy({
      headers: { ...req.headers, "content-type": type },
      limits: { ...fieldLimits, files: 2, fileSize: limits.fileBytes, parts: 18 },
      // The `file` part is the file whatever its headers say (a part without a file name would
      // otherwise be read as a text field).
      isPartAFile: (name, _type, fileName) => name === "file" || fileName !== undefined,
    });
    let size = 0;
    let ended = false;
    // Set at the part's start: its end comes later, maybe after the next part began.
    let sawFile = false;
    let settled = false;
    const settle = (err: unknown) => {
      if (settled) return;
      settled = true;
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("close", onClose);
      req.off("error", onClose);
      bb.removeAllListeners();
      bb.on("error", () => {});
      if (err === undefined) resolve(form);
      else {
        bb.destroy();
        reject(err instanceof OpenAiError ? refuse(req, err) : err);
      }
    };
    function onData(chunk: Buffer) {
      size += chunk.length;
      if (size > limits.bodyBytes) {
        settle(
          new OpenAiError(413, {
            message: `request body larger than ${limits.bodyBytes} bytes`,
            type: "invalid_request_error",
            code: "request_too_large",
            param: null,
          }),
        );
        return;
      }
      if (!bb.write(chunk)) req.pause();
    }
    const onEnd = () => {
      ended = true;
      bb.end();
    };
    // A request closes after its end too; only a close before the end is a client gone.
    const onClose = () => {
      if (!ended) settle(new Error("the client went away before its upload ended"));
    };
    bb.on("drain", () => req.resume());
    bb.on("file", (name, stream, fileName, _encoding, mimeType) => {
      if (name !== "file") {
        stream.resume();
        settle(
          badRequest(
            name,
            `unexpected file part '${name.slice(0, 64)}'; send the audio as 'file'`,
            "invalid_value",
          ),
        );
        return;
      }
      if (sawFile) {
        stream.resume();
        settle(badRequest("file", "only one file can be transcribed at a time", "invalid_value"));
        return;
      }
      sawFile = true;
      const chunks: Buffer[] = [];
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("limit", () =>
        settle(
          badRequest(
            "file",
            `Invalid 'file': larger than ${limits.fileBytes} bytes, the most Coze transcribes.`,
            "file_too_large",
          ),
        ),
      );
      stream.on("end", () => {
        form.file = { data: Buffer.concat(chunks), fileName: fileName ?? "", mimeType };
      });
    });
    bb.on("field", (name, value, nameTruncated, valueTruncated) => {
      if (nameTruncated || valueTruncated) {
        settle(
          badRequest(
            name.slice(0, 64),
            `form field '${name.slice(0, 64)}' is too long`,
            "invalid_value",
          ),
        );
        return;
      }
      form.fields.set(name, [...(form.fields.get(name) ?? []), value]);
    });
    const tooMany = () => settle(badRequest(null, "the form has too many parts", "invalid_value"));
    bb.on("partsLimit", tooMany);
    bb.on("fieldsLimit", tooMany);
    bb.on("filesLimit", tooMany);
    bb.on("error", () =>
      settle(badRequest(null, "the multipart/form-data body is malformed", "invalid_multipart")),
    );
    bb.on("finish", () => settle(undefined));
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("close", onClose);
    req.on("error", onClose);
  });
}

/**
 * `err` answered without reading the rest of the body: on HTTP/1.1 the connection closes
 * afterwards (draining an upload that may be endless would hold the connection), as the
 * server does for its own early refusals.
 */
function refuse(req: NodeRequest, err: OpenAiError): OpenAiError {
  if (req.httpVersionMajor !== 1 || req.readableEnded) return err;
  req.resume();
  return new OpenAiError(err.status, err.body, { ...err.headers, connection: "close" });
}
