import { type AppJwtClaims, signAppJwt } from "./client-jwt.js";
import type { Emulator, GeneratedApp } from "./types.js";

/**
 * Test support for code that talks to the emulator. Not re-exported from `index.ts`; import it
 * from `emulator/testing.js`.
 */

/**
 * Buys an access token from `emulator` for `app` the way the Go/Python SDKs do (`aud` = the
 * emulator host with port). Throws with the token endpoint's body when it refuses.
 */
export async function mintToken(
  emulator: Emulator,
  app: GeneratedApp,
  options: { claims?: Partial<AppJwtClaims>; body?: Record<string, unknown> } = {},
): Promise<string> {
  const jwt = await signAppJwt(app, { aud: emulator.host, ...options.claims });
  const res = await fetch(`${emulator.url}/api/permission/oauth2/token`, {
    method: "POST",
    headers: { authorization: `Bearer ${jwt}`, "content-type": "application/json" },
    body: JSON.stringify({
      grant_type: "urn:ietf:params:oauth:grant-type:jwt-bearer",
      ...options.body,
    }),
  });
  const body = (await res.json()) as { access_token?: string };
  if (!res.ok || !body.access_token) throw new Error(`token refused: ${JSON.stringify(body)}`);
  return body.access_token;
}

/** One SSE event as written by the emulator. */
export interface SseFrame {
  id?: string;
  event: string;
  data: string;
}

/**
 * Splits an SSE body into frames. Strict: every frame is `[id:]` + `event:` + `data:` lines
 * followed by a blank line; anything else throws, so framing mistakes fail tests.
 */
export function parseSseFrames(text: string): SseFrame[] {
  if (text === "") return [];
  if (!text.endsWith("\n\n")) throw new Error("SSE body does not end with a blank line");
  return text
    .slice(0, -2)
    .split("\n\n")
    .map((block) => {
      const lines = block.split("\n");
      const field = (line: string | undefined, name: string) => {
        const match = new RegExp(`^${name}: ?(.*)$`).exec(line ?? "");
        if (!match) throw new Error(`expected ${name}: line, got ${JSON.stringify(line)}`);
        return match[1] as string;
      };
      if (lines.length === 3) {
        return {
          id: field(lines[0], "id"),
          event: field(lines[1], "event"),
          data: field(lines[2], "data"),
        };
      }
      if (lines.length !== 2) throw new Error(`unexpected SSE block ${JSON.stringify(block)}`);
      return { event: field(lines[0], "event"), data: field(lines[1], "data") };
    });
}

/** A finished HTTP exchange with the emulator. */
export interface ApiReply {
  status: number;
  headers: Headers;
  text: string;
  /** The body parsed as JSON (throws when it is not). */
  json<T = Record<string, unknown>>(): T;
}

/**
 * Calls an emulator endpoint with `token` as bearer (none when `undefined`) and reads the whole
 * body. `body` is sent as JSON.
 */
export async function callApi(
  emulator: Emulator,
  token: string | undefined,
  method: "GET" | "POST",
  path: string,
  body?: unknown,
): Promise<ApiReply> {
  const headers: Record<string, string> = {};
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const init: RequestInit = { method, headers };
  if (body !== undefined) init.body = JSON.stringify(body);
  const res = await fetch(`${emulator.url}${path}`, init);
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, json: <T>() => JSON.parse(text) as T };
}
