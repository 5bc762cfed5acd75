// Personal access tokens (coze-api.md §11) and the JWT token endpoint variants (§12.1), as the
// emulator answers them.
import { randomBytes } from "node:crypto";
import { importPKCS8, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { catalog } from "./catalog.js";
import { signAppJwt } from "./client-jwt.js";
import { startEmulator } from "./server.js";
import { callApi } from "./testing.js";
import type { Emulator, GeneratedApp } from "./types.js";

const GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const day = 86_400_000;
const ACCOUNT = "7300000000000000001";
const ENTERPRISE = "volcano_210195";

let now = Date.parse("2026-03-01T10:00:00Z");
let emulator: Emulator;
let app: GeneratedApp;

beforeAll(async () => {
  emulator = await startEmulator({ now: () => now });
  app = await emulator.createApp({ accountIds: [ACCOUNT], enterpriseIds: [ENTERPRISE] });
});
afterAll(() => emulator.close());

type Json = Record<string, unknown>;
const user = (content: string) => ({ role: "user", content, content_type: "text" });

async function token(path: string, body: Json = {}, claims: Json = {}) {
  const jwt = await signAppJwt(app, { aud: emulator.host, ...claims }, now);
  const res = await fetch(`${emulator.url}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${jwt}`, "content-type": "application/json" },
    body: JSON.stringify({ grant_type: GRANT, ...body }),
  });
  return { status: res.status, body: (await res.json()) as Json };
}

async function chat(bearer: string, conversationId = "") {
  const reply = await callApi(
    emulator,
    bearer,
    "POST",
    `/v3/chat?conversation_id=${conversationId}`,
    {
      bot_id: catalog.bots.echo,
      user_id: "u1",
      additional_messages: [user("hi")],
    },
  );
  return { status: reply.status, body: reply.json<{ code: number; msg: string; data: Json }>() };
}

const accountPath = (id: string) => `/api/permission/oauth2/account/${id}/token`;
const enterprisePath = (id: string) => `/api/permission/oauth2/enterprise_id/${id}/token`;

describe("JWT token endpoint variants (§12.1)", () => {
  it("issues cross-account and enterprise tokens only where the app is authorised", async () => {
    for (const path of [accountPath(ACCOUNT), enterprisePath(ENTERPRISE)]) {
      const ok = await token(path, { duration_seconds: 900 });
      expect(ok.status, path).toBe(200);
      expect(Object.keys(ok.body).sort()).toEqual(["access_token", "expires_in"]);
    }
    for (const path of [accountPath("7300000000000000002"), enterprisePath("volcano_1")]) {
      const refused = await token(path);
      expect(refused.status, path).toBe(400);
      expect(refused.body).toMatchObject({ error_code: "access_deny", error: "access_deny" });
      expect(refused.body.error_message).toEqual(expect.any(String));
    }
  });

  it("takes any digit string as account_id and refuses anything else", async () => {
    const refused = await token(accountPath("abc"));
    expect(refused.status).toBe(400);
    expect(refused.body).toMatchObject({ error_code: "invalid_request" });
    expect(refused.body.error_message).toBe("invalid request: account_id");
  });

  it("accepts the id go copies into the body (a number for accounts) and refuses another", async () => {
    // go's body: {"client_id", "grant_type", "duration_seconds", "account_id": <int64>}.
    const raw = `{"client_id":"${app.clientId}","grant_type":"${GRANT}","duration_seconds":900,"account_id":${ACCOUNT}}`;
    const jwt = await signAppJwt(app, { aud: emulator.host }, now);
    const go = await fetch(`${emulator.url}${accountPath(ACCOUNT)}`, {
      method: "POST",
      headers: { authorization: `Bearer ${jwt}`, "content-type": "application/json" },
      body: raw,
    });
    expect(go.status).toBe(200);
    expect((await token(accountPath(ACCOUNT), { account_id: ACCOUNT })).status).toBe(200);
    const other = await token(accountPath(ACCOUNT), { account_id: 7300000000000002000 });
    expect(other.status).toBe(400);
    expect(other.body.error_message).toBe("invalid request: account_id differs from the path");
    const enterprise = await token(enterprisePath(ENTERPRISE), { enterprise_id: ENTERPRISE });
    expect(enterprise.status).toBe(200);
    const mismatch = await token(enterprisePath(ENTERPRISE), { enterprise_id: "volcano_9" });
    expect(mismatch.status).toBe(400);
    expect(mismatch.body.error_message).toBe(
      "invalid request: enterprise_id differs from the path",
    );
  });

  it("accepts session_context and scope and ignores them (§12.3)", async () => {
    const key = await importPKCS8(app.privateKeyPem, "RS256");
    const iat = Math.floor(now / 1000);
    const jwt = await new SignJWT({
      jti: randomBytes(32).toString("hex"),
      session_name: "dev-1",
      session_context: { device_info: { device_id: "1234567890", custom_consumer: "shop" } },
    })
      .setProtectedHeader({ alg: "RS256", typ: "JWT", kid: app.publicKeyId })
      .setIssuer(app.clientId)
      .setAudience(emulator.host)
      .setIssuedAt(iat)
      .setExpirationTime(iat + 600)
      .sign(key);
    const res = await fetch(`${emulator.url}${enterprisePath(ENTERPRISE)}`, {
      method: "POST",
      headers: { authorization: `Bearer ${jwt}`, "content-type": "application/json" },
      body: JSON.stringify({ grant_type: GRANT, scope: null }),
    });
    expect(res.status).toBe(200);
  });

  it("keeps an account's conversations from the app's own tokens and from other sessions", async () => {
    const mint = async (path: string, session?: string) => {
      const res = await token(path, {}, session === undefined ? {} : { session_name: session });
      return String(res.body.access_token);
    };
    const inAccount = await mint(accountPath(ACCOUNT));
    const made = await chat(inAccount);
    expect(made.body.code).toBe(0);
    const conversation = String(made.body.data.conversation_id);
    expect((await chat(await mint(accountPath(ACCOUNT)), conversation)).body.code).toBe(0);
    for (const other of [
      await mint("/api/permission/oauth2/token"),
      await mint(enterprisePath(ENTERPRISE)),
      await mint(accountPath(ACCOUNT), "alice"),
    ]) {
      expect((await chat(other, conversation)).body.code).toBe(4002);
    }
  });
});

