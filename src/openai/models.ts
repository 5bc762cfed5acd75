import { create } from "@bufbuild/protobuf";
import { ListModelsRequestSchema, ModelKind } from "../gen/cozegateway/v1/model_pb.js";
import { type Caller, type ModelInfo, mayUse, type ServiceImpls } from "../service/index.js";
import { createCallContext } from "./call-context.js";
import type { NodeResponse } from "./node-types.js";
import { OpenAiError } from "./openai-error.js";

/** What a model name runs, in the `kind` extension field of `/v1/models`. */
export type OpenAiModelKind = ModelInfo["kind"];

/**
 * One entry of `GET /v1/models`, in OpenAI's format plus the extension fields `kind`, and, only
 * when they say something, `discovered`, `name` and `description`: an entry of a configured
 * route Coze did not describe is as it was before discovery.
 */
export interface OpenAiModel {
  id: string;
  object: "model";
  created: number;
  owned_by: string;
  /** Extension: `bot`, `workflow`, `workflow_async` or `chatflow`. */
  kind: OpenAiModelKind;
  /** Extension: `true` for a name discovery found in the channel's Coze space; else absent. */
  discovered?: true;
  /** Extension: the bot's or workflow's name in Coze (may hold spaces); absent when unknown. */
  name?: string;
  /** Extension: its description in Coze; absent when unknown. */
  description?: string;
}

/** What Coze says of a model besides its kind, when anything. */
interface Described {
  displayName?: string | undefined;
  description?: string | undefined;
  discovered?: boolean | undefined;
}

const kinds: Record<ModelKind, OpenAiModelKind | undefined> = {
  [ModelKind.UNSPECIFIED]: undefined,
  [ModelKind.BOT]: "bot",
  [ModelKind.WORKFLOW]: "workflow",
  [ModelKind.WORKFLOW_ASYNC]: "workflow_async",
  [ModelKind.CHATFLOW]: "chatflow",
};

const entry = (id: string, kind: OpenAiModelKind, about: Described): OpenAiModel => ({
  id,
  object: "model",
  created: 0,
  owned_by: "coze-gateway",
  kind,
  ...(about.discovered ? { discovered: true as const } : {}),
  ...(about.displayName ? { name: about.displayName } : {}),
  ...(about.description ? { description: about.description } : {}),
});

/**
 * The models the caller's key may use, from `ModelService.ListModels`: the routes of the
 * channels' model lists (`workflow:{id}` entries included), the names discovery found, and the
 * dynamic names its allow-list names exactly, as `{id, object: "model", created: 0, owned_by:
 * "coze-gateway", kind}` plus `discovered`, `name` and `description` when they apply.
 */
export async function listModels(
  services: ServiceImpls,
  caller: Caller,
  res: NodeResponse,
): Promise<OpenAiModel[]> {
  const call = createCallContext(res, caller, undefined, undefined);
  try {
    const r = await services.model.listModels(create(ListModelsRequestSchema), call.ctx);
    return (r.models ?? []).flatMap((m) => {
      const kind = kinds[m.kind ?? ModelKind.UNSPECIFIED];
      return kind === undefined ? [] : [entry(m.name ?? "", kind, m)];
    });
  } finally {
    call.release();
  }
}

/**
 * `GET /v1/models/{id}`: the entry of any name the key may call, whether or not the list shows
 * it (`workflow:{id}` under a `workflow:*` allow-list, or with no allow-list, is callable but
 * not listed), on the same rules a chat or run applies: a route resolves the name (`info`) and
 * the key's allow-list admits it. Anything else is `undefined` (a 404), including a name
 * another key may call: a key learns nothing of what it may not use.
 */
export function retrieveModel(
  info: ModelInfo | undefined,
  caller: Caller,
  id: string,
): OpenAiModel | undefined {
  return info !== undefined && mayUse(caller, id) ? entry(id, info.kind, info) : undefined;
}

/** The 404 of `GET /v1/models/{id}` for a name the key may not call. */
export function modelNotFound(id: string): OpenAiError {
  return new OpenAiError(404, {
    message: `The model '${id.length > 100 ? `${id.slice(0, 100)}…` : id}' does not exist or you do not have access to it.`,
    type: "invalid_request_error",
    code: "model_not_found",
    param: "model",
  });
}
