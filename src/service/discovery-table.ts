import {
  type DiscoveryKind,
  defaultChannel,
  dynamicRoute,
  type GatewayConfig,
  type ModelRoute,
} from "../config/index.js";
import { displayText, idName, nameOf } from "./discovery-names.js";
import type { ModelInfo } from "./model-info.js";

/** One published bot, workflow or chatflow a channel's discovery found. */
export interface DiscoveredItem {
  kind: DiscoveryKind;
  /** The Coze id (digits). */
  id: string;
  /** Its name in Coze. */
  name: string;
  /** Its description in Coze. */
  description: string;
}

/** A name the table lists, with what the REST door and ListModels say of it. */
export interface ListedModel {
  /** The route (for a name several channels serve, the first). */
  route: ModelRoute;
  info: ModelInfo;
}

/** What a change of the discovered models did, for the log. */
export interface TableChange {
  /** Discovered names served now that were not before, and the other way round. */
  added: string[];
  removed: string[];
  /**
   * Items that did not get their preferred name: taken by a configured route (config wins) or
   * by another item (a collision), as `"{preferred} → {name}"`; `{name}` is `none` when the
   * item is not served under a name of its own (a configured route already runs it).
   */
  renamed: string[];
}

/**
 * The model names served now: the configured routes, which never change, and the models
 * discovery found on each channel, replaced as a whole on each refresh. Lookups are one or two
 * map reads on tables built when the list changes, never on a request.
 */
export interface ModelTable {
  /**
   * Every route of `name`: its configured routes (several channels: a failover route), else its
   * discovered ones, else the one dynamic route (`workflow:{id}`… on the default channel); empty
   * when unknown. Configured and discovered arrays are shared: never change them.
   */
  resolveRoutes(name: string): readonly ModelRoute[];
  /** What `name` runs, as {@link resolveRoutes} resolves it; `undefined` when unknown. */
  info(name: string): ModelInfo | undefined;
  /**
   * The names to list, each once: the configured routes in file order, then the discovered ones
   * by channel, kind (bots, workflows, chatflows) and name.
   */
  listed(): readonly ListedModel[];
  /**
   * Replaces `channel`'s discovered items. Naming follows the channel's `discovery.naming`; a
   * name a configured route owns, or that two different items want, falls back to the `id`
   * name. An item a configured route of the same channel already runs is not listed again: it
   * lends that route its name and description.
   */
  setDiscovered(channel: string, items: readonly DiscoveredItem[]): TableChange;
  /** How many names `channel`'s discovered items are served under now, by kind. */
  served(channel: string): Record<DiscoveryKind, number>;
  /** The items last handed to {@link setDiscovered} for `channel`; empty when none. */
  discovered(channel: string): readonly DiscoveredItem[];
}

const kindOrder: Record<DiscoveryKind, number> = { bot: 0, workflow: 1, chatflow: 2 };
const none: readonly ModelRoute[] = [];

/** The class of a route's target, for matching a configured route to a discovered item. */
const targetKind = (kind: ModelRoute["kind"]): DiscoveryKind =>
  kind === "workflow_async" ? "workflow" : kind;
const targetKey = (channel: string, kind: DiscoveryKind, id: string) =>
  `${channel}\0${kind}\0${id}`;

const plainInfo = (route: ModelRoute): ModelInfo => ({
  kind: route.kind,
  inputField: route.inputField,
  displayName: "",
  description: "",
  discovered: false,
});

interface Candidate {
  channel: string;
  channelIndex: number;
  item: DiscoveredItem;
  idName: string;
  name: string;
}

interface State {
  routes: ReadonlyMap<string, readonly ModelRoute[]>;
  info: ReadonlyMap<string, ModelInfo>;
  listed: readonly ListedModel[];
  served: ReadonlyMap<string, Record<DiscoveryKind, number>>;
  renamed: string[];
}

