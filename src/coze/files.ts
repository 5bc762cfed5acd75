import { FormData } from "undici";
import { CozeError, safeMessage } from "./errors.js";
import type { CallTrace, CozeHttp } from "./http.js";
import { id, num, obj, str } from "./wire.js";

/** A file stored in Coze, referenced by id in `object_string` messages and workflow inputs. */
export interface CozeFile {
  id: string;
  bytes: number;
  fileName: string;
  createdAt: number | undefined;
}

/** A file to upload. */
export interface UploadRequest {
  data: Uint8Array | Blob;
  fileName: string;
  /** MIME type, e.g. `image/png`. */
  contentType?: string;
  signal?: AbortSignal;
  /** Collects the Coze log ids of the calls made for this request. */
  trace?: CallTrace;
}

/** The Coze file API (`POST /v1/files/upload`, multipart field `file`). */
export interface FilesApi {
  upload(req: UploadRequest): Promise<CozeFile>;
}

/** Creates the file API on top of the HTTP layer. */
export function createFilesApi(http: CozeHttp): FilesApi {
  return {
    async upload(req) {
      const form = new FormData();
      const blob =
        req.data instanceof Blob
          ? req.data
          : new Blob([req.data], { type: req.contentType ?? "application/octet-stream" });
      form.append("file", blob, req.fileName);
      const res = await http.json({
        step: "files.upload",
        method: "POST",
        path: "/v1/files/upload",
        form,
        signal: req.signal,
        trace: req.trace,
      });
      const data = obj(res.body.data);
      const fileId = id(data?.id);
      if (!data || fileId === undefined) {
        throw new CozeError("protocol", safeMessage("protocol", "files.upload"), {
          step: "files.upload",
          logId: res.logId,
        });
      }
      return {
        id: fileId,
        bytes: num(data.bytes) ?? 0,
        fileName: str(data.file_name) ?? req.fileName,
        createdAt: num(data.created_at),
      };
    },
  };
}
