import { randomUUID } from "node:crypto";
import { type Caller, type ModelInfo, requestOf, type ServiceImpls } from "../service/index.js";
import type { AnswerFormat } from "./answer-format.js";
import { createAudioRoutes } from "./audio-door.js";
import { type BillingSource, billingPaths, serveBilling } from "./billing.js";
import { botCompletion, botStream } from "./bot-completion.js";
import { type CompletionMeta, chatCompletionFormat } from "./completion-format.js";
import type { InterruptReplies } from "./interrupt-replies.js";
import { listModels, modelNotFound, retrieveModel } from "./models.js";
import type { NodeRequest, NodeResponse } from "./node-types.js";
import { OpenAiError, toOpenAiError } from "./openai-error.js";
import { type ChatCompletionRequest, parseChatCompletionRequest } from "./parse-request.js";
import { parseResponseRequest } from "./parse-response-request.js";
import { readBody } from "./read-body.js";
import { sendJsonText, sendOpenAiError } from "./respond.js";
import { responseFormat } from "./response-format.js";
import { toTurnRequest } from "./response-input.js";
import type { ErrorHook, LogFn, Turn } from "./turn.js";
import { workflowCompletion, workflowStream } from "./workflow-completion.js";
import {
  answerRunLookup,
  lookupRequest,
  parseRunLookup,
  workflowRunsPath,
} from "./workflow-runs.js";

/** Options of {@link createOpenAiHandler}. */
export interface OpenAiHandlerOptions {
  /** The same service instances the Connect router serves. */
  services: ServiceImpls;
  /** What a model name runs (`createModelInfo` of the service layer). */
  modelInfo: (model: string) => ModelInfo | undefined;
  /** The largest request body accepted, in bytes (the server's `bodyLimitBytes`). */
  bodyLimitBytes: number;
  /** Longest silence on a stream before a `: keep-alive` comment, in ms. Default 15 000. */
  heartbeatMs?: number;
  /** Clock for `created`, in ms since the epoch. Default `Date.now`. */
  now?: () => number;
  /** Receives unexpected failures, by error name only. */
  log?: LogFn;
  /**
   * Called when an event stream starts; the returned function is called once when it ends
   * (for the active-streams metric).
   */
  onStreamOpened?: () => () => void;
  /**
   * The calling key's usage and quota, for `GET /v1/dashboard/billing/subscription` and
   * `/usage`; without it those paths are unknown (404).
   */
  billing?: BillingSource;
  /**
   * What a reply to a workflow's question resumes (issue 16, `interrupt-replies.ts`); without
   * it a reply starts a new run and only `event_id` resumes.
   */
  replies?: InterruptReplies;
}

/**
 * The handler of the OpenAI-compatible API: `true` when it answered the request, `false` for a
 * path it does not serve. `shutdown` aborts when the server shuts down (streams end then),
 * `hardStop` when its grace period is over (unary answers end then, 503).
 */
export type OpenAiHandler = (
  req: NodeRequest,
  res: NodeResponse,
  caller: Caller,
  shutdown?: AbortSignal,
  hardStop?: AbortSignal,
) => Promise<boolean>;

/** A request target without its query string. */
export function pathOf(url: string): string {
  const q = url.indexOf("?");
  return q === -1 ? url : url.slice(0, q);
}

const defaultHeartbeatMs = 15_000;

/**
 * Creates the OpenAI-compatible REST shim (issue #4): `POST /v1/chat/completions` and
 * `POST /v1/responses` (issue 14; stream and non-stream; bots, chatflows, `workflow:{id}` and
 * `workflow-async:{id}`), `GET /v1/models` and `GET /v1/models/{id}`; `/v1/responses/{id}`
 * answers 404, as nothing is stored. It translates OpenAI requests into calls of the service
 * methods, in process, and their results into OpenAI JSON or SSE events; it knows nothing of
 * Coze. The server has authenticated the caller already. Never throws: bad input is a 4xx OpenAI error,
 * an unexpected failure a 500 "internal error" (logged by name only).
 */
