import type { DescService } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { type GatewayConfig, parseDynamicName, resolveModel } from "../config/index.js";
import { CozeError } from "../coze/errors.js";
import { AudioService } from "../gen/cozegateway/v1/audio_pb.js";
import { ChatService } from "../gen/cozegateway/v1/chat_pb.js";
import { WorkflowService } from "../gen/cozegateway/v1/workflow_pb.js";
import type { CoreContext, CoreImpl } from "./core-context.js";
import type { ModelTable } from "./discovery-table.js";
import { channelHeader, GatewayError } from "./errors.js";
import {
  noteFailure,
  type RequestContext,
  type RequestUsage,
  requestContextKey,
} from "./request-context.js";
import type { ServiceImpls } from "./services.js";

/** What the meter knows of a model name. */
export interface ModelLabel {
  /** The name in metrics: see {@link RequestUsage.metricModel}. */
  metricModel: string;
  kind: string | undefined;
}

/** The longest model name a log line repeats; a caller's name can be anything. */
const maxLoggedModel = 128;

/**
 * Names models for metrics from the config alone, so a caller cannot add label series: a
 * configured or discovered route's name, or a name a key's allow-list spells out, stays itself; another name a
 * dynamic prefix routes (`workflow:123…`) becomes its prefix and `*` (`workflow:*`); a name no
 * route serves becomes `other`.
 */
export function createModelLabels(
  config: GatewayConfig,
  models: ModelTable,
): (model: string) => ModelLabel {
  const named = new Set(config.models.map((m) => m.name));
  for (const key of config.apiKeys) {
    for (const entry of key.models ?? []) {
      if (!entry.endsWith("*") && resolveModel(config, entry) !== undefined) named.add(entry);
    }
  }
  return (model) => {
    const route = models.resolveRoutes(model)[0];
    if (route === undefined) return { metricModel: "other", kind: undefined };
    // Discovered names are bounded too: at most `max_models` of each kind per channel.
    if (named.has(model) || models.info(model)?.discovered) {
      return { metricModel: model, kind: route.kind };
    }
    return { metricModel: `${parseDynamicName(model)?.prefix ?? ""}*`, kind: route.kind };
  };
}

/** The model a core request names: its `model`, else `bot:{bot_id}` or `workflow:{workflow_id}`. */
function modelOf(req: { model?: unknown; botId?: unknown; workflowId?: unknown }): string {
  if (typeof req.model === "string" && req.model !== "") return req.model;
  if (typeof req.botId === "string" && req.botId !== "") return `bot:${req.botId}`;
  if (typeof req.workflowId === "string" && req.workflowId !== "") {
    return `workflow:${req.workflowId}`;
  }
  return "";
}

/** Why a core call failed, as a stable reason and the field at fault. */
function failureOf(err: unknown, signal: AbortSignal): [string, string | undefined] {
  // An upstream call cut by the call's own abort: the abort says why (deadline, shutdown, client).
  if (signal.aborted && signal.reason instanceof ConnectError) {
    return [connectCodeName(signal.reason), undefined];
  }
  if (err instanceof GatewayError) {
    if (err.field === "model" && err.code === "permission_denied") {
      return ["model_not_allowed", "model"];
    }
    if (err.field === "model" && err.code === "not_found") return ["unknown_model", "model"];
    return [err.code, err.field];
  }
  if (err instanceof CozeError) return [`coze_${err.code}`, undefined];
  if (err instanceof ConnectError) return [connectCodeName(err), undefined];
  return ["internal", undefined];
}

/** A Connect code as its wire name: `DeadlineExceeded` → `deadline_exceeded`. */
function connectCodeName(err: ConnectError): string {
  return Code[err.code].replace(/[A-Z]/g, (c, i) => (i ? "_" : "") + c.toLowerCase());
}

/** A Coze usage as the contract carries it. */
interface UsageShape {
  inputCount?: number;
  outputCount?: number;
}

