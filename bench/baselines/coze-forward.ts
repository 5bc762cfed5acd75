import { Pool } from "undici";

/** One message of a turn, as the baselines forward it. */
export interface TurnMessage {
  role: "user" | "assistant";
  content: string;
}

/** Receives each upstream event: its name and its parsed JSON data. */
export type OnEvent = (name: string, data: Record<string, unknown>) => void;

/**
 * The least a Node proxy must do to run a bot turn on Coze: one `POST /v3/chat` with
 * `stream: true` on a pooled undici connection, and the JSON of every SSE event parsed. No token
 * management (the token is fixed for the run), no validation, no retries, no failover, no
 * metrics: the floor the gateway is compared with.
 */
export function createForwarder(baseUrl: string, token: string) {
  const pool = new Pool(baseUrl, { connections: 1024, keepAliveTimeout: 30_000 });
  const headers = {
    authorization: `Bearer ${token}`,
    "content-type": "application/json",
    accept: "text/event-stream",
  };
  return async function forward(
    botId: string,
    userId: string,
    messages: readonly TurnMessage[],
    signal: AbortSignal,
    onEvent: OnEvent,
  ): Promise<void> {
    const body = JSON.stringify({
      bot_id: botId,
      user_id: userId,
      stream: true,
      auto_save_history: true,
      additional_messages: messages.map((m) => ({
        role: m.role,
        type: m.role === "user" ? "question" : "answer",
        content: m.content,
        content_type: "text",
      })),
    });
    const res = await pool.request({ path: "/v3/chat", method: "POST", headers, body, signal });
    if (res.statusCode !== 200) {
      await res.body.dump();
      throw new Error(`upstream answered ${res.statusCode}`);
    }
    res.body.setEncoding("utf8");
    let pending = "";
    let name = "";
    for await (const chunk of res.body) {
      const text = pending + (chunk as string);
      let pos = 0;
      for (let nl = text.indexOf("\n"); nl !== -1; nl = text.indexOf("\n", pos)) {
        const line = text.slice(pos, nl);
        pos = nl + 1;
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) onEvent(name, JSON.parse(line.slice(5)));
      }
      pending = text.slice(pos);
    }
  };
}

/** The model names the bench uses, and the emulator bots they run. */
export const benchBots: Readonly<Record<string, string>> = {
  "coze-echo": "7390000000000000001",
  "coze-slow": "7390000000000000005",
};
