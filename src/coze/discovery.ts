import { CozeError, safeMessage } from "./errors.js";
import type { CallTrace, CozeHttp } from "./http.js";
import { bool, id, type Json, obj, str } from "./wire.js";

/** What a listed item runs: a bot, a workflow or a chatflow. */
export type ListedKind = "bot" | "workflow" | "chatflow";

/** One published bot, workflow or chatflow of a workspace. */
export interface ListedItem {
  kind: ListedKind;
  /** The Coze id: 1 to 32 digits (items with any other id are skipped). */
  id: string;
  /** Its name in Coze; may be empty. */
  name: string;
  /** Its description in Coze; may be empty. */
  description: string;
  /** The app a workflow belongs to; `undefined` for none (`"0"` on the wire) and for bots. */
  appId: string | undefined;
}

/** A whole list, as far as it was read. */
export interface ListResult {
  /** The items in Coze's order, each id once. */
  items: ListedItem[];
  /** True when the page or item cap stopped the listing while Coze had more. */
  truncated: boolean;
  /** Pages requested. */
  pages: number;
}

/** What to list. */
export interface ListOptions {
  /** The workspace (space) id. */
  workspaceId: string;
  /** Most items kept; the pages asked for are bounded by it too. */
  maxItems: number;
  signal?: AbortSignal;
  /** The refresh's trace, when tracing is on: each page is a Coze call span of it. */
  trace?: CallTrace | undefined;
}

/** The Coze discovery API: the published bots and workflows of a workspace (coze-api.md §13). */
export interface DiscoveryApi {
  /**
   * `GET /v1/bots` with `publish_status=published_online` and `connector_id=1024` (the API
   * channel), page by page (§13.2).
   * @throws CozeError as the HTTP layer classifies it (step `bots.list`); `protocol` for a
   *   body without `data.items`.
   */
  listBots(options: ListOptions): Promise<ListResult>;
  /**
   * `GET /v1/workflows` with `workflow_mode` and `publish_status=published_online`, page by
   * page on `has_more` (§13.5).
   * @throws CozeError as the HTTP layer classifies it (step `workflows.list`); `protocol` for a
   *   body without `data.items`.
   */
  listWorkflows(options: ListOptions & { mode: "workflow" | "chatflow" }): Promise<ListResult>;
}

/**
 * Page sizes: bots 20, the documented default (§13.2 gives no maximum); workflows 30, the
 * documented maximum (§13.5).
 */
export const listPageSizes = { bots: 20, workflows: 30 } as const;

const idPattern = /^\d{1,32}$/;

/** One page as read: its items and whether Coze says more follow. */
interface Page {
  items: ListedItem[];
  /** `undefined` when the page does not say (bots): a full page then means "maybe more". */
  hasMore: boolean | undefined;
}

/** Creates the discovery API on top of the HTTP layer. */
export function createDiscoveryApi(http: CozeHttp): DiscoveryApi {
  /**
   * Reads pages until one says it is the last, or comes back short or empty, or adds no new
   * id (a server that ignores the page number), or the cap is reached. Ids seen on an earlier
   * page are skipped: a publish between two page reads shifts the list.
   */
  async function all(
    options: ListOptions,
    pageSize: number,
    read: (pageNum: number) => Promise<Page>,
  ): Promise<ListResult> {
    const maxPages = Math.max(1, Math.ceil(options.maxItems / pageSize));
    const seen = new Set<string>();
    const items: ListedItem[] = [];
    for (let pageNum = 1; ; pageNum++) {
      const page = await read(pageNum);
      let added = 0;
      for (const item of page.items) {
        if (seen.has(item.id)) continue;
        seen.add(item.id);
        added++;
        if (items.length < options.maxItems) items.push(item);
      }
      const more = page.hasMore ?? page.items.length >= pageSize;
      if (!more || page.items.length === 0 || added === 0) {
        return { items, truncated: seen.size > items.length, pages: pageNum };
      }
      if (pageNum >= maxPages || items.length >= options.maxItems) {
        return { items, truncated: true, pages: pageNum };
      }
    }
  }

  return {
    listBots(options) {
      const step = "bots.list";
      const size = listPageSizes.bots;
      return all(options, size, async (pageNum) => {
        const res = await http.json({
          step,
          method: "GET",
          path: "/v1/bots",
          query: {
            workspace_id: options.workspaceId,
            publish_status: "published_online",
            connector_id: "1024",
            page_num: pageNum,
            page_size: size,
          },
          signal: options.signal,
          trace: options.trace,
        });
        const list = itemsOf(step, res.body, res.logId);
        return {
          items: list.flatMap((raw) => {
            const o = obj(raw);
            // Only what is published can be chatted with over the API.
            if (o === undefined || bool(o.is_published) === false) return [];
            return listed("bot", o.id, o.name, o.description, undefined);
          }),
          hasMore: undefined,
        };
      });
    },

    listWorkflows(options) {
      const step = "workflows.list";
      const size = listPageSizes.workflows;
      return all(options, size, async (pageNum) => {
        const res = await http.json({
          step,
          method: "GET",
          path: "/v1/workflows",
          query: {
            workspace_id: options.workspaceId,
            workflow_mode: options.mode,
            publish_status: "published_online",
            page_num: pageNum,
            page_size: size,
          },
          signal: options.signal,
          trace: options.trace,
        });
        const list = itemsOf(step, res.body, res.logId);
        const data = obj(res.body.data) as Json;
        return {
          items: list.flatMap((raw) => {
            const o = obj(raw);
            if (o === undefined) return [];
            const app = id(o.app_id);
            return listed(
              options.mode,
              o.workflow_id,
              o.workflow_name,
              o.description,
              app === "0" ? undefined : app,
            );
          }),
          hasMore: bool(data.has_more),
        };
      });
    },
  };
}

/** `data.items` of a list response; `protocol` when it is not a list. */
function itemsOf(step: string, body: Json, logId: string | undefined): unknown[] {
  const items = obj(body.data)?.items;
  if (!Array.isArray(items)) {
    throw new CozeError("protocol", safeMessage("protocol", step), { step, logId });
  }
  return items;
}

/** One item, or none when its id is not a Coze id. */
function listed(
  kind: ListedKind,
  rawId: unknown,
  name: unknown,
  description: unknown,
  appId: string | undefined,
): ListedItem[] {
  const itemId = id(rawId);
  if (itemId === undefined || !idPattern.test(itemId)) return [];
  return [{ kind, id: itemId, name: str(name) ?? "", description: str(description) ?? "", appId }];
}
