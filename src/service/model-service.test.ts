import { randomBytes } from "node:crypto";
import { createClient, createRouterTransport, type Interceptor } from "@connectrpc/connect";
import { beforeAll, describe, expect, it } from "vitest";
import { generateRsaKey, parseObject, validConfig } from "../../test/support/config-fixtures.js";
import type { GatewayConfig } from "../config/index.js";
import { ModelKind, ModelService } from "../gen/cozegateway/v1/model_pb.js";
import { type Caller, callerKey } from "./caller.js";
import { createModelTable, type ModelTable } from "./discovery-table.js";
import { createModelService } from "./model-service.js";
import { createTenant } from "./tenant.js";

let config: GatewayConfig;
beforeAll(async () => {
  const raw = validConfig(generateRsaKey());
  const channel = raw.channels[0];
  if (channel !== undefined) {
    channel.models = ["support-bot", "workflow:7391000000000000001", "bot:7390000000000000002"];
  }
  config = await parseObject(raw, "/nonexistent");
});

/** ListModels as `models` (an allow-list, or none) sees it. */
async function list(models: string[] | undefined) {
  return (await listFull(models, createModelTable(config))).map((m) => [m.name, m.kind]);
}

/** The whole ListModels answer for an allow-list, from `table`. */
async function listFull(models: string[] | undefined, table: ModelTable) {
  const caller: Caller = {
    name: "k",
    models,
    tenant: createTenant(randomBytes(32), randomBytes(32)),
  };
  const asCaller: Interceptor = (next) => (req) => {
    req.contextValues.set(callerKey, caller);
    return next(req);
  };
  const transport = createRouterTransport(
    (router) => router.service(ModelService, createModelService(table)),
    { router: { interceptors: [asCaller] } },
  );
  return (await createClient(ModelService, transport).listModels({})).models;
}

describe("ModelService.ListModels", () => {
  it("lists the channel's routes, dynamic entries included, with their kinds", async () => {
    expect(await list(undefined)).toEqual([
      ["support-bot", ModelKind.BOT],
      ["workflow:7391000000000000001", ModelKind.WORKFLOW],
      ["bot:7390000000000000002", ModelKind.BOT],
    ]);
  });

  it("adds the allow-list's exact dynamic names once each, after the routes, and nothing it cannot resolve", async () => {
    expect(
      await list([
        "workflow-async:7391000000000000002",
        "workflow:7391000000000000001",
        "workflow-async:7391000000000000002",
        "chatflow:7391000000000000006",
        "workflow:abc",
        "no-such-model",
        "bot:*",
      ]),
    ).toEqual([
      ["workflow:7391000000000000001", ModelKind.WORKFLOW],
      ["bot:7390000000000000002", ModelKind.BOT],
      ["workflow-async:7391000000000000002", ModelKind.WORKFLOW_ASYNC],
      ["chatflow:7391000000000000006", ModelKind.CHATFLOW],
    ]);
  });

  it("lists discovered names after the configured ones, with Coze's names and descriptions, under the same allow-list", async () => {
    const table = createModelTable(config);
    table.setDiscovered("cn-main", [
      { kind: "workflow", id: "7391000000000000042", name: "report", description: "Weekly." },
      { kind: "bot", id: "7390000000000000002", name: "Helper", description: "Lends its name." },
      { kind: "bot", id: "7390000000000000041", name: "Sales", description: "Sells." },
    ]);
    const all = await listFull(undefined, table);
    expect(
      all.map((m) => [m.name, m.kind, m.displayName, m.description, m.discovered, m.channel]),
    ).toEqual([
      ["support-bot", ModelKind.BOT, "", "", false, "cn-main"],
      ["workflow:7391000000000000001", ModelKind.WORKFLOW, "", "", false, "cn-main"],
      // A configured route of the same bot: listed once, under its configured name.
      ["bot:7390000000000000002", ModelKind.BOT, "Helper", "Lends its name.", false, "cn-main"],
      ["bot:7390000000000000041", ModelKind.BOT, "Sales", "Sells.", true, "cn-main"],
      ["workflow:7391000000000000042", ModelKind.WORKFLOW, "report", "Weekly.", true, "cn-main"],
    ]);
    const limited = await listFull(["bot:*", "workflow:7391000000000000042"], table);
    expect(limited.map((m) => m.name)).toEqual([
      "bot:7390000000000000002",
      "bot:7390000000000000041",
      "workflow:7391000000000000042",
    ]);
  });
});