describe("personal access tokens (§11)", () => {
  it("authenticates API calls, never reaches the token endpoint, and looks like the docs' PATs", async () => {
    const before = emulator.stats().tokenRequests;
    const pat = emulator.createPat();
    expect(pat.token).toMatch(/^pat_[A-Za-z0-9]{64}$/);
    expect(pat.expiresIn).toBe(Math.floor(now / 1000) + 30 * 86_400);
    const reply = await chat(pat.token);
    expect(reply.status).toBe(200);
    expect(reply.body.code).toBe(0);
    expect(emulator.stats().tokenRequests).toBe(before);
  });

  it("answers 4100 with HTTP 401 once expired, for unknown tokens and once revoked", async () => {
    const pat = emulator.createPat({ lifetimeSeconds: 86_400 });
    expect((await chat(pat.token)).body.code).toBe(0);
    now += day;
    const expired = await chat(pat.token);
    expect(expired.status).toBe(401);
    expect(expired.body).toMatchObject({ code: 4100, msg: "authentication is invalid" });
    expect((await chat(`pat_${"x".repeat(64)}`)).body.code).toBe(4100);
    const revoked = emulator.createPat();
    emulator.revokeAllTokens();
    expect((await chat(revoked.token)).status).toBe(401);
    expect((await chat(revoked.token)).body.code).toBe(4100);
    emulator.reset();
    expect((await chat(revoked.token)).body.code).toBe(0);
  });

  it("answers 4101 with HTTP 401 for a call outside its permissions", async () => {
    const pat = emulator.createPat({ permissions: ["workflow"] });
    const refused = await chat(pat.token);
    expect(refused.status).toBe(401);
    expect(refused.body.code).toBe(4101);
    const run = await callApi(emulator, pat.token, "POST", "/v1/workflow/run", {
      workflow_id: catalog.workflows.echo,
      parameters: { input: "x" },
    });
    expect(run.json().code).toBe(0);
  });

  it("sends the same auth errors with HTTP 200 under authErrorStatus: 200 (§11.3 switch)", async () => {
    const lenient = await startEmulator({ authErrorStatus: 200 });
    try {
      const pat = lenient.createPat({ permissions: ["files"] });
      const reply = await callApi(lenient, pat.token, "POST", "/v3/chat", {
        bot_id: catalog.bots.echo,
        additional_messages: [user("x")],
      });
      expect(reply.status).toBe(200);
      expect(reply.json().code).toBe(4101);
      const unknown = await callApi(lenient, "pat_nope", "POST", "/v3/chat", {});
      expect([unknown.status, unknown.json().code]).toEqual([200, 4100]);
    } finally {
      await lenient.close();
    }
  });

  it("keeps a PAT's conversations in its account", async () => {
    const mine = emulator.createPat({ accountId: "7000000000000000042" });
    const other = emulator.createPat({ accountId: "7000000000000000043" });
    const made = await chat(mine.token);
    const conversation = String(made.body.data.conversation_id);
    expect(
      (await chat(emulator.createPat({ accountId: "7000000000000000042" }).token, conversation))
        .body.code,
    ).toBe(0);
    expect((await chat(other.token, conversation)).body.code).toBe(4002);
  });

  it("refuses options out of range", () => {
    for (const lifetimeSeconds of [86_399, 30 * 86_400 + 1, 1.5]) {
      expect(() => emulator.createPat({ lifetimeSeconds })).toThrow(/lifetimeSeconds must be/);
    }
    expect(() => emulator.createPat({ permissions: [""] })).toThrow(/permissions/);
    expect(() => emulator.createPat({ accountId: "me" })).toThrow(/accountId/);
  });
});
