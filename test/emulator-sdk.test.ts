/**
 * Fidelity: the official Coze JS SDK (`@coze/api`, unchanged) against the emulator. If the SDK
 * cannot use the emulator, the emulator is wrong (coze-api.md: "the SDK's behaviour wins").
 */

import { createReadStream } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  APIError,
  AuthenticationError,
  BadRequestError,
  ChatEventType,
  ChatStatus,
  CozeAPI,
  getJWTToken,
  NotFoundError,
  RoleType,
  WorkflowEventType,
} from "@coze/api";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { catalog, type Emulator, type GeneratedApp, startEmulator } from "../src/emulator/index.js";

let emulator: Emulator;
let app: GeneratedApp;
let client: CozeAPI;

beforeAll(async () => {
  emulator = await startEmulator({ timing: { pingMs: 5 } });
  app = await emulator.createApp();
  const token = await jwtToken();
  client = new CozeAPI({ token: token.access_token, baseURL: emulator.url });
});
afterAll(() => emulator.close());

function jwtToken(aud = emulator.host, sessionName?: string) {
  return getJWTToken({
    baseURL: emulator.url,
    appId: app.clientId,
    aud,
    keyid: app.publicKeyId,
    privateKey: app.privateKeyPem,
    ...(sessionName === undefined ? {} : { sessionName }),
  });
}

const user = (content: string) => ({ role: RoleType.User, content, content_type: "text" as const });

