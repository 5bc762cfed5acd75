import {
  absent,
  asList,
  child,
  digitsId,
  fail,
  integer,
  item,
  kindOf,
  type LoadContext,
  onlyKnownKeys,
  type Place,
  required,
  text,
} from "./fields.js";
import type { ModelKind, ModelRoute } from "./gateway-config.js";
import { defaultInputField, dynamicPrefixOf } from "./resolve-model.js";

const modelKeys = ["name", "bot_id", "workflow_id", "mode", "input_field", "weight"];
/** A route's share of new requests when several channels serve the same model name. */
const weightRule = { min: 1, max: 1000, fallback: 1 };
// A Map, not an object: `mode: toString` must not find Object.prototype.toString.
const modes: ReadonlyMap<string, ModelKind> = new Map([
  ["sync", "workflow"],
  ["async", "workflow_async"],
  ["chatflow", "chatflow"],
]);
const entryRule =
  "a model name, or a mapping with name and bot_id or workflow_id (plus mode, input_field, weight)";
const nameRule = "a model name of 1 to 128 characters without spaces or *";

/**
 * Reads a channel's `models` list (the old channel's model list): a plain name routes to the
 * channel's `default_bot_id`; `{ name, bot_id }` to that bot; `{ name, workflow_id, mode,
 * input_field }` to a workflow (`mode` `sync`, the default, `async` or `chatflow`;
 * `input_field` default `input`), each with an optional `weight` (1 to 1000, default 1: its
 * share of new requests when several channels serve the name). Duplicates across channels are
 * the caller's check.
 *
 * @throws ConfigError for a bad name (including one starting with a dynamic prefix such as
 *   `workflow:`), both or misplaced ids and options, an unknown key, or a plain model on a
 *   channel without `default_bot_id`.
 */
export function readModels(
  ctx: LoadContext,
  place: Place,
  value: unknown,
  channel: { name: string; defaultBotId?: string | undefined },
): ModelRoute[] {
  if (absent(value)) return [];
  const list = asList(ctx, place, value, `a list, each entry ${entryRule}`);
  return list.map((entry, i) => {
    if (typeof entry === "string") {
      const name = modelName(ctx, item(place, i), entry);
      return botRoute(ctx, item(place, name), name, undefined, channel);
    }
    if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
      fail(ctx, item(place, i), `must be ${entryRule}, not ${kindOf(entry)}`);
    }
    const map = entry as Record<string, unknown>;
    required(ctx, child(item(place, i), "name"), map.name, nameRule);
    const name = modelName(ctx, child(item(place, i), "name"), map.name);
    const at = item(place, name);
    onlyKnownKeys(ctx, at, map, modelKeys);
    const weight = integer(ctx, child(at, "weight"), map.weight, weightRule);
    const botId = digitsId(ctx, child(at, "bot_id"), map.bot_id);
    const workflowId = digitsId(ctx, child(at, "workflow_id"), map.workflow_id);
    if (botId !== undefined && workflowId !== undefined) {
      fail(ctx, at, "has both bot_id and workflow_id; give one");
    }
    if (workflowId === undefined) {
      for (const key of ["mode", "input_field"]) {
        if (!absent(map[key]))
          fail(ctx, child(at, key), "applies to workflows only; add workflow_id or remove it");
      }
      return { ...botRoute(ctx, at, name, botId, channel), weight };
    }
    const modeText = text(ctx, child(at, "mode"), map.mode, "one of sync, async, chatflow");
    const kind = modes.get(modeText ?? "sync");
    if (kind === undefined) fail(ctx, child(at, "mode"), "must be one of sync, async, chatflow");
    const inputField = text(
      ctx,
      child(at, "input_field"),
      map.input_field,
      "a workflow parameter name",
    );
    if (inputField !== undefined && !/^[^\s\p{Cc}]{1,64}$/u.test(inputField)) {
      fail(
        ctx,
        child(at, "input_field"),
        "must be a workflow parameter name of 1 to 64 characters without spaces",
      );
    }
    return {
      name,
      channel: channel.name,
      kind,
      targetId: workflowId,
      inputField: inputField ?? defaultInputField,
      weight,
    };
  });
}

function modelName(ctx: LoadContext, place: Place, value: unknown): string {
  const name = text(ctx, place, value, nameRule) ?? "";
  if (!/^[^\s\p{Cc}*]{1,128}$/u.test(name)) fail(ctx, place, `must be ${nameRule}`);
  const prefix = dynamicPrefixOf(name);
  if (prefix !== undefined) {
    fail(
      ctx,
      place,
      `must not start with ${prefix}: ${prefix}{id} names are routed to the default channel without an entry`,
    );
  }
  return name;
}

function botRoute(
  ctx: LoadContext,
  place: Place,
  name: string,
  botId: string | undefined,
  channel: { name: string; defaultBotId?: string | undefined },
): ModelRoute {
  const targetId = botId ?? channel.defaultBotId;
  if (targetId === undefined) {
    fail(
      ctx,
      place,
      "needs a bot_id or workflow_id, since the channel's credentials have no default_bot_id",
    );
  }
  return {
    name,
    channel: channel.name,
    kind: "bot",
    targetId,
    inputField: defaultInputField,
    weight: 1,
  };
}
