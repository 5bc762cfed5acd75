import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { ADMIN_PREFIX, handleAdmin } from "./admin.js";
import type { ChatRecord } from "./chat-model.js";
import { cozeErrorText } from "./coze-error-texts.js";
import { createFaultStore, type FaultPlan } from "./faults.js";
import { ApiError, type Ctx, sendError, sendJson } from "./http-io.js";
import { newLogId } from "./ids.js";
import { generateApp, parseRsaPublicKey } from "./keys.js";
import { createRequestRecorder } from "./request-record.js";
import { matchRoute } from "./routes.js";
import { createSpace } from "./space.js";
import { audiences, type EmulatorState } from "./state.js";
import { createStats } from "./stats.js";
import { sleep } from "./timing.js";
import { handleToken } from "./token-endpoint.js";
import { bearer, createPat, createTokenStore, permits } from "./tokens.js";
import type { Emulator, EmulatorApp, EmulatorOptions, EndpointName } from "./types.js";

/**
 * Starts a Coze emulator on `options.host` (default 127.0.0.1) and `options.port` (default 0).
 * Resolves once it listens; rejects when it cannot (e.g. the port is taken). See
 * `coze-api.md` §7 for the behaviour and {@link EmulatorOptions} for the knobs.
 */
export async function startEmulator(options: EmulatorOptions = {}): Promise<Emulator> {
  const shutdown = new AbortController();
  const extraAudiences = [...(options.audiences ?? [])];
  let ownHost = "";
  const state: EmulatorState = {
    now: options.now ?? Date.now,
    timing: {
      deltaMs: options.timing?.deltaMs ?? 0,
      slowDeltaMs: options.timing?.slowDeltaMs ?? 50,
      pingMs: options.timing?.pingMs ?? 1000,
    },
    authErrorStatus: options.authErrorStatus ?? 401,
    chatsOnDisconnect: options.chatsOnDisconnect ?? "cancel",
    apps: new Map(),
    usedJti: new Map(),
    tokens: createTokenStore(),
    faults: createFaultStore(),
    stats: createStats(() => runningChats(state.chats)),
    requests: createRequestRecorder(),
    conversations: new Map(),
    chats: new Map(),
    runs: new Map(),
    interrupts: new Map(),
    files: new Map(),
    space: createSpace(options.now ?? Date.now),
    shutdown: shutdown.signal,
    audiencesFor: (hostHeader) => audiences(ownHost, hostHeader, extraAudiences),
  };

  const addApp = (app: EmulatorApp) => {
    if (!app.clientId || !app.publicKeyId)
      throw new TypeError("clientId and publicKeyId are required");
    const key = parseRsaPublicKey(app.publicKeyPem);
    state.apps.set(app.publicKeyId, {
      clientId: app.clientId,
      publicKeyId: app.publicKeyId,
      key,
      accountIds: new Set(app.accountIds ?? []),
      enterpriseIds: new Set(app.enterpriseIds ?? []),
    });
  };
  for (const app of options.apps ?? []) addApp(app);

  const sockets = new Set<Socket>();
  const control = {
    faults: { inject: state.faults.inject, clear: state.faults.clear },
    stats: () => state.stats.snapshot(),
    requests: () => state.requests.list(),
    revokeAllTokens: () => state.tokens.revokeAll(),
    reset: () => {
      state.faults.clear();
      state.stats.reset();
      state.requests.clear();
      state.tokens.clearRevocations();
    },
  };
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://emulator").pathname;
    const done = path.startsWith(ADMIN_PREFIX)
      ? handleAdmin(control, req, res, path)
      : handleApi(state, req, res);
    done.catch(() => res.destroy());
  });
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    // A backlog like a real front end's: Node's default (511) drops connections in a burst.
    const listen = { host: options.host ?? "127.0.0.1", port: options.port ?? 0, backlog: 4096 };
    server.listen(listen, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const hostName = address.family === "IPv6" ? `[${address.address}]` : address.address;
  ownHost = `${hostName}:${address.port}`;

  let closing: Promise<void> | undefined;
  return {
    url: `http://${ownHost}`,
    host: ownHost,
    addApp,
    space: state.space,
    async createApp(appOptions) {
      const app = await generateApp(appOptions);
      addApp(app);
      return app;
    },
    createPat: (patOptions = {}) => createPat(state.tokens, patOptions, state.now()),
    ...control,
    close() {
      closing ??= new Promise<void>((resolve) => {
        shutdown.abort();
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

const NO_FAULTS: FaultPlan = { latencyMs: 0, tokenDown: false };

/** Chats still `created` or `in_progress`. */
function runningChats(chats: ReadonlyMap<string, ChatRecord>): number {
  let n = 0;
  for (const chat of chats.values()) {
    if (chat.status === "created" || chat.status === "in_progress") n++;
  }
  return n;
}

/**
 * One API call: count it, apply its faults (latency, then status), then the token endpoint or
 * the bearer check (4100 with `authErrorStatus`, §7.3; 4101 for a personal access token without
 * the permission, §11.3) and the handler. {@link ApiError}s become
 * Coze error envelopes; anything else a 500 `{code:5000}`.
 */
async function handleApi(
  state: EmulatorState,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const url = new URL(req.url ?? "/", "http://emulator");
  const route = matchRoute(req.method ?? "GET", url.pathname);
  // The `Date` header follows the emulator clock, like `expires_in` and every timestamp: a client
  // that measures token lifetime on the server's clock (§2.3) must see one consistent clock.
  res.setHeader("Date", new Date(state.now()).toUTCString());
  const gone = new AbortController();
  res.once("close", () => gone.abort());
  const base = {
    req,
    res,
    url,
    logid: newLogId(state.now()),
    signal: AbortSignal.any([gone.signal, state.shutdown]),
    stats: state.stats,
  };
  if (!route) {
    sendError(
      { ...base, plan: NO_FAULTS },
      4000,
      `no such endpoint: ${req.method} ${url.pathname}`,
      404,
    );
    return;
  }
  state.stats.call(route.endpoint);
  state.requests.record(route.endpoint, req.method ?? "GET", url.pathname, base.logid, req.headers);
  const ctx: Ctx = { ...base, plan: state.faults.take(route.endpoint) };
  try {
    if (ctx.plan.latencyMs > 0 && !(await sleep(ctx.plan.latencyMs, ctx.signal))) return;
    if (ctx.plan.status) {
      sendStatusFault(ctx, route.endpoint, ctx.plan.status);
      return;
    }
    if (!route.handle) {
      await handleToken(state, ctx);
      return;
    }
    const token = state.tokens.check(bearer(req.headers.authorization), state.now());
    if (!token) {
      sendError(ctx, 4100, "authentication is invalid", state.authErrorStatus);
      return;
    }
    // A personal access token without this permission point (§11.3).
    if (!permits(token, route.endpoint)) {
      sendError(ctx, 4101, "no permission to access this resource", state.authErrorStatus);
      return;
    }
    await route.handle(state, ctx, token);
  } catch (error) {
    if (res.headersSent) {
      res.destroy();
    } else if (error instanceof ApiError) {
      sendError(ctx, error.code, error.msg, error.httpStatus);
    } else {
      sendError(ctx, 5000, "internal error", 500);
    }
  }
}

/**
 * A `status` or `coze_error` fault: the API endpoints get a Coze envelope (429 → 4013, which js maps to
 * `RateLimitError`; 5xx → 5000; other statuses → 4000, §1.5); the token endpoint gets the flat
 * OAuth error shape it always uses (§2.4). `Retry-After` is set when the fault has one.
 */
function sendStatusFault(
  ctx: Ctx,
  endpoint: EndpointName,
  fault: { status: number; retryAfterSeconds?: number; cozeCode?: number },
): void {
  const headers: Record<string, string> =
    fault.retryAfterSeconds === undefined ? {} : { "Retry-After": String(fault.retryAfterSeconds) };
  const { status } = fault;
  if (fault.cozeCode !== undefined) {
    // A `coze_error` fault: Coze's envelope for the code, on any endpoint (§17.1, §17.3).
    sendError(ctx, fault.cozeCode, cozeErrorText(fault.cozeCode), status, {}, headers);
    return;
  }
  if (endpoint === "token") {
    const code =
      status >= 500 ? "internal_error" : status === 429 ? "rate_limit_exceeded" : "invalid_request";
    const message = status >= 500 ? "Service internal error." : `request refused (HTTP ${status})`;
    sendJson(ctx, status, { error_code: code, error_message: message, error: code }, headers);
    return;
  }
  if (status === 429) {
    sendError(ctx, 4013, "Model's request rate limit exceeded", status, {}, headers);
  } else if (status >= 500) {
    sendError(ctx, 5000, "internal error", status, {}, headers);
  } else {
    sendError(ctx, 4000, `request refused (HTTP ${status})`, status, {}, headers);
  }
}
