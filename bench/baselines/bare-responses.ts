// The bare undici hop's `POST /v1/responses`: the least a hop does to answer the Responses API
// from a Coze bot turn. A string `input` goes up as one user message; the answer comes back as
// one `response` object, or (`stream: true`) as the event sequence the official SDKs parse.
import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { benchBots, type createForwarder } from "./coze-forward.js";

type Forward = ReturnType<typeof createForwarder>;

interface Delta {
  type?: string;
  content?: string;
}

interface CozeUsage {
  token_count: number;
  input_count: number;
  output_count: number;
}

const usageOf = (u: CozeUsage) => ({
  input_tokens: u.input_count,
  output_tokens: u.output_count,
  total_tokens: u.token_count,
});

/** Answers `POST /v1/responses` through `forward`, non-stream or streamed. */
export function createResponder(forward: Forward) {
  return async function respond(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as {
      model: string;
      input: string;
      stream?: boolean;
    };
    const aborter = new AbortController();
    res.once("close", () => {
      if (!res.writableFinished) aborter.abort();
    });
    const id = `resp_${randomUUID().replaceAll("-", "")}`;
    const itemId = `msg_${id.slice(5)}`;
    const createdAt = Math.floor(Date.now() / 1000);
    const model = JSON.stringify(body.model);
    const stream = body.stream === true;
    let seq = 0;
    const event = (type: string, fields: string) =>
      `event: ${type}\ndata: {"type":"${type}","sequence_number":${seq++},${fields}}\n\n`;
    const at = `"item_id":"${itemId}","output_index":0,"content_index":0`;
    let answer = "";
    let usage: ReturnType<typeof usageOf> | undefined;
    try {
      await forward(
        benchBots[body.model] ?? "",
        "bench",
        [{ role: "user", content: body.input }],
        aborter.signal,
        (name, data) => {
          switch (name) {
            case "conversation.chat.created": {
              if (!stream) break;
              res.writeHead(200, {
                "content-type": "text/event-stream; charset=utf-8",
                "cache-control": "no-cache",
                "x-coze-conversation-id": String(data.conversation_id),
              });
              const r = `"response":{"id":"${id}","object":"response","created_at":${createdAt},"status":"in_progress","model":${model},"output":[],"usage":null}`;
              res.write(event("response.created", r) + event("response.in_progress", r));
              break;
            }
            case "conversation.message.delta": {
              const d = data as Delta;
              if (d.type !== "answer" || !d.content) break;
              if (stream) {
                const first =
                  answer === ""
                    ? event(
                        "response.output_item.added",
                        `"output_index":0,"item":{"id":"${itemId}","type":"message","status":"in_progress","role":"assistant","content":[]}`,
                      ) +
                      event(
                        "response.content_part.added",
                        `${at},"part":{"type":"output_text","annotations":[],"text":""}`,
                      )
                    : "";
                res.write(
                  first +
                    event(
                      "response.output_text.delta",
                      `${at},"delta":${JSON.stringify(d.content)},"logprobs":[]`,
                    ),
                );
              }
              answer += d.content;
              break;
            }
            case "conversation.chat.completed":
              usage = usageOf(data.usage as CozeUsage);
              break;
            default:
              break;
          }
        },
      );
    } catch {
      if (!res.headersSent) res.writeHead(502);
      res.end();
      return;
    }
    const item = {
      type: "message",
      id: itemId,
      status: "completed",
      role: "assistant",
      content: [{ type: "output_text", text: answer, annotations: [] }],
    };
    const response = {
      id,
      object: "response",
      created_at: createdAt,
      status: "completed",
      model: body.model,
      output: [item],
      usage,
    };
    if (stream) {
      const text = JSON.stringify(answer);
      res.end(
        event("response.output_text.done", `${at},"text":${text},"logprobs":[]`) +
          event(
            "response.content_part.done",
            `${at},"part":{"type":"output_text","annotations":[],"text":${text}}`,
          ) +
          event("response.output_item.done", `"output_index":0,"item":${JSON.stringify(item)}`) +
          event("response.completed", `"response":${JSON.stringify(response)}`),
      );
      return;
    }
    const json = JSON.stringify(response);
    res.writeHead(200, {
      "content-type": "application/json; charset=utf-8",
      "content-length": Buffer.byteLength(json),
    });
    res.end(json);
  };
}
