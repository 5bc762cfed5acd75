import { type Agent, request } from "node:http";

/** What one streamed completion looked like from the client. */
export interface StreamSample {
  conversationId: string;
  status: number;
  /** hrtime (ns) when the request was sent. */
  sentAt: bigint;
  /** hrtime (ns) of the response's first byte (status line and headers, with the role chunk). */
  firstByteAt: bigint;
  /** Content chunks: their text and the hrtime (ns) of the read that delivered them. */
  texts: string[];
  arrivals: bigint[];
  /** Socket reads that delivered more than one content chunk (events held back and merged). */
  coalescedReads: number;
  done: boolean;
}

/**
 * Streams one OpenAI chat completion (`stream: true`) and notes when each content chunk arrived.
 * `onFirstContent` fires when the first content chunk is in; `signal` aborts the request
 * (destroying the socket: the client "goes away").
 */
export function streamCompletion(options: {
  url: string;
  key: string;
  body: Record<string, unknown>;
  agent: Agent;
  signal?: AbortSignal;
  onFirstContent?: (conversationId: string) => void;
}): Promise<StreamSample> {
  return new Promise((resolve, reject) => {
    const sentAt = process.hrtime.bigint();
    const req = request(
      `${options.url}/v1/chat/completions`,
      {
        method: "POST",
        agent: options.agent,
        signal: options.signal,
        headers: {
          "content-type": "application/json",
          authorization: `Bearer ${options.key}`,
        },
      },
      (res) => {
        const sample: StreamSample = {
          conversationId: String(res.headers["x-coze-conversation-id"] ?? ""),
          status: res.statusCode ?? 0,
          sentAt,
          firstByteAt: process.hrtime.bigint(),
          texts: [],
          arrivals: [],
          coalescedReads: 0,
          done: false,
        };
        res.setEncoding("utf8");
        let pending = "";
        res.on("data", (chunk: string) => {
          const at = process.hrtime.bigint();
          const text = pending + chunk;
          let pos = 0;
          let contents = 0;
          for (let end = text.indexOf("\n\n"); end !== -1; end = text.indexOf("\n\n", pos)) {
            const event = text.slice(pos, end);
            pos = end + 2;
            if (event === "data: [DONE]") {
              sample.done = true;
              continue;
            }
            if (!event.startsWith("data: {")) continue;
            const json = JSON.parse(event.slice(6)) as {
              choices?: { delta?: { content?: string } }[];
            };
            const content = json.choices?.[0]?.delta?.content;
            if (typeof content !== "string" || content === "") continue;
            if (sample.texts.length === 0) options.onFirstContent?.(sample.conversationId);
            sample.texts.push(content);
            sample.arrivals.push(at);
            contents++;
          }
          pending = text.slice(pos);
          if (contents > 1) sample.coalescedReads++;
        });
        res.once("end", () => resolve(sample));
        res.once("error", reject);
        res.once("aborted", () => resolve(sample));
      },
    );
    req.once("error", reject);
    req.end(JSON.stringify(options.body));
  });
}
