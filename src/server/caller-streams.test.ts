import { Code, ConnectError, createClient, type HandlerContext } from "@connectrpc/connect";
import { Agent, request } from "undici";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import {
  createTestTransport,
  startTestServer,
  stubRoutes,
  type TestServer,
  type TestTransport,
  testDoor,
  testKey,
  testLimits,
  withKey,
} from "../../test/support/test-server.js";
import { ChatService } from "../gen/cozegateway/v1/chat_pb.js";
import { inProcessTenant } from "../service/tenant.js";
import type { Caller } from "./caller.js";
import { createCallerStreamLimit, tooManyStreamsMessage } from "./caller-streams.js";
import type { NodeRequest, NodeResponse } from "./http-response.js";
import { beginRequest } from "./request-context.js";

// Issue 13, "Connections": one connection opened 2,000 upstream chats. Each key now has a cap of
// requests in flight, and a request's slot comes back however it ends.
const cap = 3;
const otherKey = "sk-other-0123456789abcdef";
const otherCaller: Caller = { name: "other", models: undefined, tenant: inProcessTenant };
/** Long enough for a released slot to be seen free on a busy machine. */
const bound = 3000;

/** How a held stream ends, as the test decides. */
type Ending = "complete" | "fail";
/** Streams the stubs hold open, by the id the caller sent. */
const held = new Map<string, (ending: Ending) => void>();

const hold = (id: string, signal: AbortSignal) =>
  new Promise<Ending>((resolve) => {
    held.set(id, resolve);
    signal.addEventListener("abort", () => resolve("fail"), { once: true });
  }).finally(() => held.delete(id));

const end = (id: string, ending: Ending) => {
  const release = held.get(id);
  if (release === undefined) throw new Error(`stream ${id} is not held`);
  release(ending);
};

/** REST stub: `/v1/hold?id=X` answers "started", then "done" or a failure as the test says. */
async function holdRoute(req: NodeRequest, res: NodeResponse): Promise<boolean> {
  const id = new URL(req.url ?? "/", "http://gw").searchParams.get("id");
  if (id === null) return false;
  res.writeHead(200, { "content-type": "text/plain" });
  (res as { write(chunk: string): boolean }).write("started\n");
  const abort = new AbortController();
  res.once("close", () => abort.abort());
  if ((await hold(id, abort.signal)) === "fail") throw new Error("the stub failed midway");
  res.end("done\n");
  return true;
}

let ts: TestServer;
beforeAll(async () => {
  ts = await startTestServer({
    limits: { ...testLimits, maxStreamsPerKey: cap },
    authenticate: (key) =>
      key === testKey
        ? { name: "tester", models: undefined, tenant: inProcessTenant }
        : key === otherKey
          ? otherCaller
          : undefined,
    routes: stubRoutes({
      async *chatStream(req, ctx: HandlerContext) {
        yield { event: { case: "started", value: {} } };
        const ending = await hold(req.messages[0]?.content ?? "", ctx.signal);
        if (ending === "fail") throw new ConnectError("the stub failed midway", Code.Aborted);
        yield { event: { case: "completed", value: {} } };
      },
    }),
    doors: [testDoor(holdRoute)],
  });
});
afterAll(async () => {
  await ts.server.close();
});

