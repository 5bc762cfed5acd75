/**
 * Fidelity of the credentials the official Coze JS SDK (`@coze/api`, unchanged) has: personal
 * access tokens (coze-api.md §11) and the cross-account JWT endpoint (§12.1; the SDK has no
 * enterprise variant). The SDK's behaviour wins: if it cannot use the emulator, the emulator is
 * wrong.
 */
import {
  APIError,
  AuthenticationError,
  BadRequestError,
  CozeAPI,
  getJWTToken,
  PermissionDeniedError,
  RoleType,
} from "@coze/api";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { catalog, type Emulator, type GeneratedApp, startEmulator } from "../src/emulator/index.js";

const ACCOUNT = "7300000000000000001";
let offset = 0;
let emulator: Emulator;
let app: GeneratedApp;

beforeAll(async () => {
  emulator = await startEmulator({ now: () => Date.now() + offset });
  app = await emulator.createApp({ accountIds: [ACCOUNT] });
});
afterAll(() => emulator.close());

const user = (content: string) => ({ role: RoleType.User, content, content_type: "text" as const });
const ask = (client: CozeAPI, conversation_id?: string) =>
  client.chat.createAndPoll({
    bot_id: catalog.bots.echo,
    ...(conversation_id === undefined ? {} : { conversation_id }),
    additional_messages: [user("hello")],
  });

async function failure(p: Promise<unknown>): Promise<APIError> {
  const err = await p.then(
    () => expect.fail("the call succeeded"),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(APIError);
  return err as APIError;
}

describe("@coze/api with a personal access token", () => {
  it("chats with the PAT as its token, without any token request", async () => {
    const before = emulator.stats().tokenRequests;
    const client = new CozeAPI({ token: emulator.createPat().token, baseURL: emulator.url });
    const { chat, messages } = await ask(client);
    expect(chat.status).toBe("completed");
    expect(messages?.find((m) => m.type === "answer")?.content).toBe("You said: hello");
    expect(emulator.stats().tokenRequests).toBe(before);
  });

  it("gets an AuthenticationError (HTTP 401, code 4100) once the PAT expired", async () => {
    const pat = emulator.createPat({ lifetimeSeconds: 86_400 });
    const client = new CozeAPI({ token: pat.token, baseURL: emulator.url });
    await ask(client);
    offset += 86_400_000;
    try {
      const err = await failure(ask(client));
      expect(err).toBeInstanceOf(AuthenticationError);
      expect([err.status, err.code]).toEqual([401, 4100]);
      expect(err.logid).toMatch(/^\d{14}[0-9A-F]{20}$/);
    } finally {
      offset -= 86_400_000;
    }
  });

  it("sees 4101 for a permission the PAT lacks: by status at 401, PermissionDeniedError at 200", async () => {
    const pat = emulator.createPat({ permissions: ["workflow"] });
    const strict = await failure(ask(new CozeAPI({ token: pat.token, baseURL: emulator.url })));
    // js maps HTTP 401 before code 4101 (js:src/error.ts): the code still says which.
    expect(strict).toBeInstanceOf(AuthenticationError);
    expect(strict.code).toBe(4101);
    const lenient = await startEmulator({ authErrorStatus: 200 });
    try {
      const limited = lenient.createPat({ permissions: ["workflow"] });
      const err = await failure(ask(new CozeAPI({ token: limited.token, baseURL: lenient.url })));
      expect(err).toBeInstanceOf(PermissionDeniedError);
      expect(err.code).toBe(4101);
      const run = await new CozeAPI({
        token: limited.token,
        baseURL: lenient.url,
      }).workflows.runs.create({
        workflow_id: catalog.workflows.echo,
        parameters: { input: "ok" },
      });
      expect(run.data).toBe('{"output":"ok"}');
    } finally {
      await lenient.close();
    }
  });
});

describe("@coze/api getJWTToken with accountId (§12.1)", () => {
  const jwtToken = (accountId: string, sessionName?: string) =>
    getJWTToken({
      baseURL: emulator.url,
      appId: app.clientId,
      aud: emulator.host,
      keyid: app.publicKeyId,
      privateKey: app.privateKeyPem,
      accountId,
      ...(sessionName === undefined ? {} : { sessionName }),
    });

  it("buys a cross-account token for an account that authorised the app, and chats in it", async () => {
    const token = await jwtToken(ACCOUNT);
    expect(token.access_token).toMatch(/^czs_/);
    const client = new CozeAPI({ token: token.access_token, baseURL: emulator.url });
    const { chat } = await ask(client);
    const again = await ask(
      new CozeAPI({ token: (await jwtToken(ACCOUNT)).access_token, baseURL: emulator.url }),
      chat.conversation_id,
    );
    expect(again.chat.conversation_id).toBe(chat.conversation_id);
    // A session of the same account is another user: Coze keeps the conversation from it.
    const alice = new CozeAPI({
      token: (await jwtToken(ACCOUNT, "alice")).access_token,
      baseURL: emulator.url,
    });
    const refused = await failure(ask(alice, chat.conversation_id));
    expect(refused.code).toBe(4002);
  });

  it("gets access_deny (HTTP 400) for an account that did not authorise the app", async () => {
    const err = await failure(jwtToken("7300000000000000009"));
    expect(err).toBeInstanceOf(BadRequestError);
    expect(err.rawError).toMatchObject({ error_code: "access_deny", error: "access_deny" });
  });

  it("passes a scope, which the emulator accepts and ignores (§12.3)", async () => {
    const token = await getJWTToken({
      baseURL: emulator.url,
      appId: app.clientId,
      aud: emulator.host,
      keyid: app.publicKeyId,
      privateKey: app.privateKeyPem,
      scope: {
        account_permission: { permission_list: ["Connector.botChat"] },
        attribute_constraint: {
          connector_bot_chat_attribute: { bot_id_list: [catalog.bots.echo] },
        },
      },
    });
    expect(token.access_token).toMatch(/^czs_/);
  });
});
