import type { IncomingHttpHeaders } from "node:http";
import type { EndpointName, RecordedRequest } from "./types.js";

/** Keeps the latest API calls the emulator received, for `emulator.requests()`. */
export interface RequestRecorder {
  record(
    endpoint: EndpointName,
    method: string,
    path: string,
    logid: string,
    headers: IncomingHttpHeaders,
  ): void;
  /** The kept calls, oldest first. */
  list(): RecordedRequest[];
  clear(): void;
}

/** Headers never kept: the caller's credentials. */
const secretHeaders = new Set(["authorization", "cookie", "proxy-authorization"]);

/** Creates a recorder that keeps the latest `max` calls (default 1000). */
export function createRequestRecorder(max = 1000): RequestRecorder {
  let kept: RecordedRequest[] = [];
  return {
    record(endpoint, method, path, logid, headers) {
      const copy: Record<string, string> = {};
      for (const [name, value] of Object.entries(headers)) {
        if (value === undefined || secretHeaders.has(name)) continue;
        copy[name] = Array.isArray(value) ? value.join(", ") : value;
      }
      kept.push({ endpoint, method, path, logid, headers: copy });
      if (kept.length > max) kept = kept.slice(kept.length - max);
    },
    list: () => [...kept],
    clear() {
      kept = [];
    },
  };
}
