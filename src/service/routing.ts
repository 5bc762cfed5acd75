import type { GatewayConfig, ModelRoute } from "../config/index.js";
import { resolveModel } from "../config/index.js";
import { type Caller, mayUse } from "./caller.js";
import type { Channel, Channels } from "./channels.js";
import { invalidArgument, notFound, permissionDenied } from "./errors.js";

/** What a request runs, resolved from its `model` or explicit ids. */
export interface Target {
  /** The model name the caller may be checked and billed under (`bot:{id}` for explicit ids). */
  model: string;
  channel: Channel;
  kind: ModelRoute["kind"];
  /** The bot, workflow or chatflow id: a digit string. */
  id: string;
  /** The workflow parameter that receives a chat's last user text (REST shim). */
  inputField: string;
}

/** The routing fields every request carries. */
export interface RouteFields {
  model: string;
  channel: string;
}

/** Resolves targets against the config and checks the caller's model allow-list. */
export interface Router {
  /**
   * Resolves `model`, or else an explicit `id` (of `idKind`) on `channel`.
   * @throws ConnectError InvalidArgument when neither is given or the id is not a Coze id;
   *   NotFound for an unknown model or channel; PermissionDenied when the caller's key may not
   *   use the model.
   */
  resolve(
    fields: RouteFields,
    explicit: { field: string; id: string; kind: ModelRoute["kind"] },
    caller: Caller | undefined,
  ): Target;
  /** The channel named `name`, or the default one when `name` is empty. */
  channel(name: string): Channel;
}

const cozeId = /^\d{1,32}$/;

/** Creates the router for a loaded config and its live channels. */
export function createRouter(config: GatewayConfig, channels: Channels): Router {
  function channel(name: string): Channel {
    if (name === "") return channels.default;
    const found = channels.get(name);
    if (!found) throw notFound(`unknown channel "${name}"`);
    return found;
  }

  function allow(caller: Caller | undefined, model: string) {
    if (!mayUse(caller, model)) {
      throw permissionDenied(`model "${model}" is not allowed for this API key`);
    }
  }

  return {
    channel,
    resolve(fields, explicit, caller) {
      if (fields.model !== "") {
        const route = resolveModel(config, fields.model);
        if (!route) throw notFound(`unknown model "${fields.model}"`);
        allow(caller, fields.model);
        return {
          model: fields.model,
          channel: channel(route.channel),
          kind: route.kind,
          id: route.targetId,
          inputField: route.inputField,
        };
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
      };
    },
  };
}
