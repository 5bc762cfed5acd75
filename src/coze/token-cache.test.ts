import { createPrivateKey, generateKeyPairSync, type KeyObject, randomBytes } from "node:crypto";
import { EventEmitter, once } from "node:events";
import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import { decodeProtectedHeader, type JWTPayload, jwtVerify } from "jose";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createManualClock, type ManualClock } from "../../test/support/manual-clock.js";
import type { Clock } from "./clock.js";
import { CozeError } from "./errors.js";
import { createPools, type Pools } from "./pools.js";
import {
  type CozeCredential,
  createTokenCache,
  type TokenCache,
  type TokenCacheOptions,
  type TokenEvent,
} from "./token-cache.js";

// ---------------------------------------------------------------------------------------------
// Fixtures: two OAuth apps with keys generated at test time (never committed), a manual clock
// and a local token server that verifies every JWT the way Coze does (coze-api.md §2, §7.1).
// ---------------------------------------------------------------------------------------------

interface App {
  clientId: string;
  kid: string;
  privateKey: KeyObject;
  pem: string;
  publicKey: KeyObject;
}

function makeApp(clientId: string, kid: string): App {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const pem = privateKey.export({ type: "pkcs8", format: "pem" }).toString();
  return { clientId, kid, privateKey, pem, publicKey };
}

const appA = makeApp("1127900106117", "kid-a");
const appB = makeApp("7400000000000000001", "kid-b");

interface SeenRequest {
  method: string | undefined;
  path: string;
  headers: IncomingHttpHeaders;
  body: Record<string, unknown>;
  jwt: string;
  claims: JWTPayload;
}

interface Reply {
  status?: number;
  headers?: Record<string, string>;
  /** An object is sent as JSON, a string as is. */
  body?: unknown;
}

interface TokenServer {
  baseUrl: string;
  host: string;
  requests: SeenRequest[];
  /** JWTs or requests the server refused; every test expects none unless it says otherwise. */
  problems: string[];
  issued: string[];
  /** Server clock minus local clock, in ms: the clock skew the server simulates. */
  skewMs: number;
  /** Send a `Date` header (from the skewed server clock). */
  sendDate: boolean;
  /** Replies used once each, before `fallback` and the default success. */
  next: Array<Reply | ((req: SeenRequest) => Reply)>;
  fallback: ((req: SeenRequest) => Reply | undefined) | undefined;
  /** Holds every response from now on until the returned function is called. */
  hold(): () => void;
  /** Resolves once `n` requests have arrived (real I/O, no timers). */
  until(n: number): Promise<void>;
  close(): Promise<void>;
}

const tokenPathPattern =
  /^\/api\/permission\/oauth2\/(token|account\/[^/]+\/token|enterprise_id\/[^/]+\/token)$/;

