import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { signAppJwt } from "./client-jwt.js";
import { generateApp, startEmulator } from "./index.js";
import type { Emulator, GeneratedApp } from "./types.js";

const GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer";

let emulator: Emulator;
let app: GeneratedApp;
let stranger: GeneratedApp;

beforeAll(async () => {
  emulator = await startEmulator({ audiences: ["api.coze.cn"] });
  app = await emulator.createApp({
    clientId: "1127900106117",
    accountIds: ["123456"],
    enterpriseIds: ["volcano_1"],
  });
  stranger = await generateApp(); // never registered
});
afterAll(() => emulator.close());

async function exchange(
  jwt: string | undefined,
  body: unknown = { grant_type: GRANT },
  path = "/api/permission/oauth2/token",
) {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (jwt !== undefined) headers.authorization = `Bearer ${jwt}`;
  const res = await request(`${emulator.url}${path}`, {
    method: "POST",
    headers,
    body: JSON.stringify(body),
  });
  return {
    status: res.statusCode,
    headers: res.headers,
    body: (await res.body.json()) as Record<string, unknown>,
  };
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

describe("token endpoint", () => {
  it("exchanges a valid JWT for a czs_ token whose expires_in is an absolute timestamp", async () => {
    const before = nowSeconds();
    const res = await exchange(await signAppJwt(app, { aud: emulator.host }), {
      grant_type: GRANT,
      duration_seconds: 3600,
    });
    expect(res.status).toBe(200);
    expect(res.headers["content-type"]).toBe("application/json");
    expect(res.headers["x-tt-logid"]).toMatch(/^\d{14}[0-9A-F]{20}$/);
    expect(Object.keys(res.body).sort()).toEqual(["access_token", "expires_in"]);
    expect(res.body.access_token).toMatch(/^czs_[A-Za-z0-9_-]{40,}$/);
    expect(res.body.expires_in).toBeGreaterThanOrEqual(before + 3600);
    expect(res.body.expires_in).toBeLessThanOrEqual(nowSeconds() + 3600);
  });

  it("defaults to 900 s and clamps durations above 86399 s", async () => {
    const plain = await exchange(await signAppJwt(app, { aud: emulator.host }));
    expect(plain.body.expires_in).toBeGreaterThanOrEqual(nowSeconds() + 899);
    expect(plain.body.expires_in).toBeLessThanOrEqual(nowSeconds() + 900);
    const long = await exchange(await signAppJwt(app, { aud: emulator.host }), {
      grant_type: GRANT,
      duration_seconds: 999_999,
      scope: null,
    });
    expect(long.body.expires_in).toBeLessThanOrEqual(nowSeconds() + 86_399);
    expect(long.body.expires_in).toBeGreaterThanOrEqual(nowSeconds() + 86_398);
  });

  it("accepts aud with or without the port, and the configured extra audience", async () => {
    for (const aud of [emulator.host, "127.0.0.1", "api.coze.cn"]) {
      const res = await exchange(await signAppJwt(app, { aud }));
      expect(res.status, aud).toBe(200);
    }
  });

  it("serves the account and enterprise token paths for what authorised the app", async () => {
    for (const path of [
      "/api/permission/oauth2/account/123456/token",
      "/api/permission/oauth2/enterprise_id/volcano_1/token",
    ]) {
      const res = await exchange(
        await signAppJwt(app, { aud: emulator.host }),
        { grant_type: GRANT },
        path,
      );
      expect(res.status, path).toBe(200);
    }
  });

  it("accepts a matching client_id (go sends it) and rejects a different one", async () => {
    const ok = await exchange(await signAppJwt(app, { aud: emulator.host }), {
      grant_type: GRANT,
      client_id: app.clientId,
      duration_seconds: 900,
    });
    expect(ok.status).toBe(200);
    const bad = await exchange(await signAppJwt(app, { aud: emulator.host }), {
      grant_type: GRANT,
      client_id: "999",
    });
    expect(bad.status).toBe(401);
    expect(bad.body.error_code).toBe("invalid_client");
  });

  const rejections: Array<[string, () => Promise<string | undefined>]> = [
    ["a missing JWT", async () => undefined],
    ["a garbage bearer value", async () => "not-a-jwt"],
    [
      "a bad signature",
      async () =>
        signAppJwt(
          { ...stranger, publicKeyId: app.publicKeyId, clientId: app.clientId },
          { aud: emulator.host },
        ),
    ],
    ["an unknown kid", async () => signAppJwt(app, { aud: emulator.host, kid: "unknown-key" })],
    ["a wrong iss", async () => signAppJwt(app, { aud: emulator.host, iss: "42" })],
    ["a wrong aud", async () => signAppJwt(app, { aud: "api.coze.com" })],
    ["a URL as aud", async () => signAppJwt(app, { aud: emulator.url })],
    [
      "an expired JWT",
      async () =>
        signAppJwt(app, { aud: emulator.host, iat: nowSeconds() - 7200, exp: nowSeconds() - 3600 }),
    ],
    [
      "an iat in the future",
      async () =>
        signAppJwt(app, { aud: emulator.host, iat: nowSeconds() + 600, exp: nowSeconds() + 1200 }),
    ],
    ["an empty jti", async () => signAppJwt(app, { aud: emulator.host, jti: "" })],
  ];
  it.each(rejections)("rejects %s with a flat 401 invalid_client", async (_name, makeJwt) => {
    const res = await exchange(await makeJwt());
    expect(res.status).toBe(401);
    expect(res.body).toMatchObject({ error_code: "invalid_client", error: "invalid_client" });
    expect(String(res.body.error_message)).not.toBe("");
    expect(res.body).not.toHaveProperty("access_token");
  });

  it("rejects a reused jti: a JWT is single use", async () => {
    const jwt = await signAppJwt(app, { aud: emulator.host });
    expect((await exchange(jwt)).status).toBe(200);
    const again = await exchange(jwt);
    expect(again.status).toBe(401);
    expect(again.body.error_message).toMatch(/jti/);
  });

  it("rejects a bad grant_type with 400 unsupported_grant_type without burning the JWT", async () => {
    const jwt = await signAppJwt(app, { aud: emulator.host });
    const bad = await exchange(jwt, { grant_type: "client_credentials" });
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({
      error_code: "unsupported_grant_type",
      error: "unsupported_grant_type",
    });
    expect(bad.body.error_message).toBe("not supported grant type: client_credentials");
    expect((await exchange(jwt)).status).toBe(200);
  });

  it("rejects a missing grant_type and a negative duration with 400 invalid_request", async () => {
    expect(
      (await exchange(await signAppJwt(app, { aud: emulator.host }), {})).body.error_code,
    ).toBe("invalid_request");
    const negative = await exchange(await signAppJwt(app, { aud: emulator.host }), {
      grant_type: GRANT,
      duration_seconds: -5,
    });
    expect(negative.status).toBe(400);
    expect(negative.body.error_code).toBe("invalid_request");
  });

  it("records each issued token's session_name, none for an absent or empty claim", async () => {
    const before = emulator.stats().tokensBySession;
    for (const session_name of ["user-a", "user-a", "user-b", "", undefined]) {
      const jwt = await signAppJwt(app, { aud: emulator.host, session_name });
      expect((await exchange(jwt)).status, String(session_name)).toBe(200);
    }
    const after = emulator.stats().tokensBySession;
    const delta = (key: string) => (after[key] ?? 0) - (before[key] ?? 0);
    expect([delta("user-a"), delta("user-b"), delta("")]).toEqual([2, 1, 2]);
  });

  it.each([
    { kind: "a number", session_name: 42 },
    { kind: "null", session_name: null },
    { kind: "an object", session_name: { id: "u" } },
    { kind: "an array", session_name: ["u"] },
  ])(
    "refuses $kind as session_name with 400 invalid_request without burning the JWT",
    async ({ session_name }) => {
      const before = emulator.stats().tokensIssued;
      const jti = `session-${JSON.stringify(session_name)}-${Math.random()}`;
      const bad = await exchange(await signAppJwt(app, { aud: emulator.host, jti, session_name }));
      expect(bad.status).toBe(400);
      expect(bad.body).toMatchObject({
        error_code: "invalid_request",
        error: "invalid_request",
        error_message: "invalid request: session_name",
      });
      expect(bad.body).not.toHaveProperty("access_token");
      expect(emulator.stats().tokensIssued).toBe(before);
      // The same jti still buys a token once the claim is fixed: the refusal did not burn it.
      expect((await exchange(await signAppJwt(app, { aud: emulator.host, jti }))).status).toBe(200);
    },
  );

  it("counts token requests and issued tokens", async () => {
    const before = emulator.stats();
    await exchange(await signAppJwt(app, { aud: emulator.host }));
    await exchange(undefined);
    const after = emulator.stats();
    expect(after.tokenRequests - before.tokenRequests).toBe(2);
    expect(after.tokensIssued - before.tokensIssued).toBe(1);
    expect((after.calls.token ?? 0) - (before.calls.token ?? 0)).toBe(2);
  });
});

describe("token endpoint with an injected clock", () => {
  it("checks iat/exp against the emulator clock, with a few seconds of skew", async () => {
    let now = Date.parse("2030-01-01T00:00:00Z");
    const emu = await startEmulator({ now: () => now });
    try {
      const own = await emu.createApp();
      const iat = Math.floor(now / 1000);
      const jwt = (exp: number, i = iat) => signAppJwt(own, { aud: emu.host, iat: i, exp });
      const post = async (token: string) =>
        (
          await fetch(`${emu.url}/api/permission/oauth2/token`, {
            method: "POST",
            headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
            body: JSON.stringify({ grant_type: GRANT }),
          })
        ).status;
      expect(await post(await jwt(iat + 60))).toBe(200);
      now += 62_000; // 2 s past exp: inside the skew
      expect(await post(await jwt(iat + 60))).toBe(200);
      now += 10_000; // 12 s past exp
      expect(await post(await jwt(iat + 60))).toBe(401);
      // A JWT signed by a client whose clock is 3 s ahead is still fine.
      expect(await post(await jwt(Math.floor(now / 1000) + 600, Math.floor(now / 1000) + 3))).toBe(
        200,
      );
    } finally {
      await emu.close();
    }
  });

  it("sends a Date header on the emulator clock, consistent with expires_in", async () => {
    const now = Date.parse("2030-01-01T00:00:00Z");
    const emu = await startEmulator({ now: () => now });
    try {
      const own = await emu.createApp();
      const res = await fetch(`${emu.url}/api/permission/oauth2/token`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${await signAppJwt(own, { aud: emu.host }, now)}`,
          "content-type": "application/json",
        },
        body: JSON.stringify({ grant_type: GRANT, duration_seconds: 600 }),
      });
      const body = (await res.json()) as { expires_in: number };
      expect(res.headers.get("date")).toBe("Tue, 01 Jan 2030 00:00:00 GMT");
      expect(body.expires_in * 1000 - Date.parse(res.headers.get("date") ?? "")).toBe(600_000);
    } finally {
      await emu.close();
    }
  });
});
