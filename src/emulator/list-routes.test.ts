import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { catalog } from "./catalog.js";
import { startEmulator } from "./server.js";
import { callApi, mintToken } from "./testing.js";
import type { Emulator } from "./types.js";

// The discovery endpoints against coze-api.md §13, on the wire (the SDK view is in
// test/emulator-sdk.test.ts).

let emulator: Emulator;
let token: string;
let clockMs = Date.now();

beforeAll(async () => {
  emulator = await startEmulator({ now: () => clockMs });
  token = await mintToken(emulator, await emulator.createApp());
});
afterAll(() => emulator.close());
beforeEach(() => emulator.faults.clear());

type Json = Record<string, unknown>;
const get = (path: string, as: string | undefined = token) => callApi(emulator, as, "GET", path);
const data = async <T = Json>(path: string) => {
  const reply = await get(path);
  const body = reply.json<{ code: number; msg: string; data: T; detail: { logid: string } }>();
  expect(reply.status).toBe(200);
  expect(body.code).toBe(0);
  expect(reply.headers.get("content-type")).toBe("application/json");
  expect(body.detail.logid).toBe(reply.headers.get("x-tt-logid"));
  return body.data;
};
const space = catalog.space;

/** The envelope code and HTTP status of a call. */
async function refusal(path: string, as: string | undefined = token) {
  const reply = await get(path, as);
  const body = reply.json<{ code: number; msg: string }>();
  return { status: reply.status, code: body.code, msg: body.msg };
}