async function startTokenServer(clock: Clock, apps: App[]): Promise<TokenServer> {
  const arrivals = new EventEmitter();
  const jtis = new Set<string>();
  let gate: Promise<void> | undefined;
  let counter = 0;
  const httpServer = createServer(async (req, res) => {
    let raw = "";
    for await (const chunk of req) raw += String(chunk);
    const reply = (r: Reply) => {
      const headers: Record<string, string> = { "content-type": "application/json" };
      if (state.sendDate) headers.date = new Date(clock.now() + state.skewMs).toUTCString();
      res.sendDate = false;
      res.writeHead(r.status ?? 200, { ...headers, "x-tt-logid": `LOG${counter}`, ...r.headers });
      res.end(typeof r.body === "string" ? r.body : JSON.stringify(r.body ?? {}));
    };
    let seen: SeenRequest;
    try {
      seen = await verify(req.method, req.url ?? "", req.headers, raw);
    } catch (err) {
      state.problems.push(err instanceof Error ? err.message : String(err));
      reply({ status: 401, body: { error_code: "invalid_client", error_message: "bad JWT" } });
      return;
    }
    state.requests.push(seen);
    arrivals.emit("request");
    const held = gate;
    if (held !== undefined) await held;
    const planned = state.next.shift();
    const r =
      (typeof planned === "function" ? planned(seen) : planned) ??
      state.fallback?.(seen) ??
      success(seen);
    reply(r);
  });

  async function verify(
    method: string | undefined,
    path: string,
    headers: IncomingHttpHeaders,
    raw: string,
  ): Promise<SeenRequest> {
    if (method !== "POST" || !tokenPathPattern.test(path)) throw new Error(`bad path ${path}`);
    if (headers["content-type"] !== "application/json") throw new Error("bad content-type");
    const auth = headers.authorization ?? "";
    if (!auth.startsWith("Bearer ")) throw new Error("no bearer");
    const jwt = auth.slice("Bearer ".length);
    const header = decodeProtectedHeader(jwt);
    const app = apps.find((a) => a.kid === header.kid);
    if (app === undefined) throw new Error(`unknown kid ${String(header.kid)}`);
    if (header.alg !== "RS256" || header.typ !== "JWT") throw new Error("bad JWT header");
    const { payload } = await jwtVerify(jwt, app.publicKey, {
      algorithms: ["RS256"],
      issuer: app.clientId,
      audience: [state.host, "api.coze.cn"],
      currentDate: new Date(clock.now()),
    });
    if ((payload.exp ?? 0) - (payload.iat ?? 0) !== 3600) throw new Error("JWT lifetime not 3600");
    const jti = String(payload.jti);
    if (!/^[0-9a-f]{64,}$/.test(jti)) throw new Error("jti too short");
    if (jtis.has(jti)) throw new Error("jti reused");
    jtis.add(jti);
    const body = JSON.parse(raw) as Record<string, unknown>;
    if (body.grant_type !== "urn:ietf:params:oauth:grant-type:jwt-bearer") {
      throw new Error("bad grant_type");
    }
    if (body.client_id !== app.clientId) throw new Error("bad client_id");
    if (!Number.isInteger(body.duration_seconds)) throw new Error("bad duration_seconds");
    return { method, path, headers, body, jwt, claims: payload };
  }

  function success(seen: SeenRequest): Reply {
    counter++;
    const token = `czs_${seen.claims.iss}_${counter}_${randomBytes(12).toString("hex")}`;
    state.issued.push(token);
    const serverNowSeconds = Math.floor((clock.now() + state.skewMs) / 1000);
    return {
      body: {
        access_token: token,
        expires_in: serverNowSeconds + Number(seen.body.duration_seconds),
      },
    };
  }

  httpServer.listen(0, "127.0.0.1");
  await once(httpServer, "listening");
  const port = (httpServer.address() as AddressInfo).port;
  const state: TokenServer = {
    baseUrl: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    requests: [],
    problems: [],
    issued: [],
    skewMs: 0,
    sendDate: false,
    next: [],
    fallback: undefined,
    hold() {
      let release = () => {};
      gate = new Promise<void>((resolve) => {
        release = () => {
          gate = undefined;
          resolve();
        };
      });
      return release;
    },
    async until(n) {
      while (state.requests.length < n) await once(arrivals, "request");
    },
    async close() {
      httpServer.closeAllConnections();
      httpServer.close();
      await once(httpServer, "close");
    },
  };
  return state;
}

// ---------------------------------------------------------------------------------------------

const t0 = Date.parse("2026-03-01T10:00:00Z");
const second = 1000;
const minute = 60 * second;
const hour = 60 * minute;

let clock: ManualClock;
let server: TokenServer;
let pools: Pools;
let events: TokenEvent[];
let waiters: Array<{ type: TokenEvent["type"]; resolve: (e: TokenEvent) => void }>;
const extraServers: TokenServer[] = [];

beforeEach(async () => {
  clock = createManualClock(t0);
  server = await startTokenServer(clock, [appA, appB]);
  pools = createPools();
  events = [];
  waiters = [];
});

afterEach(async () => {
  await pools.destroy();
  for (const s of [server, ...extraServers.splice(0)]) {
    expect(s.problems).toEqual([]);
    await s.close();
  }
});

function cache(options: Partial<TokenCacheOptions> = {}): TokenCache {
  return createTokenCache({
    pools,
    clock,
    random: () => 0, // no jitter: backoff delays are exactly 1 s, 2 s, 4 s, ...
    onEvent: (event) => {
      events.push(event);
      for (const w of waiters.filter((x) => x.type === event.type)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(event);
      }
    },
    ...options,
  });
}

function nextEvent(type: TokenEvent["type"]): Promise<TokenEvent> {
  return new Promise((resolve) => waiters.push({ type, resolve }));
}

function credential(app: App = appA, extra: Partial<CozeCredential> = {}): CozeCredential {
  return {
    baseUrl: server.baseUrl,
    clientId: app.clientId,
    publicKeyId: app.kid,
    privateKey: app.privateKey,
    ...extra,
  };
}

async function rejection(promise: Promise<unknown>): Promise<CozeError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CozeError);
  return err as CozeError;
}

const failing: Reply = {
  status: 500,
  body: { error_code: "internal_error", error: "internal_error", error_message: "boom" },
};

// ---------------------------------------------------------------------------------------------