export function createOpenAiHandler(options: OpenAiHandlerOptions): OpenAiHandler {
  const { services, modelInfo, bodyLimitBytes } = options;
  const heartbeatMs = options.heartbeatMs ?? defaultHeartbeatMs;
  const now = options.now ?? Date.now;
  const log: LogFn = options.log ?? (() => {});
  const audio = createAudioRoutes({ services, bodyLimitBytes, log });

  /** A request's body as text, or `undefined` once it was answered with 413. */
  async function bodyOf(req: NodeRequest, res: NodeResponse): Promise<string | undefined> {
    const text = await readBody(req, bodyLimitBytes);
    if (text !== undefined) return text;
    // Same answer as the server's for a declared Content-Length over the limit.
    const close: Record<string, string> = req.httpVersionMajor === 1 ? { connection: "close" } : {};
    sendOpenAiError(
      res,
      new OpenAiError(
        413,
        {
          message: `request body larger than ${bodyLimitBytes} bytes`,
          type: "invalid_request_error",
          code: "request_too_large",
          param: null,
        },
        close,
      ),
    );
    return undefined;
  }

  /** The parts of a turn that come from the HTTP request and the handler's options. */
  function turnOf(
    call: Call,
    request: ChatCompletionRequest,
    meta: CompletionMeta,
    format: AnswerFormat,
    rename?: ErrorHook,
  ): Turn {
    const [req, res, caller, shutdown, hardStop] = call;
    return {
      request,
      res,
      caller,
      context: requestOf(req),
      shutdown,
      hardStop,
      meta,
      format,
      rename,
      services,
      heartbeatMs,
      log,
      onStreamOpened: options.onStreamOpened,
    };
  }

  async function completions(call: Call): Promise<void> {
    const [req, res] = call;
    const text = await bodyOf(req, res);
    if (text === undefined) return;
    const request = parseChatCompletionRequest(text, conversationHeaderOf(req));
    const meta = {
      id: `chatcmpl-${randomUUID().replaceAll("-", "")}`,
      model: request.model,
      created: Math.floor(now() / 1000),
    };
    const turn = turnOf(call, request, meta, chatCompletionFormat(meta, request.includeUsage));
    await answer(turn, modelInfo(request.model));
  }

  async function responses(call: Call): Promise<void> {
    const [req, res] = call;
    const text = await bodyOf(req, res);
    if (text === undefined) return;
    const parsed = parseResponseRequest(text, conversationHeaderOf(req));
    const info = modelInfo(parsed.model);
    const workflow = info?.kind === "workflow" || info?.kind === "workflow_async";
    const { request, rename } = toTurnRequest(parsed, workflow);
    const createdAt = Math.floor(now() / 1000);
    const format = responseFormat(
      { model: parsed.model, createdAt, echo: parsed.echo, now },
      !workflow,
    );
    const meta = { id: "", model: parsed.model, created: createdAt };
    try {
      await answer(turnOf(call, request, meta, format, rename), info);
    } catch (err) {
      // What the producers throw before a service call: mapping and workflow input errors.
      throw err instanceof OpenAiError ? rename(err) : err;
    }
  }

  /** Runs a turn on what its model names: a workflow run, or a bot or chatflow turn. */
  async function answer(asked: Turn, info: ModelInfo | undefined): Promise<void> {
    const turn = info && options.replies ? await options.replies.prepare(asked, info.kind) : asked;
    if (info?.kind === "workflow" || info?.kind === "workflow_async") {
      if (turn.request.stream) await workflowStream(turn, info.kind, info.inputField);
      else await workflowCompletion(turn, info.kind, info.inputField);
      return;
    }
    // Bots and chatflows; an unknown model goes to ChatService too, which answers NotFound.
    if (turn.request.stream) await botStream(turn);
    else await botCompletion(turn);
  }

  /** `GET /v1/workflow_runs/{execute_id}` (issue 16): read a run, or re-attach to it. */
  async function runs(call: Call, rawId: string): Promise<void> {
    const lookup = parseRunLookup(call[0].url ?? "/", rawId);
    const meta = {
      id: `chatcmpl-${randomUUID().replaceAll("-", "")}`,
      model: lookup.model,
      created: Math.floor(now() / 1000),
    };
    const format = chatCompletionFormat(meta, false);
    await answerRunLookup(turnOf(call, lookupRequest(lookup), meta, format), lookup);
  }

  async function models(res: NodeResponse, caller: Caller, id: string | undefined) {
    if (id === undefined) {
      const list = await listModels(services, caller, res);
      sendJsonText(res, 200, JSON.stringify({ object: "list", data: list }));
      return;
    }
    const found = retrieveModel(modelInfo(id), caller, id);
    if (found) sendJsonText(res, 200, JSON.stringify(found));
    else sendOpenAiError(res, modelNotFound(id));
  }

  return async (req, res, caller, shutdown, hardStop) => {
    const path = pathOf(req.url ?? "/");
    const method = req.method ?? "GET";
    const call: Call = [req, res, caller, shutdown, hardStop];
    try {
      if (path === "/v1/chat/completions") {
        if (method !== "POST") sendOpenAiError(res, notAllowed(method, "POST", res));
        else await completions(call);
        return true;
      }
      if (path === "/v1/responses") {
        if (method !== "POST") sendOpenAiError(res, notAllowed(method, "POST", res));
        else await responses(call);
        return true;
      }
      if (path.startsWith(workflowRunsPath)) {
        if (method !== "GET") sendOpenAiError(res, notAllowed(method, "GET", res));
        else await runs(call, path.slice(workflowRunsPath.length));
        return true;
      }
      if (path.startsWith("/v1/responses/")) {
        sendOpenAiError(res, notStored(method, res));
        return true;
      }
      if (
        options.billing !== undefined &&
        (path === billingPaths.subscription || path === billingPaths.usage)
      ) {
        if (method !== "GET" && method !== "HEAD") {
          sendOpenAiError(res, notAllowed(method, "GET", res));
        } else await serveBilling(path, res, caller, options.billing);
        return true;
      }
      if (path === "/v1/models" || path.startsWith("/v1/models/")) {
        const id = path === "/v1/models" ? undefined : decodeId(path.slice("/v1/models/".length));
        if (method !== "GET" && method !== "HEAD") {
          sendOpenAiError(res, notAllowed(method, "GET", res));
        } else if (id === "") sendOpenAiError(res, modelNotFound(""));
        else await models(res, caller, id);
        return true;
      }
      if (path.startsWith("/v1/audio/"))
        return await audio(path, method, { req, res, caller, hardStop });
      return false;
    } catch (err) {
      if (!(err instanceof OpenAiError)) {
        log("error", "REST request failed with an unexpected error", {
          path,
          error: err instanceof Error ? err.name : typeof err,
        });
      }
      // A client that went away (aborted upload, closed stream) gets nothing.
      if (!res.destroyed) sendOpenAiError(res, toOpenAiError(err));
      return true;
    }
  };
}

