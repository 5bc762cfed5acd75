import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { catalog } from "../src/emulator/index.js";
import { ModelKind, ModelService } from "../src/gen/cozegateway/v1/model_pb.js";
import { type ConfigGateway, startConfigGateway } from "./support/config-gateway.js";
import { rawRequest } from "./support/raw-http.js";

// Issue 16: /v1/models lists what a key may use, with its kind; GET /v1/models/{id} answers
// for every name the key may call. The gateway is loaded from a config file's text whose first
// channel's model list is the old new-api list, pasted as it was.
const { bots, workflows } = catalog;
const wf = {
  echo: `workflow:${workflows.echo}`,
  async: `workflow-async:${workflows.slowAsync}`,
  chatflow: `chatflow:${workflows.chatflow}`,
  failing: `workflow:${workflows.failing}`,
  unlisted: "workflow:7391000000000000099",
};
const reasoningBot = `bot:${bots.reasoning}`;
const keys = {
  all: "sk-all-0123456789abcdefghijklmn",
  workflows: "sk-workflows-0123456789abcdefgh",
  exact: "sk-exact-0123456789abcdefghijkl",
};

let gw: ConfigGateway;
beforeAll(async () => {
  gw = await startConfigGateway({
    channels: [
      // new-api's model list, comma-separated text and all.
      { name: "cn-main", default: true, models: `support-bot,${wf.async},${wf.chatflow}` },
      // A workflow and a bot declared reachable on the second channel.
      { name: "backup", models: [reasoningBot, wf.echo] },
    ],
    apiKeys: [
      { name: "all", key: keys.all },
      { name: "workflows", key: keys.workflows, models: ["workflow:*"] },
      { name: "exact", key: keys.exact, models: ["support-bot", wf.chatflow, wf.failing] },
    ],
  });
});
afterAll(async () => {
  await gw?.close();
});

const client = (key: string) => new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: key, maxRetries: 0 });
const listed = async (key: string) =>
  (await client(key).models.list()).data.map((m) => [m.id, (m as { kind?: string }).kind]);
const get = (key: string, path: string) =>
  rawRequest(`${gw.url}/v1/models/${path}`, { headers: { authorization: `Bearer ${key}` } });

describe("GET /v1/models", () => {
  it("lists every model the key may use with its kind, workflow:, workflow-async: and chatflow: routes included", async () => {
    expect(await listed(keys.all)).toEqual([
      ["support-bot", "bot"],
      [wf.async, "workflow_async"],
      [wf.chatflow, "chatflow"],
      [reasoningBot, "bot"],
      [wf.echo, "workflow"],
    ]);
    const page = await client(keys.all).models.list();
    expect(page.data[0]).toEqual({
      id: "support-bot",
      object: "model",
      created: 0,
      owned_by: "coze-gateway",
      kind: "bot",
    });
  });

  it("lists what a prefix allow-list matches, and the dynamic names an allow-list names exactly", async () => {
    // workflow:* admits any workflow id, but only the listed ones can be shown.
    expect(await listed(keys.workflows)).toEqual([[wf.echo, "workflow"]]);
    // A dynamic name no channel lists is still the key's to use: it is listed after the routes.
    expect(await listed(keys.exact)).toEqual([
      ["support-bot", "bot"],
      [wf.chatflow, "chatflow"],
      [wf.failing, "workflow"],
    ]);
  });

  it("gives ListModels over Connect the same names, kinds and channels", async () => {
    const models = createClient(
      ModelService,
      createConnectTransport({ baseUrl: gw.url, httpVersion: "1.1" }),
    );
    const res = await models.listModels({}, { headers: { authorization: `Bearer ${keys.all}` } });
    expect(res.models.map((m) => [m.name, m.kind, m.channel])).toEqual([
      ["support-bot", ModelKind.BOT, "cn-main"],
      [wf.async, ModelKind.WORKFLOW_ASYNC, "cn-main"],
      [wf.chatflow, ModelKind.CHATFLOW, "cn-main"],
      [reasoningBot, ModelKind.BOT, "backup"],
      [wf.echo, ModelKind.WORKFLOW, "backup"],
    ]);
    const exact = await models.listModels(
      {},
      { headers: { authorization: `Bearer ${keys.exact}` } },
    );
    expect(exact.models.at(-1)).toMatchObject({ name: wf.failing, channel: "cn-main" });
  });
});