describe("token request", () => {
  it("buys a token with a fresh JWT, the jwt-bearer body and the user agent", async () => {
    const source = cache({ userAgent: "coze-gateway/test" }).source(credential());
    const token = await source.getToken();
    expect(token).toBe(server.issued[0]);
    expect(server.requests).toHaveLength(1);
    const [req] = server.requests;
    expect(req?.path).toBe("/api/permission/oauth2/token");
    expect(req?.headers["user-agent"]).toBe("coze-gateway/test");
    expect(req?.body).toEqual({
      grant_type: "urn:ietf:params:oauth:grant-type:jwt-bearer",
      duration_seconds: 3600,
      client_id: appA.clientId,
    });
    // aud defaults to the base URL's host with its port, like the go and py SDKs.
    expect(req?.claims.aud).toBe(server.host);
    expect(req?.claims.iss).toBe(appA.clientId);
    expect(req?.claims.session_name).toBeUndefined();
  });

  it("uses the account and enterprise endpoints when the credential names one", async () => {
    const tokens = cache();
    await tokens.source(credential(appA, { accountId: "7351234567890123456" })).getToken();
    await tokens.source(credential(appA, { enterpriseId: "volcano_210195" })).getToken();
    expect(server.requests.map((r) => r.path)).toEqual([
      "/api/permission/oauth2/account/7351234567890123456/token",
      "/api/permission/oauth2/enterprise_id/volcano_210195/token",
    ]);
  });

  it("requests the configured duration and signs the configured audience", async () => {
    const tokens = cache();
    const source = tokens.source(
      credential(appA, { durationSeconds: 900, audience: "api.coze.cn" }),
    );
    await source.getToken();
    expect(server.requests[0]?.body.duration_seconds).toBe(900);
    expect(server.requests[0]?.claims.aud).toBe("api.coze.cn");
    // 900 s token, 300 s margin: the refresh starts at 600 s.
    await clock.advance(600 * second - 1);
    await source.getToken();
    expect(tokens.stats().backgroundRefreshes).toBe(0);
    await clock.advance(1);
    await source.getToken();
    expect(tokens.stats().backgroundRefreshes).toBe(1);
    await server.until(2);
  });

  it("maps an OAuth error to a safe CozeError with Coze's code, text and log id", async () => {
    server.next.push((req) => ({
      status: 401,
      headers: { "x-tt-logid": "20260301100000ABCDEF" },
      body: { error_code: "invalid_client", error: "invalid_client", error_message: req.jwt },
    }));
    const err = await rejection(cache().source(credential()).getToken());
    const jwt = server.requests[0]?.jwt ?? "";
    expect(err.code).toBe("authentication");
    expect(err.step).toBe("token");
    expect(err.status).toBe(401);
    expect(err.cozeCode).toBe("invalid_client");
    expect(err.logId).toBe("20260301100000ABCDEF");
    expect(err.message).toBe("token: authentication failed (Coze code invalid_client)");
    expect(err.message).not.toContain(jwt);
    expect(err.cozeMessage).toBe(jwt); // upstream text stays apart from the message
  });

  it("fails a token request that outlives requestTimeoutMs on the injected clock", async () => {
    const release = server.hold();
    const failed = rejection(cache({ requestTimeoutMs: 5_000 }).source(credential()).getToken());
    await server.until(1);
    await clock.advance(5_000);
    expect((await failed).code).toBe("timeout");
    release();
  });
});

describe("single flight", () => {
  it("signs one JWT and sends one request for 1000 concurrent callers on a cold cache", async () => {
    const tokens = cache();
    const source = tokens.source(credential());
    const results = await Promise.all(Array.from({ length: 1000 }, () => source.getToken()));
    expect(new Set(results)).toEqual(new Set([server.issued[0]]));
    expect(server.requests).toHaveLength(1);
    expect(tokens.stats()).toEqual({
      jwtsSigned: 1,
      tokenRequests: 1,
      tokenFailures: 0,
      tokensFetched: 1,
      cacheHits: 0,
      backgroundRefreshes: 0,
      tokensCached: 1,
      tokensEvicted: 0,
    });
  });
});

describe("steady state", () => {
  it("serves every call from the cache until the refresh point", async () => {
    const tokens = cache();
    const source = tokens.source(credential());
    const token = await source.getToken();
    // Ends 1 ms before the refresh point (55 min).
    for (const step of [1, minute, 30 * minute, 24 * minute - 2]) {
      await clock.advance(step);
      const all = await Promise.all(Array.from({ length: 25 }, () => source.getToken()));
      expect(new Set(all)).toEqual(new Set([token]));
    }
    expect(tokens.stats()).toMatchObject({ cacheHits: 100, backgroundRefreshes: 0 });
    expect(server.requests).toHaveLength(1);
  });

  it("answers cachedToken() without a request, refreshing and expiring like getToken", async () => {
    const tokens = cache();
    const source = tokens.source(credential());
    // Cold: nothing to answer with, and nothing started.
    expect(source.cachedToken()).toBeUndefined();
    expect(server.requests).toHaveLength(0);
    const token = await source.getToken();
    expect(source.cachedToken()).toBe(token);
    expect(tokens.stats()).toMatchObject({ cacheHits: 1, backgroundRefreshes: 0 });
    // Past the refresh point: still the cached token at once, and one refresh in the background.
    await clock.advance(hour - 5 * minute);
    const refreshed = nextEvent("refreshed");
    expect(source.cachedToken()).toBe(token);
    expect(source.cachedToken()).toBe(token);
    await refreshed;
    expect(tokens.stats()).toMatchObject({ cacheHits: 3, backgroundRefreshes: 1 });
    expect(source.cachedToken()).toBe(server.issued[1]);
    // Dropped or expired: only getToken can answer.
    source.invalidate(server.issued[1] as string);
    expect(source.cachedToken()).toBeUndefined();
    const third = await source.getToken();
    await clock.advance(hour);
    expect(source.cachedToken()).toBeUndefined();
    expect(await source.getToken()).not.toBe(third);
    expect(server.requests).toHaveLength(4);
  });
});

