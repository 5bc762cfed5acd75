import type { ConnectRouter, ServiceImpl } from "@connectrpc/connect";
import type { GatewayConfig } from "../config/index.js";
import { ChatService } from "../gen/cozegateway/v1/chat_pb.js";
import { ModelService } from "../gen/cozegateway/v1/model_pb.js";
import { WorkflowService } from "../gen/cozegateway/v1/workflow_pb.js";
import type { Channels } from "./channels.js";
import { createChatService } from "./chat-service.js";
import { createModelService } from "./model-service.js";
import { createRouter } from "./routing.js";
import { createRunWatchers } from "./run-watchers.js";
import { createWorkflowService } from "./workflow-service.js";

/** Options for {@link createServices}. */
export interface ServicesOptions {
  config: GatewayConfig;
  channels: Channels;
  /** Clock for progress events' elapsed time. Default `Date.now`. */
  now?: () => number;
  /** Random source in [0, 1) for the weighted choice among failover channels. */
  random?: () => number;
  /** Called when a shared async-run poll loop starts; returns the function called when it ends. */
  onPollStarted?: () => () => void;
}

/** The three service implementations, shared by the Connect router and the REST shim. */
export interface ServiceImpls {
  chat: ServiceImpl<typeof ChatService>;
  workflow: ServiceImpl<typeof WorkflowService>;
  model: ServiceImpl<typeof ModelService>;
}

/**
 * Creates the ChatService, WorkflowService and ModelService implementations on one router, so
 * the Connect routes and the REST shim call the very same instances.
 */
export function createServiceImpls(options: ServicesOptions): ServiceImpls {
  const router = createRouter(options.config, options.channels, options.random);
  return {
    chat: createChatService({ router }),
    workflow: createWorkflowService({
      router,
      now: options.now,
      watchers: createRunWatchers({ onPollStarted: options.onPollStarted }),
    }),
    model: createModelService(options.config),
  };
}

/** Registers the given implementations on a Connect router. */
export function serviceRoutes(impls: ServiceImpls): (router: ConnectRouter) => void {
  return (r) => {
    r.service(ChatService, impls.chat);
    r.service(WorkflowService, impls.workflow);
    r.service(ModelService, impls.model);
  };
}

/**
 * Registers ChatService, WorkflowService and ModelService on a Connect router. The same
 * function serves the real server and in-process tests (`createRouterTransport`).
 */
export function createServices(options: ServicesOptions): (router: ConnectRouter) => void {
  return serviceRoutes(createServiceImpls(options));
}
