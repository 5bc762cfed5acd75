import type { Model } from "../../gen/cozegateway/v1/model_pb.js";
import { ModelKind } from "../../gen/cozegateway/v1/model_pb.js";
import { element } from "./dom.js";

/** The model names each panel offers. */
export interface ModelChoices {
  /** Bots and chatflows, for the Chat panel. */
  chat: string[];
  /** Workflows, for the Workflow panel. */
  workflow: string[];
}

/** Where the page finds the names the gateway suggests besides ListModels (dynamic names). */
const suggestionsUrl = "/playground/models.json";

/**
 * Sorts the models ListModels returned and the suggested names into the two panels: workflow
 * kinds and `workflow:` / `workflow-async:` names to the Workflow panel, the rest to Chat.
 * Listed models come first, in their order; no name appears twice.
 */
export function modelChoices(listed: readonly Model[], suggested: readonly string[]): ModelChoices {
  const chat = new Set<string>();
  const workflow = new Set<string>();
  for (const model of listed) {
    const isWorkflow = model.kind === ModelKind.WORKFLOW || model.kind === ModelKind.WORKFLOW_ASYNC;
    (isWorkflow ? workflow : chat).add(model.name);
  }
  for (const name of suggested) {
    (/^workflow(-async)?:/.test(name) ? workflow : chat).add(name);
  }
  return { chat: [...chat], workflow: [...workflow] };
}

/** The suggested model names the gateway serves with the page; none when that fails. */
export async function fetchSuggestedModels(): Promise<string[]> {
  try {
    const res = await fetch(suggestionsUrl, { headers: { accept: "application/json" } });
    if (!res.ok) return [];
    const body = (await res.json()) as { suggested?: unknown };
    return Array.isArray(body.suggested)
      ? body.suggested.filter((n): n is string => typeof n === "string")
      : [];
  } catch {
    return [];
  }
}

/** Replaces a select's options with `names`, keeping the selected one when it is still there. */
export function fillSelect(select: HTMLSelectElement, names: readonly string[]): void {
  const selected = select.value;
  select.replaceChildren(...names.map((name) => element("option", undefined, name)));
  if (names.includes(selected)) select.value = selected;
}

/** Replaces a datalist's suggestions with `names`. */
export function fillDatalist(list: HTMLDataListElement, names: readonly string[]): void {
  list.replaceChildren(
    ...names.map((name) => {
      const option = element("option");
      option.value = name;
      return option;
    }),
  );
}