describe("refresh ahead of expiry", () => {
  it("answers at once with the cached token and refreshes once in the background", async () => {
    const tokens = cache();
    const source = tokens.source(credential());
    const old = await source.getToken();
    await clock.advance(hour - 5 * minute); // the refresh point: expiry minus the 5 min margin
    const release = server.hold();
    // The refresh response is held back, yet every caller gets the old token right away.
    const during = await Promise.all(Array.from({ length: 200 }, () => source.getToken()));
    expect(new Set(during)).toEqual(new Set([old]));
    await server.until(2);
    const refreshed = nextEvent("refreshed");
    release();
    await refreshed;
    const fresh = await source.getToken();
    expect(fresh).toBe(server.issued[1]);
    expect(fresh).not.toBe(old);
    expect(server.requests).toHaveLength(2);
    expect(tokens.stats()).toMatchObject({ backgroundRefreshes: 1, cacheHits: 201 });
  });

  it("uses a credential's own refresh margin over the cache default", async () => {
    const tokens = cache();
    const source = tokens.source({ ...credential(), refreshMarginMs: 10 * minute });
    await source.getToken();
    await clock.advance(hour - 10 * minute - 1); // just before this credential's refresh point
    await source.getToken();
    expect(server.requests).toHaveLength(1);
    await clock.advance(1);
    await source.getToken();
    await server.until(2);
    expect(tokens.stats().backgroundRefreshes).toBe(1);
  });

  it("keeps serving the old token while background refreshes fail, until it expires", async () => {
    const tokens = cache();
    const source = tokens.source(credential());
    const old = await source.getToken();
    server.fallback = () => failing;
    await clock.advance(hour - 5 * minute);
    let failed = nextEvent("failed");
    expect(await source.getToken()).toBe(old);
    expect(await failed).toMatchObject({ type: "failed", background: true, code: "unavailable" });
    // Within the 1 s backoff the old token is served without another attempt.
    await clock.advance(999);
    expect(await source.getToken()).toBe(old);
    expect(tokens.stats().backgroundRefreshes).toBe(1);
    // After it, one more background attempt.
    await clock.advance(1);
    failed = nextEvent("failed");
    expect(await source.getToken()).toBe(old);
    await failed;
    expect(tokens.stats().backgroundRefreshes).toBe(2);
    expect(server.requests).toHaveLength(3);
    // At expiry the old token is no longer served: the caller waits for a fetch, which fails.
    await clock.advance(5 * minute - 1000);
    const err = await rejection(source.getToken());
    expect(err.code).toBe("unavailable");
    expect(server.requests).toHaveLength(4);
  });
});

