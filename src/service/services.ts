import type { ConnectRouter } from "@connectrpc/connect";
import type { GatewayConfig } from "../config/index.js";
import { ChatService } from "../gen/cozegateway/v1/chat_pb.js";
import { ModelService } from "../gen/cozegateway/v1/model_pb.js";
import { WorkflowService } from "../gen/cozegateway/v1/workflow_pb.js";
import type { Channels } from "./channels.js";
import { createChatService } from "./chat-service.js";
import { createModelService } from "./model-service.js";
import { createRouter } from "./routing.js";
import { createWorkflowService } from "./workflow-service.js";

/** Options for {@link createServices}. */
export interface ServicesOptions {
  config: GatewayConfig;
  channels: Channels;
  /** Clock for progress events' elapsed time. Default `Date.now`. */
  now?: () => number;
}

/**
 * Registers ChatService, WorkflowService and ModelService on a Connect router. The same
 * function serves the real server and in-process tests (`createRouterTransport`).
 */
export function createServices(options: ServicesOptions): (router: ConnectRouter) => void {
  const router = createRouter(options.config, options.channels);
  return (r) => {
    r.service(ChatService, createChatService({ router }));
    r.service(WorkflowService, createWorkflowService({ router, now: options.now }));
    r.service(ModelService, createModelService(options.config));
  };
}
