import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type CozeFixture, startCozeFixture } from "../../test/support/coze-fixture.js";
import { startScriptedServer } from "../../test/support/scripted-server.js";
import { catalog } from "../emulator/index.js";
import { createCozeClient } from "./client.js";
import { CozeError } from "./errors.js";
import { createPools } from "./pools.js";

let fx: CozeFixture;
beforeAll(async () => {
  fx = await startCozeFixture();
});
afterAll(() => fx.close());
afterEach(() => {
  fx.emulator.faults.clear();
});

const space = catalog.space;
const calls = (endpoint: "bots.list" | "workflows.list") =>
  fx.emulator.stats().calls[endpoint] ?? 0;

/** Adds `n` published bots or workflows with ids from `base` on; returns a cleanup. */
function publish(kind: "bot" | "workflow", n: number, base: string): () => void {
  const ids = Array.from({ length: n }, (_, i) => `${base}${String(i).padStart(4, "0")}`);
  for (const [i, id] of ids.entries()) fx.emulator.space.put({ kind, id, name: `${kind} ${i}` });
  return () => {
    for (const id of ids) fx.emulator.space.remove(id);
  };
}

describe("discovery.listBots (GET /v1/bots)", () => {
  it("lists the published bots with names and descriptions, not the draft", async () => {
    const before = calls("bots.list");
    const list = await fx.client.discovery.listBots({ workspaceId: space, maxItems: 100 });
    expect(list).toMatchObject({ truncated: false, pages: 1 });
    expect(list.items.map((b) => b.id)).toEqual(Object.values(catalog.bots));
    expect(list.items[0]).toEqual({
      kind: "bot",
      id: catalog.bots.echo,
      name: "Echo",
      description: "Repeats what you say.",
      appId: undefined,
    });
    expect(calls("bots.list") - before).toBe(1);
  });

  it("asks for the next page while a page is full, and stops at a short or empty one", async () => {
    const cleanup = publish("bot", 34, "739100000000010");
    try {
      const before = calls("bots.list");
      const list = await fx.client.discovery.listBots({ workspaceId: space, maxItems: 100 });
      expect(list.items).toHaveLength(39);
      expect(new Set(list.items.map((b) => b.id)).size).toBe(39);
      expect(list).toMatchObject({ truncated: false, pages: 2 });
      expect(calls("bots.list") - before).toBe(2);
    } finally {
      cleanup();
    }
    // 40 published bots fill two pages exactly: a third, empty page says the list ended.
    const exact = publish("bot", 35, "739100000000020");
    try {
      const list = await fx.client.discovery.listBots({ workspaceId: space, maxItems: 100 });
      expect(list).toMatchObject({ truncated: false, pages: 3 });
      expect(list.items).toHaveLength(40);
    } finally {
      exact();
    }
  });

  it("stops at maxItems and says the list was cut", async () => {
    const cleanup = publish("bot", 60, "739100000000030");
    try {
      const before = calls("bots.list");
      const list = await fx.client.discovery.listBots({ workspaceId: space, maxItems: 25 });
      expect(list.items).toHaveLength(25);
      expect(list.truncated).toBe(true);
      expect(calls("bots.list") - before).toBe(2);
    } finally {
      cleanup();
    }
  });

  it("fails with Coze's facts for an unknown workspace (4200), never as an empty list", async () => {
    const error = await fx.client.discovery
      .listBots({ workspaceId: "7350000000000000999", maxItems: 10 })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CozeError);
    expect(error).toMatchObject({ code: "not_found", step: "bots.list", cozeCode: 4200 });
  });
});

