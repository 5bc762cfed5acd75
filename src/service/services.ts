import type { DescService } from "@bufbuild/protobuf";
import type { ConnectRouter, HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type { GatewayConfig } from "../config/index.js";
import type { Clock } from "../coze/clock.js";
import { AudioService } from "../gen/cozegateway/v1/audio_pb.js";
import { ChatService } from "../gen/cozegateway/v1/chat_pb.js";
import { ModelService } from "../gen/cozegateway/v1/model_pb.js";
import { WorkflowService } from "../gen/cozegateway/v1/workflow_pb.js";
import type { AsyncFallbackEvent } from "./async-fallback.js";
import { createAudioService } from "./audio-service.js";
import type { Channels } from "./channels.js";
import { createChatService } from "./chat-service.js";
import type { CoreContext, CoreImpl } from "./core-context.js";
import { createModelTable, type ModelTable } from "./discovery-table.js";
import { toConnectError, withoutSentHeaders } from "./errors.js";
import type { HeldRuns } from "./held-runs.js";
import { createModelService } from "./model-service.js";
import { createRouter } from "./routing.js";
import { createRunWatchers } from "./run-watchers.js";
import { createModelLabels, meterServices } from "./usage-meter.js";
import { createVoiceDirectory } from "./voice-directory.js";
import { createWorkflowService } from "./workflow-service.js";

/** Options for {@link createServices}. */
export interface ServicesOptions {
  config: GatewayConfig;
  channels: Channels;
  /**
   * The model names served: the config's routes plus what discovery finds. Default a table of
   * the config's routes alone (nothing discovered).
   */
  models?: ModelTable;
  /** Clock for progress events' elapsed time. Default `Date.now`. */
  now?: () => number;
  /** Random source in [0, 1) for the weighted choice among failover channels. */
  random?: () => number;
  /** Called when a shared async-run poll loop starts; returns the function called when it ends. */
  onPollStarted?: () => () => void;
  /** Where held runs wait and read the time. Default the system clock. */
  clock?: Clock;
  /**
   * The runs the gateway holds itself when Coze refuses `is_async` (`held-runs.ts`); the owner
   * closes them at shutdown. Default a registry of the workflow service's own.
   */
  heldRuns?: HeldRuns;
  /** Told each time an async run falls back to a held run. */
  onAsyncFallback?: (event: AsyncFallbackEvent) => void;
}

/**
 * The core: the service implementations, shared by the Connect door and the REST doors.
 * Their methods take a {@link CoreContext}; a Connect `HandlerContext` is one.
 */
export interface ServiceImpls {
  chat: CoreImpl<typeof ChatService>;
  workflow: CoreImpl<typeof WorkflowService>;
  model: CoreImpl<typeof ModelService>;
  audio: CoreImpl<typeof AudioService>;
}

/**
 * Creates the ChatService, WorkflowService, ModelService and AudioService implementations on
 * one router, so the Connect routes and the REST shim call the very same instances, metered for
 * both (`usage-meter.ts`: model, channel, Coze usage and failure reason on each request's context).
 */
export function createServiceImpls(options: ServicesOptions): ServiceImpls {
  const models = options.models ?? createModelTable(options.config);
  const router = createRouter(models, options.channels, options.random);
  const impls: ServiceImpls = {
    chat: createChatService({ router }),
    workflow: createWorkflowService({
      router,
      now: options.now,
      watchers: createRunWatchers({ onPollStarted: options.onPollStarted }),
      clock: options.clock,
      held: options.heldRuns,
      onAsyncFallback: options.onAsyncFallback,
    }),
    model: createModelService(models),
    audio: createAudioService({ router, voices: createVoiceDirectory({ now: options.now }) }),
  };
  return meterServices(impls, createModelLabels(options.config, models));
}

/**
 * The Connect door: registers the implementations on a Connect router, each method wrapped so
 * that what the core throws becomes a `ConnectError` once ({@link toConnectError}). Wrapping the
 * methods rather than adding an interceptor keeps the router's own interceptors in force.
 */
export function serviceRoutes(impls: ServiceImpls): (router: ConnectRouter) => void {
  const chat = connectDoor(ChatService, impls.chat);
  const workflow = connectDoor(WorkflowService, impls.workflow);
  const model = connectDoor(ModelService, impls.model);
  const audio = connectDoor(AudioService, impls.audio);
  return (r) => {
    r.service(ChatService, chat);
    r.service(WorkflowService, workflow);
    r.service(ModelService, model);
    r.service(AudioService, audio);
  };
}

/** `impl` with every method's failures mapped by {@link toConnectError}. */
function connectDoor<S extends DescService>(service: S, impl: CoreImpl<S>): ServiceImpl<S> {
  const out: Record<string, unknown> = {};
  const methods = impl as unknown as Record<string, (req: unknown, ctx: HandlerContext) => unknown>;
  for (const method of service.methods) {
    const fn = methods[method.localName];
    if (fn === undefined) continue;
    const call = fn.bind(impl);
    out[method.localName] =
      method.methodKind === "server_streaming"
        ? (req: unknown, ctx: HandlerContext) =>
            mapStreamErrors(call(req, ctx) as AsyncIterable<unknown>, ctx)
        : async (req: unknown, ctx: HandlerContext) => {
            try {
              return await call(req, ctx);
            } catch (err) {
              throw withoutSentHeaders(toConnectError(err, ctx.signal), ctx.responseHeader);
            }
          };
  }
  return out as ServiceImpl<S>;
}

async function* mapStreamErrors<T>(source: AsyncIterable<T>, ctx: HandlerContext) {
  try {
    yield* source;
  } catch (err) {
    throw withoutSentHeaders(toConnectError(err, ctx.signal), ctx.responseHeader);
  }
}

/**
 * Registers ChatService, WorkflowService, ModelService and AudioService on a Connect router. The same
 * function serves the real server and in-process tests (`createRouterTransport`).
 */
export function createServices(options: ServicesOptions): (router: ConnectRouter) => void {
  return serviceRoutes(createServiceImpls(options));
}