describe("expiry and clock skew", () => {
  // Asserts that the refresh starts exactly `atMs` after t0: a hit at atMs-1, a request at atMs.
  // Asserts that a token fetched at t0 is refreshed exactly `atMs` later: a plain cache hit at
  // atMs - 1, the start of a background refresh at atMs. (The refresh counter moves in the
  // getToken call itself; the server only sees the request a little later.)
  async function expectRefreshAt(tokens: TokenCache, atMs: number) {
    const source = tokens.source(credential());
    await clock.advance(atMs - 1 - (clock.now() - t0));
    await source.getToken();
    expect(tokens.stats().backgroundRefreshes).toBe(0);
    await clock.advance(1);
    await source.getToken();
    expect(tokens.stats().backgroundRefreshes).toBe(1);
    await server.until(2);
  }

  it("measures the lifetime on the server's Date header when the server clock is ahead", async () => {
    server.skewMs = 10 * minute;
    server.sendDate = true;
    // The server grants 30 min from its own now: expires_in is local t0 + 40 min.
    server.next.push({
      body: {
        access_token: "czs_half",
        expires_in: Math.floor((clock.now() + server.skewMs) / 1000) + 30 * 60,
      },
    });
    const tokens = cache();
    expect(await tokens.source(credential()).getToken()).toBe("czs_half");
    await expectRefreshAt(tokens, 25 * minute);
  });

  it("measures the lifetime on the server's Date header when the server clock is behind", async () => {
    server.skewMs = -10 * minute;
    server.sendDate = true;
    const tokens = cache();
    await tokens.source(credential()).getToken();
    // Compared with the local clock, expires_in would look 10 min shorter than granted.
    await expectRefreshAt(tokens, hour - 5 * minute);
  });

  it("caps the lifetime at the requested duration when there is no Date header", async () => {
    server.skewMs = 10 * minute; // expires_in lands 70 min after the local request start
    // The refresh is held for 5 simulated minutes: lift the request deadline out of the way.
    const source = cache({ requestTimeoutMs: hour }).source(credential());
    const old = await source.getToken();
    const release = server.hold();
    await clock.advance(55 * minute - 1);
    expect(await source.getToken()).toBe(old);
    expect(server.requests).toHaveLength(1);
    await clock.advance(1);
    expect(await source.getToken()).toBe(old);
    await server.until(2); // the background refresh, held back
    await clock.advance(5 * minute - 1);
    expect(await source.getToken()).toBe(old);
    // Local expiry is t0 + 60 min, not t0 + 70 min: the caller now waits for the refresh.
    await clock.advance(1);
    const pending = source.getToken();
    release();
    expect(await pending).toBe(server.issued[1]);
  });

  it("trusts a server clock that is behind when there is no Date header", async () => {
    server.skewMs = -10 * minute;
    const tokens = cache();
    await tokens.source(credential()).getToken();
    // Without a Date header, the lifetime is expires_in minus local now: 50 min.
    await expectRefreshAt(tokens, 45 * minute);
  });

  it("refreshes a token shorter-lived than the margin at half-life", async () => {
    server.next.push({
      body: { access_token: "czs_short", expires_in: Math.floor(clock.now() / 1000) + 100 },
    });
    const tokens = cache();
    expect(await tokens.source(credential()).getToken()).toBe("czs_short");
    // 100 s lifetime: the 5 min margin would refresh at once; half-life refreshes at 50 s.
    await expectRefreshAt(tokens, 50 * second);
  });

  it("rejects an expires_in that is already past as a protocol error", async () => {
    const nowSeconds = Math.floor(t0 / 1000);
    server.next.push({ body: { access_token: "czs_dead", expires_in: nowSeconds - 1 } });
    server.next.push({ body: { access_token: "czs_dead", expires_in: nowSeconds } });
    const tokens = cache({ backoff: { initialMs: 1 } });
    const source = tokens.source(credential());
    expect((await rejection(source.getToken())).code).toBe("protocol");
    await clock.advance(1);
    expect((await rejection(source.getToken())).code).toBe("protocol");
    expect(tokens.stats().tokenFailures).toBe(2);
  });

  it("rejects an expires_in before the server's own Date as a protocol error", async () => {
    server.sendDate = true;
    server.skewMs = 2 * hour;
    server.next.push({
      body: { access_token: "czs_dead", expires_in: Math.floor(t0 / 1000) + 3600 },
    });
    expect((await rejection(cache().source(credential()).getToken())).code).toBe("protocol");
  });
});

describe("invalidate", () => {
  it("fetches a new token once for many concurrent callers after the cached one is dropped", async () => {
    const tokens = cache();
    const source = tokens.source(credential());
    const first = await source.getToken();
    source.invalidate(first);
    const all = await Promise.all(Array.from({ length: 100 }, () => source.getToken()));
    expect(new Set(all)).toEqual(new Set([server.issued[1]]));
    expect(server.requests).toHaveLength(2);
    expect(tokens.stats()).toMatchObject({ jwtsSigned: 2, tokenRequests: 2, cacheHits: 0 });
  });

  it("ignores a stale token: an invalidate after a refresh keeps the new token", async () => {
    const source = cache().source(credential());
    const first = await source.getToken();
    source.invalidate(first);
    const second = await source.getToken();
    source.invalidate(first); // a late 4100 for a request that still carried the first token
    source.invalidate("czs_never_issued");
    expect(await source.getToken()).toBe(second);
    expect(server.requests).toHaveLength(2);
    expect(events.filter((e) => e.type === "invalidated")).toHaveLength(1);
  });

  it("lets callers join a refresh already under way after an invalidate", async () => {
    const source = cache().source(credential());
    const old = await source.getToken();
    const release = server.hold();
    await clock.advance(hour - 5 * minute);
    expect(await source.getToken()).toBe(old); // starts the background refresh
    await server.until(2);
    source.invalidate(old);
    const waiting = Promise.all(Array.from({ length: 10 }, () => source.getToken()));
    release();
    expect(new Set(await waiting)).toEqual(new Set([server.issued[1]]));
    expect(server.requests).toHaveLength(2);
  });
});

