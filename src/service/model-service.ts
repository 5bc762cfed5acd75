import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ModelRoute } from "../config/index.js";
import { ModelKind, type ModelSchema, type ModelService } from "../gen/cozegateway/v1/model_pb.js";
import { type Caller, callerOf, mayUse } from "./caller.js";
import type { CoreImpl } from "./core-context.js";
import type { ListedModel, ModelTable } from "./discovery-table.js";

const kinds: Record<ModelRoute["kind"], ModelKind> = {
  bot: ModelKind.BOT,
  workflow: ModelKind.WORKFLOW,
  workflow_async: ModelKind.WORKFLOW_ASYNC,
  chatflow: ModelKind.CHATFLOW,
};

type Model = MessageInitShape<typeof ModelSchema>;

const modelOf = ({ route, info }: ListedModel): Model => ({
  name: route.name,
  kind: kinds[route.kind],
  channel: route.channel,
  displayName: info.displayName,
  description: info.description,
  discovered: info.discovered,
});

/**
 * The ModelService implementation: every model name the calling key may use that can be named
 * without guessing ids, each once. First the routes of the channels' model lists, in file order
 * (`workflow:{id}` and the other dynamic names a channel lists included; a failover route lists
 * the first channel that serves it), then the names discovery found in the channels' spaces
 * (by channel, kind and name), then the dynamic names the key's allow-list names exactly
 * (`workflow:7391…`, served by the default channel), in allow-list order. A `prefix*`
 * allow-list entry lists only the names it matches: the ids it admits are unbounded. The
 * allow-list applies to discovered names as to configured ones.
 */
export function createModelService(models: ModelTable): CoreImpl<typeof ModelService> {
  /** The allow-list's exact names that nothing lists but that resolve: dynamic names. */
  function allowListed(caller: Caller | undefined, listed: ReadonlySet<string>): Model[] {
    const names = new Set(caller?.models?.filter((n) => !n.endsWith("*") && !listed.has(n)));
    return [...names].flatMap((name) => {
      const route = models.resolveRoutes(name)[0];
      const info = route && models.info(name);
      return route === undefined || info === undefined ? [] : [modelOf({ route, info })];
    });
  }

  return {
    listModels(_req, ctx) {
      const caller = callerOf(ctx);
      const all = models.listed();
      const listed = new Set(all.map((m) => m.route.name));
      return {
        models: [
          ...all.filter((m) => mayUse(caller, m.route.name)).map(modelOf),
          ...allowListed(caller, listed),
        ],
      };
    },
  };
}
