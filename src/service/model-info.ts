import type { ModelKind } from "../config/index.js";
import type { ModelTable } from "./discovery-table.js";

/** What a caller-facing layer (the REST shim) needs to know about a model name. */
export interface ModelInfo {
  /** What the name runs: a bot or chatflow turn (ChatService), or a workflow run. */
  kind: ModelKind;
  /** The workflow parameter that receives a chat's last user text (`input` unless configured). */
  inputField: string;
  /** The bot's or workflow's name in Coze, when discovery found it; else `""` or absent. */
  displayName?: string;
  /** Its description in Coze, when discovery found it; else `""` or absent. */
  description?: string;
  /** True for a name discovery made (not a configured route nor a dynamic name). */
  discovered?: boolean;
}

/**
 * Creates the lookup of model names for the REST shim, on the same routing rules as the
 * services (the model table: configured routes first, then discovered names, then the dynamic
 * `workflow:{id}`, `workflow-async:{id}`, `chatflow:{id}` and `bot:{id}` names). It says
 * nothing about Coze ids or channels and does not check a caller's allow-list: the services do
 * that when called. Configured and discovered names answer with an object built when the list
 * changed, not per call.
 *
 * @returns a function giving `undefined` for a name no route matches; it never throws.
 */
export function createModelInfo(models: ModelTable): (model: string) => ModelInfo | undefined {
  return (model) => models.info(model);
}
