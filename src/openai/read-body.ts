import type { NodeRequest } from "./node-types.js";

/**
 * Reads a request body as UTF-8 text, at most `limitBytes` of it, whether or not the request
 * declared a `Content-Length` (issue #4 decision 6: the server only checks a declared length).
 *
 * @returns the text, or `undefined` when the body is larger than the limit: the rest is then
 *   read and discarded, not kept, and the caller should answer 413 and close the connection.
 * @throws when the client aborts the upload or the stream fails.
 */
export function readBody(req: NodeRequest, limitBytes: number): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = () => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
      req.off("close", onClose);
    };
    function onData(chunk: Buffer) {
      size += chunk.length;
      if (size > limitBytes) {
        cleanup();
        // Keep the connection flowing so the 413 can be written; nothing more is stored.
        req.resume();
        resolve(undefined);
        return;
      }
      chunks.push(chunk);
    }
    function onEnd() {
      cleanup();
      const body = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size);
      resolve(body.toString("utf8"));
    }
    function onError(err: Error) {
      cleanup();
      reject(err);
    }
    function onClose() {
      cleanup();
      reject(new Error("the request was aborted before its body was read"));
    }
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
    req.on("close", onClose);
  });
}
