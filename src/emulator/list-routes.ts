import { badRequest, type Ctx, notFound, queryParam, sendData } from "./http-io.js";
import { type SpaceEntry, spaceInfo } from "./space.js";
import type { EmulatorState } from "./state.js";

/**
 * The discovery endpoints (coze-api.md §13): `GET /v1/workspaces`, `GET /v1/bots`, the
 * deprecated `GET /v1/space/published_bots_list` and `GET /v1/workflows`, over the emulator's
 * one space. Decisions of §13.7: page sizes are clamped to the documented maximum instead of
 * refused, `/v1/bots` reads `page_num` and falls back to `page_index`, workflow times are
 * numeric strings, `total`/`total_count` count everything, a missing required parameter is
 * 4000 and an unknown workspace 4200. Query values `""` and `0` count as absent (§1.6).
 */

/** `GET /v1/workspaces` (§13.1): `{workspaces, total_count}`; page size 20 by default, at most 50. */
export function handleListWorkspaces(_state: EmulatorState, ctx: Ctx): void {
  const page = paging(ctx, "page_num", { size: 20, max: 50 });
  const userId = queryParam(ctx, "user_id");
  const accountId = queryParam(ctx, "coze_account_id");
  if ((userId === undefined) !== (accountId === undefined)) {
    throw badRequest("user_id and coze_account_id must be given together");
  }
  // The one space is a personal one: it belongs to no enterprise or organisation.
  const all =
    queryParam(ctx, "enterprise_id") !== undefined || userId !== undefined ? [] : [spaceInfo];
  sendData(ctx, { workspaces: slice(all, page), total_count: all.length });
}

const botStatuses = new Set(["all", "published_online", "published_draft", "unpublished_draft"]);

/**
 * `GET /v1/bots` (§13.2): `{items, total}`. `workspace_id` is required; `publish_status`
 * defaults to `published_online`; `connector_id` (default 1024, the API channel: the only one
 * the emulator publishes to) applies to the published states.
 */
export function handleListBots(state: EmulatorState, ctx: Ctx): void {
  checkSpace(state, ctx, "workspace_id");
  const status = queryParam(ctx, "publish_status") ?? "published_online";
  if (!botStatuses.has(status)) {
    throw badRequest(`publish_status must be one of ${[...botStatuses].join(", ")}`);
  }
  const connector = queryParam(ctx, "connector_id") ?? "1024";
  const pageKey = queryParam(ctx, "page_num") === undefined ? "page_index" : "page_num";
  const page = paging(ctx, pageKey, { size: 20 });
  const bots = state.space
    .list()
    .filter((e) => e.kind === "bot")
    .filter((e) => {
      switch (status) {
        case "all":
          return true;
        case "published_online":
          return e.published && connector === "1024";
        case "unpublished_draft":
          return !e.published;
        default:
          // published_draft: published, with later draft changes; the emulator keeps none.
          return false;
      }
    });
  sendData(ctx, {
    items: slice(bots, page).map((e) => ({
      id: e.id,
      name: e.name,
      icon_url: iconUrl(e),
      folder_id: "",
      description: e.description,
      owner_user_id: spaceInfo.owner_uid,
      updated_at: e.updatedAt,
      is_published: e.published,
      ...(e.publishedAt === undefined ? {} : { published_at: e.publishedAt }),
    })),
    total: bots.length,
  });
}

/**
 * `GET /v1/space/published_bots_list` (§13.3, deprecated): `{space_bots, total}`, the bots
 * published to the API channel, newest `publish_time` (a 10-digit string) first.
 */
export function handlePublishedBots(state: EmulatorState, ctx: Ctx): void {
  checkSpace(state, ctx, "space_id");
  const page = paging(ctx, "page_index", { size: 20 });
  const bots = state.space
    .list()
    .filter((e) => e.kind === "bot" && e.published)
    .sort((a, b) => (b.publishedAt ?? 0) - (a.publishedAt ?? 0));
  sendData(ctx, {
    space_bots: slice(bots, page).map((e) => ({
      bot_id: e.id,
      bot_name: e.name,
      description: e.description,
      icon_url: iconUrl(e),
      publish_time: String(e.publishedAt ?? 0),
    })),
    total: bots.length,
  });
}

