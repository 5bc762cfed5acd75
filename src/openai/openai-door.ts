import type { Caller } from "../service/index.js";
import { audioPaths } from "./audio-door.js";
import { billingPaths } from "./billing.js";
import type { NodeRequest, NodeResponse } from "./node-types.js";
import { OpenAiError, type OpenAiErrorType } from "./openai-error.js";
import { createOpenAiHandler, type OpenAiHandlerOptions, pathOf } from "./openai-handler.js";
import { sendOpenAiError } from "./respond.js";
import { workflowRunsPath } from "./workflow-runs.js";

/**
 * What the server refused on this door's behalf (401, 404, 413, 429, 503, …), as data: the
 * door words it as an OpenAI error body.
 */
export interface ServerRefusal {
  status: number;
  /** The server's stable code: `unauthenticated`, `too_large`, `too_many_streams`, … */
  code: string;
  message: string;
  headers?: Record<string, string>;
}

/**
 * The OpenAI-compatible API as a door the server mounts at `/v1`: its handler (the caller is
 * authenticated already; `shutdown` aborts when the server shuts down and open streams end then,
 * `hardStop` when its grace period is over and unary answers end then with a 503), its route
 * labels, and its wording of the server's refusals.
 */
export interface OpenAiDoor {
  readonly path: "/v1";
  readonly auth: "key";
  label(method: string, path: string): string;
  handle(
    req: NodeRequest,
    res: NodeResponse,
    call: { caller: Caller | undefined; shutdown: AbortSignal; hardStop: AbortSignal },
  ): Promise<boolean>;
  writeError(res: NodeResponse, refusal: ServerRefusal): void;
  /** False for the billing reads: they do not count against the key's limits. */
  metered(method: string, path: string): boolean;
}

/** OpenAI's error type and code for each refusal of the server. */
const refusalWords: Record<string, [OpenAiErrorType, string]> = {
  bad_request: ["invalid_request_error", "bad_request"],
  unauthenticated: ["invalid_request_error", "invalid_api_key"],
  forbidden: ["permission_error", "forbidden"],
  not_found: ["invalid_request_error", "not_found"],
  method_not_allowed: ["invalid_request_error", "method_not_allowed"],
  request_timeout: ["invalid_request_error", "request_timeout"],
  too_large: ["invalid_request_error", "request_too_large"],
  too_many_streams: ["rate_limit_error", "too_many_streams"],
  // A key's own limits, as OpenAI words them (the gateway's, not Coze's: issue 15).
  requests_limited: ["requests", "rate_limit_exceeded"],
  tokens_limited: ["tokens", "rate_limit_exceeded"],
  quota_exhausted: ["insufficient_quota", "insufficient_quota"],
  unavailable: ["server_error", "unavailable"],
};

/** What a 404 for an unknown path under `/v1` lists. */
const served =
  "POST /v1/chat/completions, POST /v1/responses, GET /v1/models, GET /v1/models/{id}, GET /v1/workflow_runs/{execute_id}, POST /v1/audio/speech, POST /v1/audio/transcriptions, GET /v1/audio/voices, GET /v1/dashboard/billing/subscription and GET /v1/dashboard/billing/usage";

/**
 * Writes a refusal of the server as an OpenAI error body. An unknown path under `/v1` also says
 * what is served there.
 */
export function writeRefusal(res: NodeResponse, refusal: ServerRefusal): void {
  const [type, code] = refusalWords[refusal.code] ?? ["server_error", "internal_error"];
  const message =
    refusal.code === "not_found"
      ? `unknown path ${JSON.stringify(pathOf(res.req.url ?? "/").slice(0, 64))}; this API serves ${served}`
      : refusal.message;
  sendOpenAiError(
    res,
    new OpenAiError(refusal.status, { message, type, code, param: null }, refusal.headers),
  );
}

/** Bounded route labels: the served routes by name, everything else `other`. */
function label(method: string, path: string): string {
  if (path.startsWith("/v1/models/")) return `${method} /v1/models/{id}`;
  if (path.startsWith("/v1/responses/")) return `${method} /v1/responses/{id}`;
  if (path.startsWith(workflowRunsPath)) return `${method} /v1/workflow_runs/{id}`;
  return routes.has(path) ? `${method} ${path}` : `${method} other`;
}

const routes = new Set([
  "/v1/chat/completions",
  "/v1/models",
  "/v1/responses",
  ...audioPaths,
  billingPaths.subscription,
  billingPaths.usage,
]);

/**
 * The OpenAI-compatible API as a door: {@link createOpenAiHandler} behind the path, labels and
 * error wording the server needs to mount it.
 */
export function createOpenAiDoor(options: OpenAiHandlerOptions): OpenAiDoor {
  const handler = createOpenAiHandler(options);
  return {
    path: "/v1",
    auth: "key",
    label,
    handle(req, res, call) {
      // A key door: the server authenticated the caller before calling.
      return handler(req, res, call.caller as Caller, call.shutdown, call.hardStop);
    },
    writeError: writeRefusal,
    metered: (_method, path) => !path.startsWith("/v1/dashboard/"),
  };
}
