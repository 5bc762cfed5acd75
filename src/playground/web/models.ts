import type { Model } from "../../gen/cozegateway/v1/model_pb.js";
import { ModelKind } from "../../gen/cozegateway/v1/model_pb.js";
import { element } from "./dom.js";

/** One model a panel offers. */
export interface ModelChoice {
  /** The model name sent in calls. */
  name: string;
  /** What the list shows: Coze's name with the model name, when Coze named it; else the name. */
  label: string;
  /** Coze's description, shown on hover; `""` when none. */
  title: string;
}

/** The models each panel offers. */
export interface ModelChoices {
  /** Bots and chatflows, for the Chat panel. */
  chat: ModelChoice[];
  /** Workflows, for the Workflow panel. */
  workflow: ModelChoice[];
}

const choiceOf = (model: Model): ModelChoice => ({
  name: model.name,
  label:
    model.displayName === "" || model.displayName === model.name
      ? model.name
      : `${model.displayName} (${model.name})`,
  title: model.description,
});

/** Where the page finds the names the gateway suggests besides ListModels (dynamic names). */
const suggestionsUrl = "/playground/models.json";

/**
 * Sorts the models ListModels returned and the suggested names into the two panels: workflow
 * kinds and `workflow:` / `workflow-async:` names to the Workflow panel, the rest to Chat.
 * Listed models come first, in their order, labelled with Coze's names (discovered models, and
 * configured ones Coze described); no name appears twice.
 */
export function modelChoices(listed: readonly Model[], suggested: readonly string[]): ModelChoices {
  const chat = new Map<string, ModelChoice>();
  const workflow = new Map<string, ModelChoice>();
  for (const model of listed) {
    const isWorkflow = model.kind === ModelKind.WORKFLOW || model.kind === ModelKind.WORKFLOW_ASYNC;
    const panel = isWorkflow ? workflow : chat;
    if (!panel.has(model.name)) panel.set(model.name, choiceOf(model));
  }
  for (const name of suggested) {
    const panel = /^workflow(-async)?:/.test(name) ? workflow : chat;
    if (!panel.has(name)) panel.set(name, { name, label: name, title: "" });
  }
  return { chat: [...chat.values()], workflow: [...workflow.values()] };
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

/**
 * Replaces a select's options with `choices` (value the name, text the label, hover the
 * description), keeping the selected one when it is still there. Coze's texts go in as text,
 * never as markup.
 */
export function fillSelect(select: HTMLSelectElement, choices: readonly ModelChoice[]): void {
  const selected = select.value;
  select.replaceChildren(...choices.map(optionOf));
  if (choices.some((c) => c.name === selected)) select.value = selected;
}

/** Replaces a datalist's suggestions with `choices`. */
export function fillDatalist(list: HTMLDataListElement, choices: readonly ModelChoice[]): void {
  list.replaceChildren(...choices.map(optionOf));
}

function optionOf(choice: ModelChoice): HTMLOptionElement {
  const option = element("option", undefined, choice.label);
  option.value = choice.name;
  if (choice.title !== "") option.title = choice.title;
  return option;
}
