import {
  absent,
  asList,
  child,
  fail,
  flag,
  integer,
  item,
  type LoadContext,
  type Place,
  section,
  text,
} from "./fields.js";
import type { DiscoveryConfig, DiscoveryKind } from "./gateway-config.js";

const discoveryKeys = ["enabled", "naming", "interval_ms", "start_wait_ms", "kinds", "max_models"];
const allKinds: readonly DiscoveryKind[] = ["bot", "workflow", "chatflow"];
const namings = ["id", "name"] as const;

/** Defaults of a channel's `discovery` section. */
export const discoveryDefaults = {
  naming: "id",
  intervalMs: 300_000,
  startWaitMs: 5_000,
  kinds: allKinds,
  maxModels: 500,
} as const;

const sectionRule =
  "true, false or a mapping (enabled, naming, interval_ms, start_wait_ms, kinds, max_models)";

/**
 * Reads a channel's `discovery`: absent is off; `true`/`false`, or a mapping that turns it on
 * unless it says `enabled: false`. On, it needs the channel's `credentials.space_id`: that is
 * the space listed.
 *
 * Off by default, even with a `space_id`: the old channel's settings often carried one, and
 * listing changes what `/v1/models` shows and needs list permissions the app may lack.
 *
 * @throws ConfigError for a value of the wrong type, an unknown key, an unknown naming or kind,
 *   a kind listed twice, an integer out of range, or discovery on without a `space_id`.
 */
export function readDiscovery(
  ctx: LoadContext,
  place: Place,
  value: unknown,
  spaceId: string | undefined,
): DiscoveryConfig {
  const d = discoveryDefaults;
  if (typeof value === "boolean" || absent(value)) {
    const enabled = value === true;
    if (enabled) needSpace(ctx, place, spaceId);
    return {
      enabled,
      naming: d.naming,
      intervalMs: d.intervalMs,
      startWaitMs: d.startWaitMs,
      kinds: d.kinds,
      maxModels: d.maxModels,
    };
  }
  if (typeof value !== "object" || Array.isArray(value)) {
    fail(ctx, place, `must be ${sectionRule}`);
  }
  const map = section(ctx, place, value, discoveryKeys);
  const enabled = flag(ctx, child(place, "enabled"), map.enabled, true);
  const namingText = text(ctx, child(place, "naming"), map.naming, "id or name");
  const naming = namings.find((n) => n === (namingText ?? d.naming));
  if (naming === undefined) fail(ctx, child(place, "naming"), "must be id or name");
  const config: DiscoveryConfig = {
    enabled,
    naming,
    intervalMs: integer(ctx, child(place, "interval_ms"), map.interval_ms, {
      min: 10_000,
      max: 86_400_000,
      fallback: d.intervalMs,
    }),
    startWaitMs: integer(ctx, child(place, "start_wait_ms"), map.start_wait_ms, {
      min: 0,
      max: 60_000,
      fallback: d.startWaitMs,
    }),
    kinds: readKinds(ctx, child(place, "kinds"), map.kinds),
    maxModels: integer(ctx, child(place, "max_models"), map.max_models, {
      min: 1,
      max: 5_000,
      fallback: d.maxModels,
    }),
  };
  if (enabled) needSpace(ctx, place, spaceId);
  return config;
}

function readKinds(ctx: LoadContext, place: Place, value: unknown): readonly DiscoveryKind[] {
  if (absent(value)) return discoveryDefaults.kinds;
  const rule = "a list of bot, workflow, chatflow";
  const list = asList(ctx, place, value, rule);
  if (list.length === 0) fail(ctx, place, `is empty; expected ${rule} (or discovery: false)`);
  const kinds: DiscoveryKind[] = [];
  for (const [i, entry] of list.entries()) {
    const kind = allKinds.find((k) => k === entry);
    if (kind === undefined) fail(ctx, item(place, i), "must be bot, workflow or chatflow");
    if (kinds.includes(kind)) fail(ctx, item(place, i), `lists ${kind} twice`);
    kinds.push(kind);
  }
  return kinds;
}

function needSpace(ctx: LoadContext, place: Place, spaceId: string | undefined): void {
  if (spaceId === undefined) {
    fail(
      ctx,
      place,
      "is on, but the channel's credentials have no space_id: set space_id to the Coze space to list, or remove discovery",
    );
  }
}
