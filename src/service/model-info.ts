import type { GatewayConfig, ModelKind } from "../config/index.js";
import { resolveModel } from "../config/index.js";

/** What a caller-facing layer (the REST shim) needs to know about a model name. */
export interface ModelInfo {
  /** What the name runs: a bot or chatflow turn (ChatService), or a workflow run. */
  kind: ModelKind;
  /** The workflow parameter that receives a chat's last user text (`input` unless configured). */
  inputField: string;
}

/**
 * Creates the lookup of model names for the REST shim, on the same routing rules as the
 * services (`resolveModel`: configured routes first, then the dynamic `workflow:{id}`,
 * `workflow-async:{id}`, `chatflow:{id}` and `bot:{id}` names). It says nothing about Coze ids
 * or channels and does not check a caller's allow-list: the services do that when called.
 *
 * @returns a function giving `undefined` for a name no route matches; it never throws.
 */
export function createModelInfo(config: GatewayConfig): (model: string) => ModelInfo | undefined {
  return (model) => {
    const route = resolveModel(config, model);
    return route && { kind: route.kind, inputField: route.inputField };
  };
}
