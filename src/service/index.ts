export { type Caller, callerKey, callerOf, mayUse, tenantOf } from "./caller.js";
export { type Channel, type Channels, type ChannelsOptions, createChannels } from "./channels.js";
export { chatResponseOf, createChatService } from "./chat-service.js";
export { errorHeaders, invalidArgument, toConnectError } from "./errors.js";
export { createModelInfo, type ModelInfo } from "./model-info.js";
export { createModelService } from "./model-service.js";
export {
  beginRequest,
  type RequestContext,
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