describe("GET /v1/models/{id}", () => {
  it("answers with the listed entry for every listed model", async () => {
    for (const key of Object.values(keys)) {
      const page = await client(key).models.list();
      for (const model of page.data) {
        expect(await client(key).models.retrieve(model.id)).toEqual(model);
      }
    }
  });

  it("answers for a workflow:{id} name the key may call though no list shows it, with the colon raw or encoded", async () => {
    const id = workflows.slowAsync;
    const expected = { id: wf.unlisted, object: "model", created: 0, owned_by: "coze-gateway" };
    for (const key of [keys.all, keys.workflows]) {
      // The SDK encodes the colon (%3A).
      expect(await client(key).models.retrieve(wf.unlisted)).toEqual({
        ...expected,
        kind: "workflow",
      });
      for (const path of [
        wf.unlisted,
        encodeURIComponent(wf.unlisted),
        "workflow%3a7391000000000000099",
      ]) {
        const res = await get(key, path);
        expect(res.status, path).toBe(200);
        expect(JSON.parse(res.body)).toEqual({ ...expected, kind: "workflow" });
      }
    }
    const async = await get(keys.all, `workflow-async%3A${id}`);
    expect(JSON.parse(async.body)).toMatchObject({ kind: "workflow_async" });
    const bot = await get(keys.all, `bot:${bots.tool}`);
    expect(JSON.parse(bot.body)).toMatchObject({ kind: "bot" });
  });

  it("answers 404 model_not_found for a name another key may call but this one may not", async () => {
    const cases: [string, string][] = [
      [keys.workflows, "support-bot"], // all and exact may
      [keys.workflows, wf.async], // workflow:* does not match workflow-async:
      [keys.exact, wf.echo], // listed for the others
      [keys.exact, wf.unlisted],
      [keys.workflows, reasoningBot],
    ];
    for (const [key, id] of cases) {
      const err = await client(key)
        .models.retrieve(id)
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(err, id).toBeInstanceOf(OpenAI.NotFoundError);
      const res = await get(key, encodeURIComponent(id));
      expect(res.status).toBe(404);
      // The same answer as for a name nobody may call: it tells nothing of other keys.
      expect(JSON.parse(res.body)).toEqual({
        error: {
          message: `The model '${id}' does not exist or you do not have access to it.`,
          type: "invalid_request_error",
          code: "model_not_found",
          param: "model",
        },
      });
    }
  });

  it("answers 404 for names no route resolves: bad ids, bare prefixes, garbage and oversized names", async () => {
    for (const path of [
      "workflow:abc",
      "workflow:",
      "workflow%3A",
      `workflow:${"1".repeat(33)}`,
      "no-such-model",
      "support-bot%00",
      "%E0%A4%A",
      "..%2F..%2Fhealthz",
      `x${"y".repeat(4000)}`,
    ]) {
      const res = await get(keys.all, path);
      expect(res.status, path.slice(0, 40)).toBe(404);
      const body = JSON.parse(res.body) as { error: { code: string; message: string } };
      expect(body.error.code).toBe("model_not_found");
      expect(body.error.message.length).toBeLessThan(200);
    }
  });

  it("runs a listed workflow:{id} and bot:{id} on the channel that lists them; other ids on the default", async () => {
    const ask = (key: string, model: string) =>
      client(key)
        .chat.completions.create({ model, messages: [{ role: "user", content: "hi" }] })
        .withResponse();
    const run = await ask(keys.all, wf.echo);
    expect(run.data.choices[0]?.message.content).toBe("hi");
    expect(run.response.headers.get("x-gateway-channel")).toBe("backup");
    const bot = await ask(keys.all, reasoningBot);
    expect(bot.data.choices[0]?.message.content).toBe("You said: hi");
    expect(bot.response.headers.get("x-gateway-channel")).toBe("backup");
    const other = await ask(keys.all, `bot:${bots.echo}`);
    expect(other.response.headers.get("x-gateway-channel")).toBe("cn-main");
  });
});
