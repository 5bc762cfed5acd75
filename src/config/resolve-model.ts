import type { ChannelConfig, GatewayConfig, ModelKind, ModelRoute } from "./gateway-config.js";

/**
 * Model names that need no entry: `{prefix}{id}` runs that target on the default channel.
 * `workflow:` runs a workflow and waits, `workflow-async:` starts it with `is_async` and polls,
 * `chatflow:` runs a chatflow, `bot:` chats with a bot.
 */
export const dynamicPrefixes: readonly { readonly prefix: string; readonly kind: ModelKind }[] = [
  { prefix: "workflow:", kind: "workflow" },
  { prefix: "workflow-async:", kind: "workflow_async" },
  { prefix: "chatflow:", kind: "chatflow" },
  { prefix: "bot:", kind: "bot" },
];

/** The workflow parameter a caller's message goes to when a route names none. */
export const defaultInputField = "input";

// Coze ids are 19 digits today; leave room, but do not let a caller send a megabyte of digits.
const idPattern = /^[0-9]{1,32}$/;

/**
 * The channel that receives dynamic model names: the one marked default, or the only one.
 * `undefined` when several channels exist and none is marked (a config `loadConfig` refuses).
 */
export function defaultChannel(config: GatewayConfig): ChannelConfig | undefined {
  return (
    config.channels.find((c) => c.isDefault) ??
    (config.channels.length === 1 ? config.channels[0] : undefined)
  );
}

/**
 * Where a model name goes. An explicit route (a `models` entry of a channel, a dynamic name
 * such as `workflow:{id}` that a channel lists included) wins; otherwise a dynamic name
 * (`workflow:{id}`, `workflow-async:{id}`, `chatflow:{id}`, `bot:{id}`) goes to the default
 * channel, with `inputField` `input`.
 *
 * @returns `undefined` for a plain name no channel lists, a dynamic name whose id is not 1 to
 *   32 digits, or a dynamic name when there is no default channel. Never throws.
 */
export function resolveModel(config: GatewayConfig, name: string): ModelRoute | undefined {
  const route = config.models.find((m) => m.name === name);
  if (route !== undefined) return route;
  return dynamicRoute(defaultChannel(config)?.name, name);
}

/**
 * The route of a dynamic name (`workflow:{id}`…) on `channel`, with `inputField` `input`: a new
 * object each call. `undefined` for another name, an id that is not 1 to 32 digits, or no
 * channel.
 */
export function dynamicRoute(channel: string | undefined, name: string): ModelRoute | undefined {
  const dynamic = parseDynamicName(name);
  if (dynamic?.targetId === undefined || channel === undefined) return undefined;
  return {
    name,
    channel,
    kind: dynamic.kind,
    targetId: dynamic.targetId,
    inputField: defaultInputField,
    weight: 1,
  };
}

/**
 * Every route of `name`: the explicit routes of all channels that serve it, in file order (a
 * failover route when there are several), or the one dynamic route; empty when unknown.
 */
export function resolveRoutes(config: GatewayConfig, name: string): ModelRoute[] {
  const explicit = config.models.filter((m) => m.name === name);
  if (explicit.length > 0) return explicit;
  const dynamic = resolveModel(config, name);
  return dynamic ? [dynamic] : [];
}

/** A name with a dynamic prefix, taken apart. */
export interface DynamicName {
  /** The prefix, such as `workflow:`. */
  prefix: string;
  /** What the prefix runs. */
  kind: ModelKind;
  /** The Coze id after the prefix; `undefined` when it is not 1 to 32 digits. */
  targetId: string | undefined;
}

/** The prefix, kind and id of a dynamic name (`workflow:{id}`…); `undefined` for another name. */
export function parseDynamicName(name: string): DynamicName | undefined {
  const dynamic = dynamicPrefixes.find((d) => name.startsWith(d.prefix));
  if (dynamic === undefined) return undefined;
  const id = name.slice(dynamic.prefix.length);
  return { ...dynamic, targetId: idPattern.test(id) ? id : undefined };
}