function addUsage(u: RequestUsage, usage: UsageShape | undefined): void {
  if (usage === undefined) return;
  u.promptTokens += usage.inputCount ?? 0;
  u.completionTokens += usage.outputCount ?? 0;
}

/** The usage a stream message carries: the `usage` of its event's value (completed, result). */
function streamUsage(message: unknown): UsageShape | undefined {
  const value = (message as { event?: { value?: { usage?: UsageShape } } }).event?.value;
  return value?.usage;
}

/**
 * Meters the core for both doors: each ChatService and WorkflowService call notes on its request's
 * context (when the server made one) the model it names, the model's metrics name and kind, the
 * channel that served it (the `x-gateway-channel` the core sets), the Coze usage in every answer
 * it returns, and why it failed. One wrapper for the Connect and REST doors alike, since both call
 * these instances. A call made in process, without a request context, runs as it is.
 */
export function meterServices(
  impls: ServiceImpls,
  label: (model: string) => ModelLabel,
): ServiceImpls {
  return {
    chat: meter(ChatService, impls.chat, label),
    workflow: meter(WorkflowService, impls.workflow, label),
    model: impls.model,
    audio: meter(AudioService, impls.audio, label),
  };
}

/** `impl` with every method metered. */
function meter<S extends DescService>(
  service: S,
  impl: CoreImpl<S>,
  label: (model: string) => ModelLabel,
): CoreImpl<S> {
  const out: Record<string, unknown> = {};
  const methods = impl as unknown as Record<string, (req: unknown, ctx: CoreContext) => unknown>;
  const begin = (rc: RequestContext, req: object, ctx: CoreContext): CoreContext => {
    // A request that calls the core more than once (a REST door's follow-up) keeps one record.
    let u = rc.usage;
    if (u === undefined || u.model === "") {
      const model = modelOf(req);
      const { metricModel, kind } =
        model === "" ? { metricModel: "", kind: undefined } : label(model);
      u = {
        model: model.length > maxLoggedModel ? `${model.slice(0, maxLoggedModel)}…` : model,
        metricModel,
        kind,
        channel: u?.channel,
        promptTokens: u?.promptTokens ?? 0,
        completionTokens: u?.completionTokens ?? 0,
      };
      rc.usage = u;
    }
    const record = u;
    const headers = ctx.responseHeader;
    return {
      signal: ctx.signal,
      values: ctx.values,
      responseHeader: {
        set(name, value) {
          if (name === channelHeader) record.channel = value;
          headers.set(name, value);
        },
      },
    };
  };
  for (const method of service.methods) {
    const fn = methods[method.localName];
    if (fn === undefined) continue;
    const call = fn.bind(impl);
    out[method.localName] =
      method.methodKind === "server_streaming"
        ? (req: object, ctx: CoreContext) => {
            const rc = ctx.values.get(requestContextKey);
            if (rc === undefined) return call(req, ctx);
            return meteredStream(rc, call(req, begin(rc, req, ctx)) as AsyncIterable<unknown>, ctx);
          }
        : async (req: object, ctx: CoreContext) => {
            const rc = ctx.values.get(requestContextKey);
            if (rc === undefined) return call(req, ctx);
            const metered = begin(rc, req, ctx);
            try {
              const res = (await call(req, metered)) as { usage?: UsageShape };
              if (rc.usage !== undefined) addUsage(rc.usage, res.usage);
              return res;
            } catch (err) {
              noteFailure(rc, ...failureOf(err, ctx.signal));
              throw err;
            }
          };
  }
  return out as CoreImpl<S>;
}

async function* meteredStream<T>(
  rc: RequestContext,
  source: AsyncIterable<T>,
  ctx: CoreContext,
): AsyncGenerator<T> {
  try {
    for await (const message of source) {
      if (rc.usage !== undefined) addUsage(rc.usage, streamUsage(message));
      yield message;
    }
  } catch (err) {
    noteFailure(rc, ...failureOf(err, ctx.signal));
    throw err;
  }
}