describe("@coze/api against the emulator", () => {
  it("getJWTToken buys a token with the SDK's own JWT (aud = emulator host)", async () => {
    const token = await jwtToken();
    expect(token.access_token).toMatch(/^czs_/);
    expect(token.expires_in * 1000).toBeGreaterThan(Date.now() + 850_000);
  });

  it("getJWTToken surfaces a refused JWT as an AuthenticationError with the OAuth body", async () => {
    const error = await jwtToken("api.coze.com").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AuthenticationError);
    expect((error as AuthenticationError).rawError).toMatchObject({ error_code: "invalid_client" });
  });

  it("getJWTToken with sessionName: two end users cannot see each other's conversations", async () => {
    const before = emulator.stats().tokensBySession;
    const [alice, bob] = await Promise.all(
      ["alice", "bob"].map(async (sessionName) => {
        const token = await jwtToken(emulator.host, sessionName);
        return new CozeAPI({ token: token.access_token, baseURL: emulator.url });
      }),
    );
    const after = emulator.stats().tokensBySession;
    expect([after.alice, after.bob]).toEqual([(before.alice ?? 0) + 1, (before.bob ?? 0) + 1]);
    const { chat } = await alice.chat.createAndPoll({
      bot_id: catalog.bots.echo,
      additional_messages: [user("mine")],
    });
    const follow = await alice.chat.createAndPoll({
      bot_id: catalog.bots.echo,
      conversation_id: chat.conversation_id,
      additional_messages: [user("still mine")],
    });
    expect(follow.chat.conversation_id).toBe(chat.conversation_id);
    const refusals = await Promise.all([
      bob.chat
        .create({
          bot_id: catalog.bots.echo,
          conversation_id: chat.conversation_id,
          additional_messages: [user("let me in")],
        })
        .catch((e: unknown) => e),
      bob.chat.retrieve(chat.conversation_id, chat.id).catch((e: unknown) => e),
      bob.chat.messages.list(chat.conversation_id, chat.id).catch((e: unknown) => e),
      bob.chat.cancel(chat.conversation_id, chat.id).catch((e: unknown) => e),
    ]);
    for (const refusal of refusals) {
      expect(refusal).toBeInstanceOf(APIError);
      expect((refusal as APIError).code).toBe(4002);
    }
    expect((await alice.chat.retrieve(chat.conversation_id, chat.id)).status).toBe(
      ChatStatus.COMPLETED,
    );
  });

  it("chat.stream yields the echo answer in deltas, then completed and done", async () => {
    const events: Array<{ event: string; data: unknown }> = [];
    for await (const part of client.chat.stream({
      bot_id: catalog.bots.echo,
      additional_messages: [user("hello sdk")],
    })) {
      events.push(part);
    }
    const names = events.map((e) => e.event);
    expect(names.slice(0, 2)).toEqual([
      ChatEventType.CONVERSATION_CHAT_CREATED,
      ChatEventType.CONVERSATION_CHAT_IN_PROGRESS,
    ]);
    expect(names.slice(-2)).toEqual([
      ChatEventType.CONVERSATION_CHAT_COMPLETED,
      ChatEventType.DONE,
    ]);
    const deltas = events.filter((e) => e.event === ChatEventType.CONVERSATION_MESSAGE_DELTA);
    expect(deltas.length).toBeGreaterThanOrEqual(3);
    expect(deltas.map((e) => (e.data as { content: string }).content).join("")).toBe(
      "You said: hello sdk",
    );
    const completed = events.at(-2)?.data as { status: string; usage: { token_count: number } };
    expect(completed.status).toBe(ChatStatus.COMPLETED);
    expect(completed.usage.token_count).toBeGreaterThan(0);
  });

  it("chat.createAndPoll returns the completed chat and its messages", async () => {
    const { chat, messages } = await client.chat.createAndPoll({
      bot_id: catalog.bots.echo,
      additional_messages: [user("poll me")],
    });
    expect(chat.status).toBe(ChatStatus.COMPLETED);
    const types = messages?.map((m) => m.type);
    expect(types).toEqual(["answer", "verbose", "follow_up"]);
    expect(messages?.[0]?.content).toBe("You said: poll me");
  });

  it("chat.stream and submitToolOutputs complete a tool round trip", async () => {
    let chatId = "";
    let conversationId = "";
    let toolCallId = "";
    let args = "";
    for await (const part of client.chat.stream({
      bot_id: catalog.bots.tool,
      additional_messages: [user("Paris")],
    })) {
      if (part.event === ChatEventType.CONVERSATION_CHAT_REQUIRES_ACTION) {
        const call = part.data.required_action?.submit_tool_outputs.tool_calls[0];
        chatId = part.data.id;
        conversationId = part.data.conversation_id;
        toolCallId = call?.id ?? "";
        args = call?.function.arguments ?? "";
      }
    }
    expect(JSON.parse(args)).toEqual({ location: "Paris" });
    let answer = "";
    let final = "";
    for await (const part of client.chat.submitToolOutputs({
      conversation_id: conversationId,
      chat_id: chatId,
      tool_outputs: [{ tool_call_id: toolCallId, output: "sunny, 21°C" }],
      stream: true,
    })) {
      if (part.event === ChatEventType.CONVERSATION_MESSAGE_DELTA) answer += part.data.content;
      if (part.event === ChatEventType.CONVERSATION_CHAT_COMPLETED) final = part.data.status;
    }
    expect(answer).toBe("The tool said: sunny, 21°C");
    expect(final).toBe(ChatStatus.COMPLETED);
    expect((await client.chat.retrieve(conversationId, chatId)).status).toBe(ChatStatus.COMPLETED);
  });

  it("workflows.runs.create (sync) returns the output as a JSON string", async () => {
    const res = await client.workflows.runs.create({
      workflow_id: catalog.workflows.echo,
      parameters: { input: "hi" },
    });
    expect(JSON.parse(res.data)).toEqual({ output: "hi" });
    expect(res.debug_url).toContain(res.execute_id);
  });

  it("workflows.runs.stream yields Message events then Done", async () => {
    const events = [];
    for await (const e of client.workflows.runs.stream({
      workflow_id: catalog.workflows.echo,
      parameters: { input: "stream" },
    })) {
      events.push(e);
    }
    expect(events.map((e) => e.id)).toEqual(events.map((_, i) => i));
    expect(events.at(-1)?.event).toBe(WorkflowEventType.DONE);
    const end = events.at(-2)?.data as { content: string; node_title: string };
    expect(end.node_title).toBe("End");
    expect(JSON.parse(end.content)).toEqual({ output: "stream" });
  });

  it("workflows.runs.resume answers an interrupt of workflows.runs.stream", async () => {
    let eventId = "";
    let interruptType = 0;
    for await (const e of client.workflows.runs.stream({
      workflow_id: catalog.workflows.interrupt,
    })) {
      if (e.event === WorkflowEventType.INTERRUPT) {
        const data = e.data as unknown as {
          interrupt_data: { event_id: string; type: number; data: string };
        };
        eventId = data.interrupt_data.event_id;
        interruptType = data.interrupt_data.type;
        expect(data.interrupt_data.data).toBe("Which city?");
      }
    }
    expect(eventId).toMatch(/^\d{19}\/\d{19}$/);
    const resumed = [];
    for await (const e of client.workflows.runs.resume({
      workflow_id: catalog.workflows.interrupt,
      event_id: eventId,
      resume_data: "Hangzhou",
      interrupt_type: interruptType,
    })) {
      resumed.push(e);
    }
    expect(resumed[0]?.id).toBe(0);
    expect(resumed.at(-1)?.event).toBe(WorkflowEventType.DONE);
    const end = resumed.at(-2)?.data as { content?: string } | undefined;
    expect(JSON.parse(end?.content ?? "")).toEqual({
      output: "You answered: Hangzhou",
    });
  });

  it("workflows.runs.history follows an async run from Running to Success", async () => {
    const started = await client.workflows.runs.create({
      workflow_id: catalog.workflows.slowAsync,
      parameters: { input: "later", polls: 2 },
      is_async: true,
    });
    expect(started.execute_id).toMatch(/^\d{19}$/);
    const first = await client.workflows.runs.history(
      catalog.workflows.slowAsync,
      started.execute_id,
    );
    expect(first[0]?.execute_status).toBe("Running");
    const second = await client.workflows.runs.history(
      catalog.workflows.slowAsync,
      started.execute_id,
    );
    expect(second[0]?.execute_status).toBe("Success");
    expect(second[0]?.error_code).toBe("");
    expect(JSON.parse(JSON.parse(second[0]?.output ?? "").Output)).toEqual({
      output: "later",
      parameters: { input: "later", polls: 2 },
    });
  });

  it("workflows.chat.stream (chatflow) echoes the last user message", async () => {
    let answer = "";
    const names: string[] = [];
    for await (const part of client.workflows.chat.stream({
      workflow_id: catalog.workflows.chatflow,
      additional_messages: [user("flow")],
    })) {
      names.push(part.event);
      if (part.event === ChatEventType.CONVERSATION_MESSAGE_DELTA) answer += part.data.content;
    }
    expect(answer).toBe("You said: flow");
    expect(names.at(-1)).toBe(ChatEventType.DONE);
  });

  it("files.upload stores a file the echo bot can then see", async () => {
    // In Node the SDK posts axios form data, which takes a read stream (the SDK examples do this).
    const dir = await mkdtemp(join(tmpdir(), "emulator-sdk-"));
    let file: Awaited<ReturnType<typeof client.files.upload>>;
    try {
      await writeFile(join(dir, "cat.png"), "png bytes");
      file = await client.files.upload({ file: createReadStream(join(dir, "cat.png")) });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    expect(file).toMatchObject({ bytes: 9, file_name: "cat.png" });
    expect(file.id).toMatch(/^\d{19}$/);
    const content = JSON.stringify([
      { type: "text", text: "what is this" },
      { type: "image", file_id: file.id },
    ]);
    const { messages } = await client.chat.createAndPoll({
      bot_id: catalog.bots.echo,
      additional_messages: [{ role: RoleType.User, content, content_type: "object_string" }],
    });
    expect(messages?.[0]?.content).toBe(`You said: what is this [image file_id=${file.id}]`);
  });

  it("maps emulator errors to the SDK's error classes", async () => {
    const unknownBot = await client.chat
      .create({ bot_id: "7390000000000009999", additional_messages: [user("x")] })
      .catch((e: unknown) => e);
    expect(unknownBot).toBeInstanceOf(NotFoundError);
    emulator.revokeAllTokens();
    try {
      const revoked = await client.workflows.runs
        .create({ workflow_id: catalog.workflows.echo })
        .catch((e: unknown) => e);
      expect(revoked).toBeInstanceOf(AuthenticationError);
      expect((revoked as AuthenticationError).code).toBe(4100);
    } finally {
      emulator.reset();
    }
  });

  it("bots.listNew (GET /v1/bots) pages the published bots of the space", async () => {
    const first = await client.bots.listNew({ workspace_id: catalog.space, page_size: 3 });
    expect(first.total).toBe(5);
    expect(first.items.map((b) => b.name)).toEqual(["Echo", "Reasoning echo", "Weather tool"]);
    expect(first.items[0]).toMatchObject({ id: catalog.bots.echo, is_published: true });
    const second = await client.bots.listNew({
      workspace_id: catalog.space,
      page_size: 3,
      page_num: 2,
    });
    expect(second.items.map((b) => b.id)).toEqual([catalog.bots.failing, catalog.bots.slow]);
    const drafts = await client.bots.listNew({
      workspace_id: catalog.space,
      publish_status: "unpublished_draft",
    });
    expect(drafts.items.map((b) => b.name)).toEqual(["Draft bot"]);
  });

  it("bots.list (the deprecated published_bots_list) lists the same bots, newest first", async () => {
    const list = await client.bots.list({ space_id: catalog.space, page_size: 20, page_index: 1 });
    expect(list.total).toBe(5);
    expect(list.space_bots.map((b) => b.bot_id)).toEqual(Object.values(catalog.bots).reverse());
    expect(Number(list.space_bots[0]?.publish_time)).toBeGreaterThan(1_700_000_000);
  });

  it("workspaces.list finds the space the bots live in", async () => {
    const list = await client.workspaces.list({ page_num: 1, page_size: 50 });
    expect(list.total_count).toBe(1);
    expect(list.workspaces[0]).toMatchObject({ id: catalog.space, workspace_type: "personal" });
  });

  it("GET /v1/workflows through the SDK's own request path (it has no workflow list)", async () => {
    // js builds the query itself, unencoded (§13); the emulator must read it as go/py would.
    const list = (await client.get("/v1/workflows", {
      workspace_id: catalog.space,
      page_num: 1,
      page_size: 30,
      workflow_mode: "chatflow",
    })) as { code: number; data: { has_more: boolean; items: { workflow_id: string }[] } };
    expect(list.code).toBe(0);
    expect(list.data).toEqual({
      has_more: false,
      items: [expect.objectContaining({ workflow_id: catalog.workflows.chatflow })],
    });
    const missing = await client
      .get("/v1/workflows", { workspace_id: catalog.space })
      .catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(BadRequestError);
  });

  it("an unknown workspace is the SDK's NotFoundError (code 4200)", async () => {
    const error = await client.bots
      .listNew({ workspace_id: "7350000000000000999" })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NotFoundError);
    expect((error as NotFoundError).code).toBe(4200);
  });
});