const workflowStatuses = new Set(["all", "published_online", "unpublished_draft"]);
const workflowModes = new Set(["workflow", "chatflow"]);

/**
 * `GET /v1/workflows` (§13.5): `{has_more, items}`. `workspace_id` and `page_num` are required;
 * `page_size` 10 by default, clamped to 30; `workflow_mode` absent lists both kinds; `app_id`
 * keeps one app's workflows; `publish_status` defaults to `published_online`.
 */
export function handleListWorkflows(state: EmulatorState, ctx: Ctx): void {
  checkSpace(state, ctx, "workspace_id");
  if (nonZero(queryParam(ctx, "page_num")) === undefined) throw badRequest("page_num is required");
  const page = paging(ctx, "page_num", { size: 10, max: 30 });
  const mode = queryParam(ctx, "workflow_mode");
  if (mode !== undefined && !workflowModes.has(mode)) {
    throw badRequest("workflow_mode must be workflow or chatflow");
  }
  const status = queryParam(ctx, "publish_status") ?? "published_online";
  if (!workflowStatuses.has(status)) {
    throw badRequest(`publish_status must be one of ${[...workflowStatuses].join(", ")}`);
  }
  const appId = nonZero(queryParam(ctx, "app_id"));
  const workflows = state.space
    .list()
    .filter((e) => (mode === undefined ? e.kind !== "bot" : e.kind === mode))
    .filter((e) => appId === undefined || e.appId === appId)
    .filter((e) => status === "all" || (status === "published_online") === e.published);
  const items = slice(workflows, page);
  sendData(ctx, {
    has_more: page.offset + items.length < workflows.length,
    items: items.map((e) => ({
      workflow_id: e.id,
      workflow_name: e.name,
      app_id: e.appId,
      description: e.description,
      icon_url: iconUrl(e),
      // Strings, as the spec types them (§13.7).
      created_at: String(e.createdAt),
      updated_at: String(e.updatedAt),
      creator: { id: spaceInfo.owner_uid, name: "emulator" },
    })),
  });
}

/** The requested workspace must be the emulator's: 4000 when absent, 4200 when another. */
function checkSpace(state: EmulatorState, ctx: Ctx, param: string): void {
  const id = nonZero(queryParam(ctx, param));
  if (id === undefined) throw badRequest(`${param} is required`);
  if (id !== state.space.id) throw notFound(`workspace ${id.slice(0, 40)} not found`);
}

interface Page {
  offset: number;
  size: number;
}

/**
 * The page a query asks for: `pageKey` (default 1) and `page_size` (default `size`, clamped to
 * `max` when there is one). A value that is not a positive integer is 4000; `0` is absent.
 */
function paging(ctx: Ctx, pageKey: string, limits: { size: number; max?: number }): Page {
  const num = positive(ctx, pageKey) ?? 1;
  const asked = positive(ctx, "page_size") ?? limits.size;
  const size = limits.max === undefined ? asked : Math.min(asked, limits.max);
  return { offset: (num - 1) * size, size };
}

function positive(ctx: Ctx, name: string): number | undefined {
  const raw = nonZero(queryParam(ctx, name));
  if (raw === undefined) return undefined;
  if (!/^\d{1,9}$/.test(raw)) throw badRequest(`${name} must be a positive integer`);
  return Number(raw);
}

/** `""` and `0` are absent (§1.6). */
function nonZero(value: string | undefined): string | undefined {
  return value === undefined || /^0+$/.test(value) ? undefined : value;
}

function slice<T>(list: readonly T[], page: Page): T[] {
  return list.slice(page.offset, page.offset + page.size);
}

function iconUrl(entry: SpaceEntry): string {
  return `https://emulator.invalid/icons/${entry.kind}/${entry.id}.png`;
}
