import { create } from "@bufbuild/protobuf";
import { ListModelsRequestSchema } from "../gen/cozegateway/v1/model_pb.js";
import type { Caller, ServiceImpls } from "../service/index.js";
import { createCallContext } from "./call-context.js";
import type { NodeResponse } from "./node-types.js";
import { OpenAiError } from "./openai-error.js";

/** One entry of `GET /v1/models`, in OpenAI's format. */
export interface OpenAiModel {
  id: string;
  object: "model";
  created: number;
  owned_by: string;
}

/**
 * The models the caller's key may use, from `ModelService.ListModels` (issue #4 decision 8):
 * the configured routes, as `{id, object: "model", created: 0, owned_by: "coze-gateway"}`.
 * Dynamic names (`workflow:{id}`, …) are usable but not listed, as in the service.
 */
export async function listModels(
  services: ServiceImpls,
  caller: Caller,
  res: NodeResponse,
): Promise<OpenAiModel[]> {
  const call = createCallContext(res, caller, undefined, undefined);
  try {
    const r = await services.model.listModels(create(ListModelsRequestSchema), call.ctx);
    return (r.models ?? []).map((m) => ({
      id: m.name ?? "",
      object: "model",
      created: 0,
      owned_by: "coze-gateway",
    }));
  } finally {
    call.release();
  }
}

/** The 404 of `GET /v1/models/{id}` for a model the key may not use or that is not listed. */
export function modelNotFound(id: string): OpenAiError {
  return new OpenAiError(404, {
    message: `The model '${id.length > 100 ? `${id.slice(0, 100)}…` : id}' does not exist or you do not have access to it.`,
    type: "invalid_request_error",
    code: "model_not_found",
    param: "model",
  });
}