describe("failing token endpoint", () => {
  it("shares one failure among all callers of a flight", async () => {
    server.fallback = () => failing;
    const tokens = cache();
    const source = tokens.source(credential());
    const results = await Promise.allSettled(Array.from({ length: 50 }, () => source.getToken()));
    const reasons = new Set(results.map((r) => (r.status === "rejected" ? r.reason : r.value)));
    expect(reasons.size).toBe(1);
    const [err] = reasons;
    expect(err).toBeInstanceOf(CozeError);
    expect((err as CozeError).code).toBe("unavailable");
    expect(server.requests).toHaveLength(1);
    expect(tokens.stats()).toMatchObject({ tokenRequests: 1, tokenFailures: 1 });
  });

  it("fails fast during the backoff window, retries after it and resets on success", async () => {
    server.fallback = () => failing;
    const tokens = cache();
    const source = tokens.source(credential());
    const first = await rejection(source.getToken());
    const flood = async () => {
      const results = await Promise.allSettled(
        Array.from({ length: 100 }, () => source.getToken()),
      );
      return new Set(results.map((r) => (r.status === "rejected" ? r.reason : r.value)));
    };
    expect(await flood()).toEqual(new Set([first])); // same error, no request
    await clock.advance(999);
    expect(await flood()).toEqual(new Set([first]));
    expect(server.requests).toHaveLength(1);

    await clock.advance(1); // 1 s backoff over: one request for the whole flood
    const second = [...(await flood())][0] as CozeError;
    expect(second).not.toBe(first);
    expect(server.requests).toHaveLength(2);

    await clock.advance(1_999); // the second backoff is 2 s
    expect(await flood()).toEqual(new Set([second]));
    expect(server.requests).toHaveLength(2);

    server.fallback = undefined;
    await clock.advance(1);
    const token = await source.getToken();
    expect(token).toBe(server.issued[0]);
    expect(server.requests).toHaveLength(3);

    // Success reset the backoff: the next failure waits 1 s again, not 4 s.
    server.fallback = () => failing;
    source.invalidate(token);
    await rejection(source.getToken());
    await clock.advance(1_000);
    await rejection(source.getToken());
    expect(server.requests).toHaveLength(5);
    expect(tokens.stats()).toMatchObject({ tokenRequests: 5, tokenFailures: 4 });
  });

  it("caps the backoff at maxMs", async () => {
    server.fallback = () => failing;
    const source = cache({ backoff: { initialMs: 1_000, maxMs: 3_000 } }).source(credential());
    const delays: number[] = [];
    for (let i = 0; i < 4; i++) {
      const failed = nextEvent("failed");
      await rejection(source.getToken());
      const event = await failed;
      if (event.type === "failed") delays.push(event.retryInMs);
      await clock.advance(delays.at(-1) ?? 0);
    }
    expect(delays).toEqual([1_000, 2_000, 3_000, 3_000]);
  });

  it("waits for Retry-After when it is longer than the backoff", async () => {
    server.next.push({
      status: 429,
      headers: { "retry-after": "10" },
      body: { error_code: "rate_limited", error_message: "slow down" },
    });
    const source = cache().source(credential());
    const err = await rejection(source.getToken());
    expect(err.code).toBe("rate_limited");
    expect(err.retryAfterMs).toBe(10_000);
    await clock.advance(9_999);
    expect(await rejection(source.getToken())).toBe(err);
    expect(server.requests).toHaveLength(1);
    await clock.advance(1);
    expect(await source.getToken()).toBe(server.issued[0]);
    expect(server.requests).toHaveLength(2);
  });

  it("trusts Retry-After only up to 5 minutes", async () => {
    server.next.push({ status: 503, headers: { "retry-after": "86400" }, body: "busy" });
    const source = cache().source(credential());
    const failed = nextEvent("failed");
    expect((await rejection(source.getToken())).retryAfterMs).toBe(86_400_000);
    expect(await failed).toMatchObject({ retryInMs: 5 * minute });
    await clock.advance(5 * minute);
    expect(await source.getToken()).toBe(server.issued[0]);
  });
});

describe("options", () => {
  it("refuses a negative margin and a non-positive request timeout", () => {
    expect(() => cache({ refreshMarginMs: -1 })).toThrow(TypeError);
    expect(() => cache({ requestTimeoutMs: 0 })).toThrow(TypeError);
  });
});

