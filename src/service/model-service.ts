import type { MessageInitShape } from "@bufbuild/protobuf";
import type { GatewayConfig, ModelRoute } from "../config/index.js";
import { resolveModel } from "../config/index.js";
import { ModelKind, type ModelSchema, type ModelService } from "../gen/cozegateway/v1/model_pb.js";
import { type Caller, callerOf, mayUse } from "./caller.js";
import type { CoreImpl } from "./core-context.js";

const kinds: Record<ModelRoute["kind"], ModelKind> = {
  bot: ModelKind.BOT,
  workflow: ModelKind.WORKFLOW,
  workflow_async: ModelKind.WORKFLOW_ASYNC,
  chatflow: ModelKind.CHATFLOW,
};

type Model = MessageInitShape<typeof ModelSchema>;

const modelOf = (route: ModelRoute): Model => ({
  name: route.name,
  kind: kinds[route.kind],
  channel: route.channel,
});

/**
 * The ModelService implementation: every model name the calling key may use that can be named
 * without guessing ids, each once. First the routes of the channels' model lists, in file order
 * (`workflow:{id}` and the other dynamic names a channel lists included; a failover route lists
 * the first channel that serves it), then the dynamic names the key's allow-list names exactly
 * (`workflow:7391…`, served by the default channel), in allow-list order. A `prefix*`
 * allow-list entry lists only the listed routes it matches: the ids it admits are unbounded.
 */
export function createModelService(config: GatewayConfig): CoreImpl<typeof ModelService> {
  const routes = config.models.filter(
    (m, i) => config.models.findIndex((other) => other.name === m.name) === i,
  );
  const routed = new Set(routes.map((m) => m.name));

  /** The allow-list's exact names that no channel lists but that resolve: dynamic names. */
  function allowListed(caller: Caller | undefined): Model[] {
    const names = new Set(caller?.models?.filter((n) => !n.endsWith("*") && !routed.has(n)));
    return [...names].flatMap((name) => {
      const route = resolveModel(config, name);
      return route === undefined ? [] : [modelOf(route)];
    });
  }

  return {
    listModels(_req, ctx) {
      const caller = callerOf(ctx);
      return {
        models: [
          ...routes.filter((m) => mayUse(caller, m.name)).map(modelOf),
          ...allowListed(caller),
        ],
      };
    },
  };
}