describe("GET /v1/bots (§13.2)", () => {
  it("lists the bots published to the API channel with every documented field, total = all", async () => {
    const page = await data<{ items: Json[]; total: number }>(`/v1/bots?workspace_id=${space}`);
    expect(page.total).toBe(5);
    expect(page.items.map((b) => b.id)).toEqual(Object.values(catalog.bots));
    const echo = page.items[0];
    expect(echo).toEqual({
      id: catalog.bots.echo,
      name: "Echo",
      icon_url: expect.stringMatching(/^https:\/\//),
      folder_id: "",
      description: "Repeats what you say.",
      owner_user_id: expect.stringMatching(/^\d+$/),
      updated_at: expect.any(Number),
      is_published: true,
      published_at: expect.any(Number),
    });
  });

  it("pages with page_num, or page_index when page_num is absent (py's v2 list)", async () => {
    const second = await data<{ items: Json[] }>(
      `/v1/bots?workspace_id=${space}&page_num=2&page_size=2`,
    );
    expect(second.items.map((b) => b.id)).toEqual([catalog.bots.tool, catalog.bots.failing]);
    const byIndex = await data<{ items: Json[] }>(
      `/v1/bots?workspace_id=${space}&page_index=3&page_size=2`,
    );
    expect(byIndex.items.map((b) => b.id)).toEqual([catalog.bots.slow]);
    const past = await data<{ items: Json[]; total: number }>(
      `/v1/bots?workspace_id=${space}&page_num=9`,
    );
    expect(past).toEqual({ items: [], total: 5 });
  });

  it("filters by publish_status: a draft only under all and unpublished_draft", async () => {
    const drafts = await data<{ items: Json[] }>(
      `/v1/bots?workspace_id=${space}&publish_status=unpublished_draft`,
    );
    expect(drafts.items).toEqual([
      expect.objectContaining({ name: "Draft bot", is_published: false }),
    ]);
    expect(drafts.items[0]).not.toHaveProperty("published_at");
    const all = await data<{ total: number }>(`/v1/bots?workspace_id=${space}&publish_status=all`);
    expect(all.total).toBe(6);
    // Another connector than the API channel (1024) has nothing published.
    const other = await data<{ total: number }>(`/v1/bots?workspace_id=${space}&connector_id=999`);
    expect(other.total).toBe(0);
  });

  it("refuses a missing workspace (4000), an unknown one (4200) and bad values (4000)", async () => {
    expect(await refusal("/v1/bots")).toMatchObject({ status: 200, code: 4000 });
    expect(await refusal("/v1/bots?workspace_id=")).toMatchObject({ code: 4000 });
    expect(await refusal("/v1/bots?workspace_id=7350000000000000999")).toMatchObject({
      status: 200,
      code: 4200,
    });
    expect(await refusal(`/v1/bots?workspace_id=${space}&publish_status=drafts`)).toMatchObject({
      code: 4000,
    });
    expect(await refusal(`/v1/bots?workspace_id=${space}&page_num=-1`)).toMatchObject({
      code: 4000,
    });
    expect(await refusal(`/v1/bots?workspace_id=${space}&page_size=x`)).toMatchObject({
      code: 4000,
    });
  });

  it("needs a valid token (4100)", async () => {
    expect(await refusal(`/v1/bots?workspace_id=${space}`, "czs_forged")).toMatchObject({
      status: 401,
      code: 4100,
    });
  });
});

describe("GET /v1/space/published_bots_list (§13.3)", () => {
  it("lists the published bots newest first, publish_time a 10-digit string", async () => {
    const list = await data<{ space_bots: Json[]; total: number }>(
      `/v1/space/published_bots_list?space_id=${space}&page_size=2`,
    );
    expect(list.total).toBe(5);
    expect(list.space_bots).toEqual([
      {
        bot_id: catalog.bots.slow,
        bot_name: "Slow talker",
        description: expect.any(String),
        icon_url: expect.any(String),
        publish_time: expect.stringMatching(/^\d{10}$/),
      },
      expect.objectContaining({ bot_id: catalog.bots.failing }),
    ]);
    const next = await data<{ space_bots: Json[] }>(
      `/v1/space/published_bots_list?space_id=${space}&page_size=2&page_index=2`,
    );
    expect(next.space_bots.map((b) => b.bot_id)).toEqual([
      catalog.bots.tool,
      catalog.bots.reasoning,
    ]);
  });

  it("refuses a missing space_id (4000) and an unknown one (4200)", async () => {
    expect(await refusal("/v1/space/published_bots_list")).toMatchObject({ code: 4000 });
    expect(await refusal("/v1/space/published_bots_list?space_id=1")).toMatchObject({
      code: 4200,
    });
  });
});

describe("GET /v1/workflows (§13.5)", () => {
  const list = (query: string) =>
    data<{ has_more: boolean; items: Json[] }>(`/v1/workflows?workspace_id=${space}&${query}`);

  it("lists workflows and chatflows with string times, 10 a page by default", async () => {
    const page = await list("page_num=1");
    expect(page.has_more).toBe(false);
    expect(page.items.map((w) => w.workflow_name)).toEqual([
      "echo",
      "slow_echo",
      "ask_question",
      "failing_workflow",
      "large_output",
      "app_helper",
      "echo_chatflow",
    ]);
    expect(page.items[0]).toEqual({
      workflow_id: catalog.workflows.echo,
      workflow_name: "echo",
      app_id: "0",
      description: "Outputs its input.",
      icon_url: expect.stringMatching(/^https:\/\//),
      created_at: expect.stringMatching(/^\d{10}$/),
      updated_at: expect.stringMatching(/^\d{10}$/),
      creator: { id: expect.stringMatching(/^\d+$/), name: expect.any(String) },
    });
  });

  it("filters by workflow_mode and app_id, and pages on has_more", async () => {
    const chatflows = await list("page_num=1&workflow_mode=chatflow");
    expect(chatflows.items.map((w) => w.workflow_id)).toEqual([catalog.workflows.chatflow]);
    const first = await list("page_num=1&page_size=4&workflow_mode=workflow");
    expect(first.has_more).toBe(true);
    expect(first.items).toHaveLength(4);
    const second = await list("page_num=2&page_size=4&workflow_mode=workflow");
    expect(second).toMatchObject({ has_more: false });
    expect(second.items.map((w) => w.workflow_name)).toEqual(["large_output", "app_helper"]);
    const app = await list("page_num=1&app_id=7400000000000000001");
    expect(app.items.map((w) => w.workflow_name)).toEqual(["app_helper"]);
  });

  it("clamps page_size to 30 rather than refusing it (py asks for 100, §13.7)", async () => {
    for (let i = 0; i < 30; i++) {
      emulator.space.put({ kind: "workflow", id: `76000000000000000${10 + i}`, name: `w${i}` });
    }
    try {
      const page = await list("page_num=1&page_size=100");
      expect(page.items).toHaveLength(30);
      expect(page.has_more).toBe(true);
    } finally {
      for (let i = 0; i < 30; i++) emulator.space.remove(`76000000000000000${10 + i}`);
    }
  });

  it("needs page_num and a known workspace, and valid filters", async () => {
    expect(await refusal(`/v1/workflows?workspace_id=${space}`)).toMatchObject({ code: 4000 });
    expect(await refusal(`/v1/workflows?workspace_id=${space}&page_num=0`)).toMatchObject({
      code: 4000,
    });
    expect(await refusal("/v1/workflows?page_num=1")).toMatchObject({ code: 4000 });
    expect(await refusal("/v1/workflows?workspace_id=42&page_num=1")).toMatchObject({
      code: 4200,
    });
    expect(
      await refusal(`/v1/workflows?workspace_id=${space}&page_num=1&workflow_mode=bot`),
    ).toMatchObject({ code: 4000 });
    expect(
      await refusal(
        `/v1/workflows?workspace_id=${space}&page_num=1&publish_status=published_draft`,
      ),
    ).toMatchObject({ code: 4000 });
  });
});

describe("GET /v1/workspaces (§13.1)", () => {
  it("lists the one personal workspace with total_count", async () => {
    const list = await data<{ workspaces: Json[]; total_count: number }>("/v1/workspaces");
    expect(list.total_count).toBe(1);
    expect(list.workspaces[0]).toMatchObject({
      id: space,
      name: expect.any(String),
      icon_url: expect.any(String),
      role_type: "owner",
      workspace_type: "personal",
      enterprise_id: "",
    });
    expect(await data("/v1/workspaces?enterprise_id=volcano_1")).toEqual({
      workspaces: [],
      total_count: 0,
    });
    expect(await refusal("/v1/workspaces?user_id=1")).toMatchObject({ code: 4000 });
  });
});

describe("the space as tests change it", () => {
  it("publishes, renames and removes entries; a new publish time comes from the clock", async () => {
    clockMs += 60_000;
    emulator.space.put({ kind: "bot", id: "7390000000000000077", name: "New bot" });
    try {
      const newest = await data<{ space_bots: Json[] }>(
        `/v1/space/published_bots_list?space_id=${space}&page_size=1`,
      );
      expect(newest.space_bots[0]).toMatchObject({
        bot_id: "7390000000000000077",
        publish_time: String(Math.floor(clockMs / 1000)),
      });
      emulator.space.put({ kind: "bot", id: "7390000000000000077", name: "Renamed" });
      const bots = await data<{ items: Json[] }>(`/v1/bots?workspace_id=${space}`);
      expect(bots.items.at(-1)).toMatchObject({ id: "7390000000000000077", name: "Renamed" });
    } finally {
      emulator.space.remove("7390000000000000077");
    }
    expect((await data<{ total: number }>(`/v1/bots?workspace_id=${space}`)).total).toBe(5);
    expect(() => emulator.space.put({ kind: "bot", id: "x1", name: "bad" })).toThrow(TypeError);
  });

  it("counts each list endpoint for stats and faults", async () => {
    const before = emulator.stats().calls;
    emulator.faults.inject({ kind: "status", endpoint: "workflows.list", status: 503, times: 1 });
    expect(await refusal(`/v1/workflows?workspace_id=${space}&page_num=1`)).toMatchObject({
      status: 503,
      code: 5000,
    });
    await get(`/v1/bots?workspace_id=${space}`);
    const after = emulator.stats().calls;
    expect((after["workflows.list"] ?? 0) - (before["workflows.list"] ?? 0)).toBe(1);
    expect((after["bots.list"] ?? 0) - (before["bots.list"] ?? 0)).toBe(1);
  });
});