/** The request as the handler got it. */
type Call = [
  req: NodeRequest,
  res: NodeResponse,
  caller: Caller,
  shutdown: AbortSignal | undefined,
  hardStop: AbortSignal | undefined,
];

function conversationHeaderOf(req: NodeRequest): string | undefined {
  const header = req.headers["x-coze-conversation-id"];
  return typeof header === "string" ? header : undefined;
}

/**
 * The answer under `/v1/responses/{id}` (retrieve, delete, input items, cancel): the gateway
 * stores no response, so there is none to read, delete or cancel (an id carries only the Coze
 * conversation that `previous_response_id` continues). Other methods get 405.
 */
function notStored(method: string, res: NodeResponse): OpenAiError {
  if (!["GET", "HEAD", "DELETE", "POST"].includes(method)) {
    return notAllowed(method, "GET, DELETE", res);
  }
  return new OpenAiError(404, {
    message:
      "the gateway does not store responses: there is none to retrieve, delete or cancel; continue a response with previous_response_id",
    type: "invalid_request_error",
    code: "not_found",
    param: null,
  });
}

function decodeId(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    return "";
  }
}

function notAllowed(method: string, allowed: string, res: NodeResponse): OpenAiError {
  res.setHeader("allow", allowed);
  return new OpenAiError(405, {
    message: `method ${method.slice(0, 16)} not allowed here; use ${allowed}`,
    type: "invalid_request_error",
    code: "method_not_allowed",
    param: null,
  });
}