describe("discovery.listWorkflows (GET /v1/workflows)", () => {
  it("lists workflows and chatflows apart, with an app's workflow marked", async () => {
    const workflows = await fx.client.discovery.listWorkflows({
      workspaceId: space,
      mode: "workflow",
      maxItems: 100,
    });
    expect(workflows.items.map((w) => w.name)).toEqual([
      "echo",
      "slow_echo",
      "ask_question",
      "failing_workflow",
      "large_output",
      "app_helper",
    ]);
    expect(workflows.items.find((w) => w.name === "app_helper")?.appId).toBe("7400000000000000001");
    expect(workflows.items[0]).toMatchObject({ kind: "workflow", appId: undefined });
    const chatflows = await fx.client.discovery.listWorkflows({
      workspaceId: space,
      mode: "chatflow",
      maxItems: 100,
    });
    expect(chatflows.items).toEqual([
      {
        kind: "chatflow",
        id: catalog.workflows.chatflow,
        name: "echo_chatflow",
        description: "A chatflow that repeats what you say.",
        appId: undefined,
      },
    ]);
  });

  it("pages on has_more, 30 a page", async () => {
    const cleanup = publish("workflow", 30, "739200000000010");
    try {
      const before = calls("workflows.list");
      const list = await fx.client.discovery.listWorkflows({
        workspaceId: space,
        mode: "workflow",
        maxItems: 100,
      });
      expect(list.items).toHaveLength(36);
      expect(list.pages).toBe(2);
      expect(calls("workflows.list") - before).toBe(2);
    } finally {
      cleanup();
    }
  });

  it("is retried like any safe call on a transient 503, and fails when it persists", async () => {
    fx.emulator.faults.inject({
      kind: "status",
      endpoint: "workflows.list",
      status: 503,
      times: 1,
    });
    const list = await fx.client.discovery.listWorkflows({
      workspaceId: space,
      mode: "chatflow",
      maxItems: 10,
    });
    expect(list.items).toHaveLength(1);
    fx.emulator.faults.inject({
      kind: "status",
      endpoint: "workflows.list",
      status: 400,
      times: 1,
    });
    const error = await fx.client.discovery
      .listWorkflows({ workspaceId: space, mode: "chatflow", maxItems: 10 })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ step: "workflows.list", cozeCode: 4000 });
  });
});

describe("discovery against a broken upstream", () => {
  it("refuses a body without data.items, skips items without a Coze id, and stops on a page that repeats", async () => {
    const json = (body: unknown) => (_req: unknown, res: import("node:http").ServerResponse) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };
    const full = Array.from({ length: 20 }, (_, i) => ({
      id: `73900000000000${String(i).padStart(5, "0")}`,
      name: `b${i}`,
    }));
    const server = await startScriptedServer(
      json({ code: 0, data: { total: 1 } }),
      json({
        code: 0,
        data: { items: [{ id: "../etc", name: "x" }, { id: 12, name: 5 }, null, "junk"] },
      }),
      // A server that ignores page_num answers the same full page forever.
      json({ code: 0, data: { items: full } }),
    );
    const pools = createPools();
    try {
      const client = createCozeClient({
        baseUrl: server.url,
        tokens: { getToken: async () => "czs_test", invalidate() {} },
        pools,
      });
      const broken = await client.discovery
        .listBots({ workspaceId: space, maxItems: 10 })
        .catch((e: unknown) => e);
      expect(broken).toMatchObject({ code: "protocol", step: "bots.list" });
      const odd = await client.discovery.listBots({ workspaceId: space, maxItems: 10 });
      expect(odd.items).toEqual([
        { kind: "bot", id: "12", name: "5", description: "", appId: undefined },
      ]);
      const repeating = await client.discovery.listBots({ workspaceId: space, maxItems: 1000 });
      expect(repeating.items).toHaveLength(20);
      expect(repeating.pages).toBe(2);
      expect(server.seen.at(-1)?.url).toContain("page_num=2");
      expect(server.seen.at(-1)?.url).toContain(`workspace_id=${space}`);
      expect(server.seen.at(-1)?.url).toContain("publish_status=published_online");
    } finally {
      await pools.destroy();
      await server.close();
    }
  });
});