/** Creates the table of `config`'s routes, with nothing discovered yet. */
export function createModelTable(config: GatewayConfig): ModelTable {
  const fallbackChannel = defaultChannel(config)?.name;
  const channelIndex = new Map(config.channels.map((c, i) => [c.name, i]));
  const naming = new Map(config.channels.map((c) => [c.name, c.discovery.naming]));
  const configured = new Map<string, ModelRoute[]>();
  const byTarget = new Map<string, ModelRoute[]>();
  for (const route of config.models) {
    configured.set(route.name, [...(configured.get(route.name) ?? []), route]);
    const key = targetKey(route.channel, targetKind(route.kind), route.targetId);
    byTarget.set(key, [...(byTarget.get(key) ?? []), route]);
  }
  const found = new Map<string, readonly DiscoveredItem[]>();
  let state = build();

  function build(): State {
    const info = new Map<string, ModelInfo>();
    const lent = new Map<ModelRoute, DiscoveredItem>();
    const candidates: Candidate[] = [];
    const renamed: string[] = [];
    for (const [channel, items] of found) {
      for (const item of items) {
        const owners = byTarget.get(targetKey(channel, item.kind, item.id));
        if (owners !== undefined) {
          for (const route of owners) if (!lent.has(route)) lent.set(route, item);
          continue;
        }
        const byId = idName(item.kind, item.id);
        const preferred = naming.get(channel) === "name" ? (nameOf(item.name) ?? byId) : byId;
        candidates.push({
          channel,
          channelIndex: channelIndex.get(channel) ?? 0,
          item,
          idName: byId,
          name: preferred,
        });
      }
    }
    // Config wins; then two different items that want one name both take their id names.
    const fallBack = (c: Candidate) => {
      renamed.push(`${c.name} → ${configured.has(c.idName) ? "none" : c.idName}`);
      c.name = c.idName;
    };
    for (const c of candidates) if (configured.has(c.name)) fallBack(c);
    const groups = group(candidates);
    for (const members of groups.values()) {
      const [first] = members;
      const same = members.every(
        (m) => m.item.kind === first?.item.kind && m.item.id === first.item.id,
      );
      if (!same) for (const m of members) if (m.name !== m.idName) fallBack(m);
    }
    const served = new Map<string, Record<DiscoveryKind, number>>();
    const routes = new Map<string, ModelRoute[]>();
    const order = candidates
      .filter((c) => !configured.has(c.name))
      .sort(
        (a, b) =>
          a.channelIndex - b.channelIndex ||
          kindOrder[a.item.kind] - kindOrder[b.item.kind] ||
          (a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
      );
    const discovered: ListedModel[] = [];
    for (const c of order) {
      const route: ModelRoute = {
        name: c.name,
        channel: c.channel,
        kind: c.item.kind,
        targetId: c.item.id,
        inputField: "input",
        weight: 1,
      };
      const count = served.get(c.channel) ?? { bot: 0, workflow: 0, chatflow: 0 };
      count[c.item.kind]++;
      served.set(c.channel, count);
      const list = routes.get(c.name);
      if (list !== undefined) {
        list.push(route); // the same item on another channel: failover
        continue;
      }
      routes.set(c.name, [route]);
      const entry = { route, info: describe(route, c.item, true) };
      info.set(c.name, entry.info);
      discovered.push(entry);
    }
    const listedConfig: ListedModel[] = [];
    for (const [name, list] of configured) {
      const route = list[0] as ModelRoute;
      const item = list.map((r) => lent.get(r)).find((i) => i !== undefined);
      const entry = { route, info: item ? describe(route, item, false) : plainInfo(route) };
      info.set(name, entry.info);
      listedConfig.push(entry);
    }
    return { routes, info, listed: [...listedConfig, ...discovered], served, renamed };
  }

  return {
    resolveRoutes(name) {
      const routes = configured.get(name) ?? state.routes.get(name);
      if (routes !== undefined) return routes;
      const dynamic = dynamicRoute(fallbackChannel, name);
      return dynamic === undefined ? none : [dynamic];
    },
    info(name) {
      const known = state.info.get(name);
      if (known !== undefined) return known;
      const dynamic = dynamicRoute(fallbackChannel, name);
      return dynamic && plainInfo(dynamic);
    },
    listed: () => state.listed,
    setDiscovered(channel, items) {
      const before = new Set(state.routes.keys());
      found.set(channel, items);
      state = build();
      const after = new Set(state.routes.keys());
      return {
        added: [...after].filter((n) => !before.has(n)),
        removed: [...before].filter((n) => !after.has(n)),
        renamed: state.renamed,
      };
    },
    served: (channel) => ({
      ...(state.served.get(channel) ?? { bot: 0, workflow: 0, chatflow: 0 }),
    }),
    discovered: (channel) => found.get(channel) ?? [],
  };
}

function group(candidates: readonly Candidate[]): Map<string, Candidate[]> {
  const groups = new Map<string, Candidate[]>();
  for (const c of candidates) groups.set(c.name, [...(groups.get(c.name) ?? []), c]);
  return groups;
}

function describe(route: ModelRoute, item: DiscoveredItem, discovered: boolean): ModelInfo {
  return {
    kind: route.kind,
    inputField: route.inputField,
    displayName: displayText(item.name, 200),
    description: displayText(item.description),
    discovered,
  };
}
