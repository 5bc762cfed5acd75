import type { IncomingMessage, ServerResponse } from "node:http";
import type { Emulator } from "./types.js";

/** Path prefix of the admin surface; never part of the Coze API. */
export const ADMIN_PREFIX = "/__emulator/";

/**
 * The admin HTTP surface for other processes (bench, demo): `POST /__emulator/faults` (body =
 * a Fault), `DELETE /__emulator/faults`, `GET /__emulator/stats`, `POST /__emulator/revoke`,
 * `POST /__emulator/reset`. Answers JSON; a malformed fault is a 400 `{error}`. No auth: the
 * emulator listens on loopback only by default.
 */
export async function handleAdmin(
  emulator: Pick<Emulator, "faults" | "stats" | "revokeAllTokens" | "reset">,
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
): Promise<void> {
  const route = `${req.method} ${path.slice(ADMIN_PREFIX.length)}`;
  switch (route) {
    case "POST faults": {
      let fault: unknown;
      try {
        const chunks: Buffer[] = [];
        for await (const c of req) chunks.push(c as Buffer);
        fault = JSON.parse(Buffer.concat(chunks).toString("utf8"));
        emulator.faults.inject(fault as never);
      } catch (error) {
        reply(res, 400, { error: error instanceof Error ? error.message : "bad fault" });
        return;
      }
      reply(res, 200, { ok: true });
      return;
    }
    case "DELETE faults":
      emulator.faults.clear();
      reply(res, 200, { ok: true });
      return;
    case "GET stats":
      reply(res, 200, emulator.stats());
      return;
    case "POST revoke":
      emulator.revokeAllTokens();
      reply(res, 200, { ok: true });
      return;
    case "POST reset":
      emulator.reset();
      reply(res, 200, { ok: true });
      return;
    default:
      reply(res, 404, { error: `no admin route ${route}` });
  }
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "Content-Type": "application/json",
    "Content-Length": String(Buffer.byteLength(text)),
  });
  res.end(text);
}