describe("per-credential isolation", () => {
  it("gives two apps their own tokens and their own requests", async () => {
    const tokens = cache();
    const a = tokens.source(credential(appA));
    const b = tokens.source(credential(appB));
    expect(a).not.toBe(b);
    const [tokenA, tokenB] = await Promise.all([a.getToken(), b.getToken()]);
    expect(tokenA).not.toBe(tokenB);
    expect(server.requests.map((r) => r.claims.iss).sort()).toEqual(
      [appA.clientId, appB.clientId].sort(),
    );
    expect(tokenA).toContain(appA.clientId);
    expect(tokenB).toContain(appB.clientId);
    // Dropping A's token leaves B's alone.
    a.invalidate(tokenA);
    expect(await b.getToken()).toBe(tokenB);
    expect(server.requests).toHaveLength(2);
  });

  it("gives each session name of one app its own token", async () => {
    const tokens = cache();
    const alice = tokens.source(credential(appA, { sessionName: "alice" }));
    const bob = tokens.source(credential(appA, { sessionName: "bob" }));
    const anonymous = tokens.source(credential(appA));
    const all = await Promise.all([alice.getToken(), bob.getToken(), anonymous.getToken()]);
    expect(new Set(all).size).toBe(3);
    expect(server.requests.map((r) => r.claims.session_name ?? null).sort()).toEqual([
      "alice",
      "bob",
      null,
    ]);
  });

  it("gives each base URL its own token", async () => {
    const other = await startTokenServer(clock, [appA]);
    extraServers.push(other);
    const tokens = cache();
    const here = await tokens.source(credential()).getToken();
    const there = await tokens.source({ ...credential(), baseUrl: other.baseUrl }).getToken();
    expect(here).toBe(server.issued[0]);
    expect(there).toBe(other.issued[0]);
    expect(other.requests[0]?.claims.aud).toBe(other.host);
  });

  it("keeps one app's backoff away from another", async () => {
    server.fallback = (req) => (req.claims.iss === appA.clientId ? failing : undefined);
    const tokens = cache();
    await rejection(tokens.source(credential(appA)).getToken());
    expect(await tokens.source(credential(appB)).getToken()).toBe(server.issued[0]);
  });

  it("returns the same source for the same credential, keyed without secrets", async () => {
    const tokens = cache();
    const source = tokens.source(credential());
    // The same key as another object (parsed again from its PEM): the same source.
    const again = { ...credential(), privateKey: createPrivateKey(appA.pem) };
    expect(tokens.source({ ...credential() })).toBe(source);
    expect(tokens.source({ ...credential(), baseUrl: `${server.baseUrl}/` })).toBe(source);
    expect(tokens.source(again)).toBe(source);
    expect(source.key).toContain(appA.clientId);
    expect(source.key).toContain(appA.kid);
    expect(source.key).not.toContain("PRIVATE KEY");
    expect(tokens.source(credential(appA, { durationSeconds: 900 }))).not.toBe(source);
  });
});

describe("caller abort", () => {
  it("rejects an aborting caller at once while the shared fetch fills the cache", async () => {
    const tokens = cache();
    const source = tokens.source(credential());
    const release = server.hold();
    const controller = new AbortController();
    const aborting = source.getToken(controller.signal);
    let otherDone = false;
    const other = source.getToken().finally(() => {
      otherDone = true;
    });
    await server.until(1);
    controller.abort();
    const err = await rejection(aborting);
    expect(err.code).toBe("canceled");
    expect(err.step).toBe("token");
    expect(otherDone).toBe(false);
    release();
    const token = await other;
    expect(token).toBe(server.issued[0]);
    expect(await source.getToken()).toBe(token);
    expect(server.requests).toHaveLength(1);
    expect(tokens.stats()).toMatchObject({ tokenRequests: 1, tokenFailures: 0, cacheHits: 1 });
  });

  it("fills the cache even when every caller aborted", async () => {
    const source = cache().source(credential());
    const release = server.hold();
    const controller = new AbortController();
    const aborting = source.getToken(controller.signal);
    await server.until(1);
    controller.abort();
    await rejection(aborting);
    const fetched = nextEvent("fetched");
    release();
    await fetched;
    expect(await source.getToken()).toBe(server.issued[0]);
    expect(server.requests).toHaveLength(1);
  });

  it("rejects an already aborted signal without a request", async () => {
    const source = cache().source(credential());
    const err = await rejection(source.getToken(AbortSignal.abort()));
    expect(err.code).toBe("canceled");
    expect(server.requests).toHaveLength(0);
  });
});

