// Baseline 1: a bare undici hop. A node:http server that takes the same OpenAI-style request as
// the gateway, forwards it to the emulator's `/v3/chat` stream, parses every SSE event's JSON and
// rebuilds the OpenAI answer (one JSON, or one chunk per delta). The least any Node proxy does.
// `POST /v1/responses` likewise, as a `response` object or its events (bare-responses.ts).
import { randomUUID } from "node:crypto";
import { createServer } from "node:http";
import { createResponder } from "./bare-responses.js";
import { benchBots, createForwarder, type TurnMessage } from "./coze-forward.js";

const emulatorUrl = process.env.BENCH_EMULATOR_URL as string;
const token = process.env.BENCH_TOKEN as string;
const port = Number(process.env.BENCH_PORT);
const forward = createForwarder(emulatorUrl, token);
const respond = createResponder(forward);

interface Delta {
  type?: string;
  content?: string;
}

const server = createServer(async (req, res) => {
  if (req.method === "POST" && req.url === "/v1/responses") {
    await respond(req, res);
    return;
  }
  if (req.method !== "POST" || req.url !== "/v1/chat/completions") {
    res.writeHead(404).end();
    return;
  }
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as {
    model: string;
    stream?: boolean;
    user?: string;
    messages: TurnMessage[];
  };
  const botId = benchBots[body.model] ?? "";
  const aborter = new AbortController();
  res.once("close", () => {
    if (!res.writableFinished) aborter.abort();
  });
  const id = `chatcmpl-${randomUUID().replaceAll("-", "")}`;
  const created = Math.floor(Date.now() / 1000);
  const head = `data: {"id":"${id}","object":"chat.completion.chunk","created":${created},"model":${JSON.stringify(body.model)},"choices":[{"index":0,"delta":`;
  const tail = `,"logprobs":null,"finish_reason":null}]}\n\n`;
  let conversationId = "";
  let answer = "";
  let usage: Record<string, number> | undefined;
  try {
    await forward(botId, body.user ?? "bench", body.messages, aborter.signal, (name, data) => {
      switch (name) {
        case "conversation.chat.created":
          conversationId = String(data.conversation_id);
          if (body.stream) {
            res.writeHead(200, {
              "content-type": "text/event-stream; charset=utf-8",
              "cache-control": "no-cache",
              "x-coze-conversation-id": conversationId,
            });
            res.write(`${head}{"role":"assistant","content":""}${tail}`);
          }
          break;
        case "conversation.message.delta": {
          const d = data as Delta;
          if (d.type !== "answer" || !d.content) break;
          if (body.stream) res.write(`${head}{"content":${JSON.stringify(d.content)}}${tail}`);
          else answer += d.content;
          break;
        }
        case "conversation.chat.completed": {
          const u = data.usage as {
            token_count: number;
            input_count: number;
            output_count: number;
          };
          usage = {
            prompt_tokens: u.input_count,
            completion_tokens: u.output_count,
            total_tokens: u.token_count,
          };
          break;
        }
        default:
          break;
      }
    });
  } catch {
    if (!res.headersSent) res.writeHead(502);
    res.end();
    return;
  }
  if (body.stream) {
    res.end(
      `data: {"id":"${id}","object":"chat.completion.chunk","created":${created},"model":${JSON.stringify(body.model)},"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"conversation_id":"${conversationId}"}\n\ndata: [DONE]\n\n`,
    );
    return;
  }
  const json = JSON.stringify({
    id,
    object: "chat.completion",
    created,
    model: body.model,
    choices: [
      {
        index: 0,
        message: { role: "assistant", content: answer, refusal: null },
        logprobs: null,
        finish_reason: "stop",
      },
    ],
    usage,
    conversation_id: conversationId,
  });
  res.writeHead(200, {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(json),
    "x-coze-conversation-id": conversationId,
  });
  res.end(json);
});

server.listen(port, "127.0.0.1");
process.on("SIGTERM", () => process.exit(0));
