// The upstream failure type the core passes on: doors map it without importing coze/.
export { CozeError, type CozeErrorCode, suggestedRetryAfterMs } from "../coze/errors.js";
export type { AsyncFallbackEvent } from "./async-fallback.js";
export { audioLimits } from "./audio-checks.js";
export { createAudioService } from "./audio-service.js";
export { type Caller, callerKey, callerOf, mayUse, tenantOf } from "./caller.js";
export { type ChannelGate, createChannelGate, type GateRefusal } from "./channel-gate.js";
export {
  type Channel,
  type Channels,
  type ChannelsOptions,
  createChannels,
  type PoolRef,
  poolsOf,
  sameChannelConfig,
} from "./channels.js";
export { chatResponseOf, createChatService } from "./chat-service.js";
export type { CoreContext, CoreImpl } from "./core-context.js";
export {
  createDiscovery,
  type Discovery,
  type DiscoveryEvent,
  type DiscoveryOptions,
} from "./discovery.js";
export {
  createModelTable,
  type DiscoveredItem,
  type ListedModel,
  type ModelTable,
  type TableChange,
} from "./discovery-table.js";
export {
  errorHeaders,
  GatewayError,
  type GatewayErrorCode,
  invalidArgument,
  type LimitFacts,
  type LimitKind,
  toConnectError,
  upstreamMessage,
} from "./errors.js";
export { heldGoesOnText, heldLostText, isHeldRunHandle } from "./held-run-id.js";
export { createHeldRuns, type HeldRuns } from "./held-runs.js";
export { createModelInfo, type ModelInfo } from "./model-info.js";
export { createModelService } from "./model-service.js";
export {
  beginRequest,
  noteFailure,
  type RequestContext,
  type RequestFailure,
  type RequestUsage,
  requestContextKey,
  requestOf,
  traceOf,
} from "./request-context.js";
export { createRouter, type Router, type Target } from "./routing.js";
export {
  createServiceImpls,
  createServices,
  type ServiceImpls,
  type ServicesOptions,
  serviceRoutes,
} from "./services.js";
export { createTenant, type HandleKind, inProcessTenant, type Tenant } from "./tenant.js";
export { createWorkflowService } from "./workflow-service.js";
