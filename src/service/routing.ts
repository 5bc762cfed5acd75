import type { ModelRoute } from "../config/index.js";
import { type Caller, mayUse } from "./caller.js";
import type { Channel, Channels } from "./channels.js";
import type { ModelTable } from "./discovery-table.js";
import { invalidArgument, notFound, permissionDenied } from "./errors.js";

/** What a request runs, resolved from its `model` or explicit ids. */
export interface Target {
  /** The model name the caller may be checked and billed under (`bot:{id}` for explicit ids). */
  model: string;
  channel: Channel;
  kind: ModelRoute["kind"];
  /** The bot, workflow or chatflow id on this channel: a digit string. */
  id: string;
  /** The workflow parameter that receives a chat's last user text (REST shim). */
  inputField: string;
  /**
   * Other channels serving the same model, in the order to fail over to them. Empty for
   * follow-ups, which must stay on the channel that owns their conversation or run.
   */
  fallbacks: Target[];
}

/** The routing fields every request carries. */
export interface RouteFields {
  model: string;
  channel: string;
}

/** How a request relates to earlier work. */
export interface ResolveOptions {
  /**
   * True for follow-ups (a conversation, chat, run or interrupt that already lives on one
   * channel): no weighted choice and no failover; the request's `channel`, else the first
   * channel that serves the model.
   */
  pinned?: boolean;
}

/** Resolves targets against the config and checks the caller's model allow-list. */
export interface Router {
  /**
   * Resolves `model` (narrowed to `channel` when both are given), or else an explicit `id` of
   * `kind` on `channel`. New work on a model several channels serve gets a weighted choice and
   * the others as fallbacks.
   * @throws GatewayError `invalid_argument` when neither is given or the id is not a Coze id;
   *   `not_found` for an unknown model or channel, or a channel that does not serve the model;
   *   `permission_denied` when the caller's key may not use the model.
   */
  resolve(
    fields: RouteFields,
    explicit: { field: string; id: string; kind: ModelRoute["kind"] },
    caller: Caller | undefined,
    options?: ResolveOptions,
  ): Target;
  /** The channel named `name`, or the default one when `name` is empty. */
  channel(name: string): Channel;
}

const cozeId = /^\d{1,32}$/;

/**
 * Creates the router for the model table (configured, discovered and dynamic names) and the
 * live channels. `random` (in [0, 1)) drives the weighted choice; tests pass a fixed one.
 */
export function createRouter(
  models: ModelTable,
  channels: Channels,
  random: () => number = Math.random,
): Router {
  function channel(name: string): Channel {
    if (name === "") return channels.default;
    const found = channels.get(name);
    if (!found) throw notFound("channel", `unknown channel "${name}"`);
    return found;
  }

  function allow(caller: Caller | undefined, model: string) {
    if (!mayUse(caller, model)) {
      throw permissionDenied("model", `model "${model}" is not allowed for this API key`);
    }
  }

  function targetOf(route: ModelRoute, model: string): Target {
    return {
      model,
      channel: channel(route.channel),
      kind: route.kind,
      id: route.targetId,
      inputField: route.inputField,
      fallbacks: [],
    };
  }

  /** Orders routes by weighted random choice without replacement. */
  function weighted(routes: readonly ModelRoute[]): ModelRoute[] {
    const left = [...routes];
    const out: ModelRoute[] = [];
    while (left.length > 0) {
      const total = left.reduce((sum, r) => sum + r.weight, 0);
      let pick = random() * total;
      let i = 0;
      while (i < left.length - 1 && pick >= (left[i] as ModelRoute).weight) {
        pick -= (left[i] as ModelRoute).weight;
        i++;
      }
      out.push(...left.splice(i, 1));
    }
    return out;
  }

  return {
    channel,
    resolve(fields, explicit, caller, options = {}) {
      if (fields.model !== "") {
        let routes = models.resolveRoutes(fields.model);
        if (routes.length === 0) throw notFound("model", `unknown model "${fields.model}"`);
        allow(caller, fields.model);
        if (fields.channel !== "") {
          routes = routes.filter((r) => r.channel === fields.channel);
          if (routes.length === 0) {
            channel(fields.channel); // an unknown channel is NotFound in its own words
            throw notFound(
              "channel",
              `channel "${fields.channel}" does not serve model "${fields.model}"`,
            );
          }
        }
        if (options.pinned || routes.length === 1) {
          return targetOf(routes[0] as ModelRoute, fields.model);
        }
        const [first, ...rest] = weighted(routes).map((r) => targetOf(r, fields.model));
        return { ...(first as Target), fallbacks: rest };
      }
      if (explicit.id === "") {
        throw invalidArgument("model", `is required (or ${explicit.field})`);
      }
      if (!cozeId.test(explicit.id)) {
        throw invalidArgument(explicit.field, "must be a Coze id (digits)");
      }
      const prefix = explicit.kind === "workflow_async" ? "workflow-async" : explicit.kind;
      const model = `${prefix}:${explicit.id}`;
      allow(caller, model);
      return {
        model,
        channel: channel(fields.channel),
        kind: explicit.kind,
        id: explicit.id,
        inputField: "input",
        fallbacks: [],
      };
    },
  };
}
