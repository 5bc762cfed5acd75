import type { GatewayConfig, ModelRoute } from "../config/index.js";
import { ModelKind, type ModelService } from "../gen/cozegateway/v1/model_pb.js";
import { callerOf, mayUse } from "./caller.js";
import type { CoreImpl } from "./core-context.js";

const kinds: Record<ModelRoute["kind"], ModelKind> = {
  bot: ModelKind.BOT,
  workflow: ModelKind.WORKFLOW,
  workflow_async: ModelKind.WORKFLOW_ASYNC,
  chatflow: ModelKind.CHATFLOW,
};

/**
 * The ModelService implementation: the configured routes the calling key may use, each name
 * once (a failover route lists the first channel that serves it).
 */
export function createModelService(config: GatewayConfig): CoreImpl<typeof ModelService> {
  const routes = config.models.filter(
    (m, i) => config.models.findIndex((other) => other.name === m.name) === i,
  );
  return {
    listModels(_req, ctx) {
      const caller = callerOf(ctx);
      return {
        models: routes
          .filter((m) => mayUse(caller, m.name))
          .map((m) => ({ name: m.name, kind: kinds[m.kind], channel: m.channel })),
      };
    },
  };
}
