import { createServer, request } from "node:http";
import type { AddressInfo } from "node:net";

/** A relay in front of the emulator that reads the usage in every answer it passes on. */
export interface UsageTap {
  /** Base URL to give the gateway's channel instead of the emulator's. */
  readonly url: string;
  /**
   * The usage the emulator reported, summed over the chats and runs it reported it for: the
   * last usage seen for each chat id, execute id or end-node execution id (a chat's events and
   * an async run's polls repeat theirs).
   */
  totals(): { prompt: number; completion: number; reports: number };
  close(): Promise<void>;
}

interface Usage {
  input_count?: number;
  output_count?: number;
}

/**
 * Starts a relay on 127.0.0.1 that forwards every request to `target` unchanged (streams as they
 * come) and reads each answer's JSON or SSE `data:` payloads for objects with a `usage` and an id
 * (`id` of a chat, `execute_id` of a run, `node_execute_uuid` of a streamed run's end node).
 */
export async function startUsageTap(target: string): Promise<UsageTap> {
  const upstream = new URL(target);
  const byId = new Map<string, Usage>();
  const record = (value: unknown): void => {
    if (Array.isArray(value)) {
      for (const v of value) record(v);
      return;
    }
    if (typeof value !== "object" || value === null) return;
    const o = value as Record<string, unknown>;
    const id = o.execute_id ?? o.node_execute_uuid ?? o.id;
    if (typeof o.usage === "object" && o.usage !== null && typeof id === "string") {
      byId.set(id, o.usage as Usage);
    }
    for (const v of Object.values(o)) if (typeof v === "object") record(v);
  };
  const read = (text: string, contentType: string) => {
    const payloads = contentType.includes("text/event-stream")
      ? text
          .split("\n")
          .filter((l) => l.startsWith("data:"))
          .map((l) => l.slice(5).trim())
      : [text];
    for (const p of payloads) {
      try {
        record(JSON.parse(p));
      } catch {
        // Not JSON (an empty body, a heartbeat): nothing reported.
      }
    }
  };
  const server = createServer((req, res) => {
    const out = request(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, host: upstream.host },
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        let text = "";
        answer.on("data", (chunk: Buffer) => {
          text += chunk.toString("utf8");
          res.write(chunk);
        });
        answer.on("end", () => {
          read(text, String(answer.headers["content-type"] ?? ""));
          res.end();
        });
        answer.on("error", () => res.destroy());
      },
    );
    out.on("error", () => res.destroy());
    res.on("close", () => {
      if (!res.writableFinished) out.destroy();
    });
    req.pipe(out);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    totals() {
      let prompt = 0;
      let completion = 0;
      for (const u of byId.values()) {
        prompt += u.input_count ?? 0;
        completion += u.output_count ?? 0;
      }
      return { prompt, completion, reports: byId.size };
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
