import { afterEach, describe, expect, it, vi } from "vitest";
import { catalog } from "./catalog.js";
import { startEmulator } from "./server.js";
import { callApi, mintToken } from "./testing.js";
import type { Emulator, EmulatorOptions } from "./types.js";

let emulator: Emulator | undefined;
afterEach(async () => {
  await emulator?.close();
  emulator = undefined;
});

const user = (content: string) => ({ role: "user", content, content_type: "text" });

/** Opens a slow streamed chat, reads its first event, then goes away. */
async function chatAndLeave(options: EmulatorOptions) {
  const em = await startEmulator({ timing: { slowDeltaMs: 5 }, ...options });
  emulator = em;
  const token = await mintToken(em, await em.createApp());
  const abort = new AbortController();
  const res = await fetch(`${em.url}/v3/chat`, {
    method: "POST",
    signal: abort.signal,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({
      bot_id: catalog.bots.slow,
      user_id: "u",
      stream: true,
      additional_messages: [user("bye")],
    }),
  });
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const created = JSON.parse(
    /data:(.*)\n/.exec(new TextDecoder().decode((await reader.read()).value))?.[1] ?? "{}",
  ) as { id: string; conversation_id: string };
  abort.abort();
  await vi.waitFor(() => expect(em.stats().openStreams).toBe(0), { timeout: 2000, interval: 5 });
  const retrieve = async () =>
    (
      await callApi(
        em,
        token,
        "GET",
        `/v3/chat/retrieve?conversation_id=${created.conversation_id}&chat_id=${created.id}`,
      )
    ).json<{ data: { status: string } }>().data.status;
  const another = async () =>
    (
      await callApi(em, token, "POST", `/v3/chat?conversation_id=${created.conversation_id}`, {
        bot_id: catalog.bots.echo,
        user_id: "u",
        additional_messages: [user("next")],
      })
    ).json<{ code: number }>().code;
  return { em, retrieve, another };
}

describe("a streamed chat whose client goes away", () => {
  it("ends canceled at once by default, freeing its conversation", async () => {
    const { em, retrieve, another } = await chatAndLeave({});
    await vi.waitFor(async () => expect(await retrieve()).toBe("canceled"), { interval: 5 });
    expect(em.stats().chatsRunning).toBe(0);
    expect(await another()).toBe(0);
  });

  it("runs on to its end with chatsOnDisconnect run_on, keeping its conversation busy (4016)", async () => {
    const { em, retrieve, another } = await chatAndLeave({ chatsOnDisconnect: "run_on" });
    expect(await retrieve()).toBe("in_progress");
    expect(em.stats().chatsRunning).toBe(1);
    expect(await another()).toBe(4016);
    await vi.waitFor(async () => expect(await retrieve()).toBe("completed"), {
      timeout: 5000,
      interval: 20,
    });
    expect(em.stats().chatsRunning).toBe(0);
  });
});
