import {
  absent,
  asList,
  attempt,
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
import { type DynamicName, defaultInputField, parseDynamicName } from "./resolve-model.js";

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
const listRule = `a list, each entry ${entryRule}, or the old comma-separated model list`;
const nameRule = "a model name of 1 to 128 characters without spaces or *";

/**
 * Reads a channel's `models` list (the old channel's model list): a plain name routes to the
 * channel's `default_bot_id`; `{ name, bot_id }` to that bot; `{ name, workflow_id, mode,
 * input_field }` to a workflow (`mode` `sync`, the default, `async` or `chatflow`;
 * `input_field` default `input`), each with an optional `weight` (1 to 1000, default 1: its
 * share of new requests when several channels serve the name). The list may also be the old
 * channel's comma-separated text (`"support-bot,workflow:7391…"`), as new-api stored it.
 *
 * A dynamic name (`workflow:{id}`, `workflow-async:{id}`, `chatflow:{id}`, `bot:{id}`) listed
 * here declares that target reachable on this channel: the name runs it here rather than on the
 * default channel, `/v1/models` and `ListModels` list it, and several channels listing it share
 * it as failover. As a mapping it takes `weight`, and `input_field` unless it is a `bot:` name;
 * its id and kind come from the name. Duplicates across channels are the caller's check.
 *
 * @throws ConfigError for a bad name (a dynamic one with an id that is not 1 to 32 digits),
 *   both or misplaced ids and options, an unknown key, or a plain model on a channel without
 *   `default_bot_id`.
 */
export function readModels(
  ctx: LoadContext,
  place: Place,
  value: unknown,
  channel: { name: string; defaultBotId?: string | undefined },
): ModelRoute[] {
  if (absent(value)) return [];
  const list =
    typeof value === "string"
      ? value
          .split(",")
          .map((name) => name.trim())
          .filter((name) => name !== "")
      : asList(ctx, place, value, listRule);
  // A bad entry is reported and the next one read: every problem of the list at once.
  return list.flatMap((entry, i) =>
    attempt(ctx, [], () => [readModel(ctx, place, entry, i, channel)]),
  );
}

function readModel(
  ctx: LoadContext,
  place: Place,
  entry: unknown,
  i: number,
  channel: { name: string; defaultBotId?: string | undefined },
): ModelRoute {
  if (typeof entry === "string") {
    const name = modelName(ctx, item(place, i), entry);
    const dynamic = parseDynamicName(name);
    const at = item(place, name);
    if (dynamic !== undefined) return dynamicRoute(ctx, at, name, dynamic, channel, {});
    return botRoute(ctx, at, name, undefined, channel);
  }
  if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
    fail(ctx, item(place, i), `must be ${entryRule}, not ${kindOf(entry)}`);
  }
  const map = entry as Record<string, unknown>;
  required(ctx, child(item(place, i), "name"), map.name, nameRule);
  const name = modelName(ctx, child(item(place, i), "name"), map.name);
  const at = item(place, name);
  onlyKnownKeys(ctx, at, map, modelKeys);
  const dynamic = parseDynamicName(name);
  if (dynamic !== undefined) return dynamicRoute(ctx, at, name, dynamic, channel, map);
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
  return {
    name,
    channel: channel.name,
    kind,
    targetId: workflowId,
    inputField: inputFieldOf(ctx, at, map),
    weight,
  };
}

/**
 * The route of a dynamic name listed on a channel: the name gives the kind and the id, so
 * `bot_id`, `workflow_id` and `mode` have nothing to add and are refused rather than ignored.
 */
function dynamicRoute(
  ctx: LoadContext,
  at: Place,
  name: string,
  dynamic: DynamicName,
  channel: { name: string },
  map: Record<string, unknown>,
): ModelRoute {
  if (dynamic.targetId === undefined) {
    fail(ctx, at, `must be ${dynamic.prefix}{id} with a Coze id of 1 to 32 digits`);
  }
  for (const key of ["bot_id", "workflow_id", "mode"]) {
    if (!absent(map[key])) {
      fail(
        ctx,
        child(at, key),
        `does not apply to a ${dynamic.prefix}{id} name, which gives the id and kind itself; remove it`,
      );
    }
  }
  if (dynamic.kind === "bot" && !absent(map.input_field)) {
    fail(ctx, child(at, "input_field"), "applies to workflows only; remove it");
  }
  return {
    name,
    channel: channel.name,
    kind: dynamic.kind,
    targetId: dynamic.targetId,
    inputField: inputFieldOf(ctx, at, map),
    weight: integer(ctx, child(at, "weight"), map.weight, weightRule),
  };
}

/** A workflow route's `input_field`, default `input`. */
function inputFieldOf(ctx: LoadContext, at: Place, map: Record<string, unknown>): string {
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
  return inputField ?? defaultInputField;
}

function modelName(ctx: LoadContext, place: Place, value: unknown): string {
  const name = text(ctx, place, value, nameRule) ?? "";
  if (!/^[^\s\p{Cc}*]{1,128}$/u.test(name)) fail(ctx, place, `must be ${nameRule}`);
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