describe("stats and events", () => {
  it("counts signatures, requests, failures, hits and background refreshes exactly", async () => {
    const tokens = cache();
    const source = tokens.source(credential());
    const first = await source.getToken(); // sign + request
    await source.getToken(); // hit
    await source.getToken(); // hit
    await clock.advance(hour - 5 * minute);
    const refreshed = nextEvent("refreshed");
    await source.getToken(); // hit + background refresh (sign + request)
    await refreshed;
    await source.getToken(); // hit
    server.fallback = () => failing;
    source.invalidate(first); // stale: no effect
    source.invalidate(server.issued[1] ?? "");
    await rejection(source.getToken()); // sign + request + failure
    await rejection(source.getToken()); // fail fast: nothing counted
    expect(tokens.stats()).toEqual({
      jwtsSigned: 3,
      tokenRequests: 3,
      tokenFailures: 1,
      tokensFetched: 2,
      cacheHits: 4,
      backgroundRefreshes: 1,
      // The refreshed token was invalidated and its replacement failed: none held.
      tokensCached: 0,
      tokensEvicted: 0,
    });
  });

  it("never passes a token, JWT, key or upstream text to onEvent", async () => {
    const source = cache().source(credential());
    const first = await source.getToken();
    await clock.advance(hour - 5 * minute);
    const refreshed = nextEvent("refreshed");
    await source.getToken();
    await refreshed;
    source.invalidate(server.issued[1] ?? "");
    server.next.push((req) => ({
      status: 401,
      body: { error_code: "invalid_client", error_message: `rejected ${req.jwt}` },
    }));
    await rejection(source.getToken());

    expect(events.map((e) => e.type)).toEqual(["fetched", "refreshed", "invalidated", "failed"]);
    expect(events[0]).toMatchObject({
      type: "fetched",
      key: source.key,
      step: "token",
      lifetimeMs: hour,
      logId: "LOG1",
    });
    expect(events[3]).toMatchObject({
      type: "failed",
      code: "authentication",
      status: 401,
      cozeCode: "invalid_client",
      background: false,
      retryInMs: 1_000,
    });
    const text = JSON.stringify(events);
    const secrets = [first, ...server.issued, ...server.requests.map((r) => r.jwt)];
    expect(secrets).toHaveLength(6); // 2 tokens (the first twice) and 3 JWTs
    for (const secret of secrets) expect(text).not.toContain(secret);
    for (const line of appA.pem.split("\n").filter((l) => l.length > 20 && !l.startsWith("---"))) {
      expect(text).not.toContain(line);
    }
    expect(text).not.toContain("rejected");
  });

  it("keeps working when onEvent throws", async () => {
    const tokens = cache({
      onEvent: () => {
        throw new Error("logger down");
      },
    });
    expect(await tokens.source(credential()).getToken()).toBe(server.issued[0]);
  });
});

describe("credential validation", () => {
  const bad: Array<[string, Partial<CozeCredential>]> = [
    ["credential.baseUrl", { baseUrl: "api.coze.cn" }],
    ["credential.baseUrl", { baseUrl: "ftp://api.coze.cn" }],
    ["credential.baseUrl", { baseUrl: "https://api.coze.cn/?x=1" }],
    ["credential.clientId", { clientId: "" }],
    ["credential.publicKeyId", { publicKeyId: undefined as unknown as string }],
    ["credential.privateKey", { privateKey: "" as unknown as KeyObject }],
    ["credential.privateKey", { privateKey: appA.pem as unknown as KeyObject }],
    ["credential.privateKey", { privateKey: appA.publicKey }],
    ["credential.sessionName", { sessionName: " " }],
    ["credential.audience", { audience: "" }],
    ["credential.durationSeconds", { durationSeconds: 0 }],
    ["credential.durationSeconds", { durationSeconds: 86_400 }],
    ["credential.durationSeconds", { durationSeconds: 1.5 }],
    ["credential.accountId", { accountId: "1", enterpriseId: "e" }],
  ];
  for (const [field, patch] of bad) {
    it(`names ${field} when it is ${JSON.stringify(patch)}`, () => {
      const tokens = cache();
      expect(() => tokens.source({ ...credential(), ...patch })).toThrow(
        new RegExp(`^${field.replace(".", "\\.")}: `),
      );
      expect(() => tokens.source({ ...credential(), ...patch })).toThrow(TypeError);
    });
  }

  it("refuses another private key under a client id and key id already in use", () => {
    const tokens = cache();
    tokens.source(credential(appA));
    expect(() => tokens.source({ ...credential(appA), privateKey: appB.privateKey })).toThrow(
      /^credential\.privateKey: differs/,
    );
  });
});

describe("clear", () => {
  it("forgets tokens and aborts requests under way; counters stay", async () => {
    const tokens = cache();
    const source = tokens.source(credential());
    const first = await source.getToken();
    const release = server.hold();
    source.invalidate(first);
    const pending = source.getToken();
    await server.until(2);
    tokens.clear();
    // The old source starts from scratch at once, before the aborted request has settled.
    const fresh = source.getToken();
    expect((await rejection(pending)).code).toBe("canceled");
    // The aborted request left no backoff behind: this call joins the new request.
    const joined = source.getToken();
    await server.until(3);
    release();
    expect(await fresh).toBe(server.issued.at(-1));
    expect(await joined).toBe(server.issued.at(-1));
    expect(server.requests).toHaveLength(3);
    expect(tokens.source(credential())).not.toBe(source);
    expect(tokens.stats()).toMatchObject({ tokenRequests: 3, jwtsSigned: 3, tokenFailures: 1 });
  });
});