describe.each(["gRPC over HTTP/2", "Connect JSON over HTTP/1.1"] as const)("%s", (protocol) => {
  let client: TestTransport;
  beforeAll(() => {
    client = createTestTransport(protocol, ts.server.url);
  });
  afterAll(() => client.close());

  /** Opens a chat stream held under `id`; resolves once it has started, with its rest to come. */
  const open = async (id: string, key = testKey, signal?: AbortSignal) => {
    const chat = createClient(ChatService, client.transport);
    const it = chat
      .chatStream({ messages: [{ content: id }] }, { ...withKey(key), signal })
      [Symbol.asyncIterator]();
    const first = await it.next();
    expect(first.value?.event.case).toBe("started");
    const rest = (async () => {
      const cases: (string | undefined)[] = [];
      for (let r = await it.next(); r.done !== true; r = await it.next())
        cases.push(r.value.event.case);
      return cases;
    })();
    rest.catch(() => {});
    // In an object: an async function returning the promise itself would wait for it.
    return { rest };
  };

  const refusal = async (id: string) => {
    const err = await open(id).then(
      () => expect.fail("a stream over the cap started"),
      (e: unknown) => ConnectError.from(e),
    );
    expect(err.code).toBe(Code.ResourceExhausted);
    expect(err.rawMessage).toBe(tooManyStreamsMessage);
    expect(err.metadata.get("retry-after")).toBe("1");
  };

  it("refuses a key's stream over the cap with ResourceExhausted, and only that key's", async () => {
    const ids = ["a1", "a2", "a3"].map((id) => `${protocol}/${id}`);
    const streams = await Promise.all(ids.map((id) => open(id)));
    await refusal(`${protocol}/a4`);
    const other = await open(`${protocol}/other`, otherKey);
    end(`${protocol}/other`, "complete");
    expect(await other.rest).toEqual(["completed"]);
    for (const id of ids) end(id, "complete");
    for (const s of streams) expect(await s.rest).toEqual(["completed"]);
  });

  it("gives every slot back however the streams end: completed, failed, cancelled", async () => {
    const aborter = new AbortController();
    const completed = (await open(`${protocol}/ok`)).rest;
    const failed = (await open(`${protocol}/fail`)).rest;
    const cancelled = (await open(`${protocol}/cancel`, testKey, aborter.signal)).rest;
    await refusal(`${protocol}/over`);

    end(`${protocol}/ok`, "complete");
    end(`${protocol}/fail`, "fail");
    aborter.abort();
    expect(await completed).toEqual(["completed"]);
    await expect(failed).rejects.toMatchObject({ code: Code.Aborted });
    await expect(cancelled).rejects.toMatchObject({ code: Code.Canceled });

    // The count is back to zero: `cap` new streams fit again (each slot is given back when the
    // server sees its stream close, a moment after the client), and one more does not.
    const again: Promise<unknown>[] = [];
    for (let i = 0; i < cap; i++) {
      const id = `${protocol}/again-${i}`;
      again.push((await vi.waitFor(() => open(id), { timeout: bound, interval: 20 })).rest);
    }
    await refusal(`${protocol}/again-over`);
    for (let i = 0; i < cap; i++) end(`${protocol}/again-${i}`, "complete");
    await Promise.all(again);
  });
});

describe("REST under /v1/", () => {
  const agent = new Agent({ connections: cap + 2 });
  afterAll(() => agent.close());

  /** Opens `/v1/hold?id=`; resolves once "started" arrived, with the rest of the body to come. */
  const open = async (id: string, signal?: AbortSignal) => {
    const res = await request(`${ts.server.url}/v1/hold?id=${id}`, {
      dispatcher: agent,
      headers: { authorization: `Bearer ${testKey}` },
      signal,
    });
    expect(res.statusCode).toBe(200);
    const it = res.body[Symbol.asyncIterator]();
    expect(String((await it.next()).value)).toBe("started\n");
    const rest = (async () => {
      let text = "";
      for (let r = await it.next(); r.done !== true; r = await it.next()) text += String(r.value);
      return text;
    })();
    rest.catch(() => {});
    // In an object: an async function returning the promise itself would wait for it.
    return { rest };
  };

  it("answers 429 with Retry-After over the cap, and frees slots however requests end", async () => {
    const aborter = new AbortController();
    const completed = (await open("rest-ok")).rest;
    const failed = (await open("rest-fail")).rest;
    const cancelled = (await open("rest-cancel", aborter.signal)).rest;

    const over = await request(`${ts.server.url}/v1/hold?id=rest-over`, {
      dispatcher: agent,
      headers: { authorization: `Bearer ${testKey}` },
    });
    expect(over.statusCode).toBe(429);
    expect(over.headers["retry-after"]).toBe("1");
    expect(await over.body.json()).toEqual({
      error: { code: "too_many_streams", message: tooManyStreamsMessage },
    });

    end("rest-ok", "complete");
    end("rest-fail", "fail");
    aborter.abort();
    expect(await completed).toBe("done\n");
    await expect(failed).rejects.toThrow();
    await expect(cancelled).rejects.toThrow();

    const again: Promise<string>[] = [];
    for (let i = 0; i < cap; i++) {
      const next = await vi.waitFor(() => open(`rest-again-${i}`), {
        timeout: bound,
        interval: 20,
      });
      again.push(next.rest);
    }
    for (let i = 0; i < cap; i++) end(`rest-again-${i}`, "complete");
    expect(await Promise.all(again)).toEqual(Array(cap).fill("done\n"));
  });
});

describe("createCallerStreamLimit", () => {
  it("counts a request once, per caller, and releases it once", () => {
    const limit = createCallerStreamLimit(2);
    const a = beginRequest({}, undefined);
    const b = beginRequest({}, undefined);
    const c = beginRequest({}, undefined);
    expect(limit.acquire(a, "alice")).toBe(true);
    expect(limit.acquire(a, "alice")).toBe(true);
    expect(limit.inFlight("alice")).toBe(1);
    expect(limit.acquire(b, "alice")).toBe(true);
    expect(limit.acquire(c, "alice")).toBe(false);
    expect(limit.acquire(c, "bob")).toBe(true);
    limit.release(a);
    limit.release(a);
    limit.release(undefined);
    expect(limit.inFlight("alice")).toBe(1);
    limit.release(b);
    limit.release(c);
    expect([limit.inFlight("alice"), limit.inFlight("bob")]).toEqual([0, 0]);
  });
});
