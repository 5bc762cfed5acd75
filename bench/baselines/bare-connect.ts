// Baseline 2: a bare connect-node hop. A connect-node server (HTTP/2 cleartext, as gRPC clients
// speak it) whose ChatService.Chat forwards to the emulator exactly like the bare undici hop:
// one `/v3/chat` stream, every event's JSON parsed, the answer aggregated into a ChatResponse.
// No auth, interceptors, routing, failover or metrics: connect-node plus the least forwarding.
import { createServer } from "node:http2";
import type { ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { ChatService, ChatStatus, Role } from "../../src/gen/cozegateway/v1/chat_pb.js";
import { benchBots, createForwarder } from "./coze-forward.js";

const forward = createForwarder(
  process.env.BENCH_EMULATOR_URL as string,
  process.env.BENCH_TOKEN as string,
);

function routes(router: ConnectRouter) {
  router.service(ChatService, {
    async chat(req, ctx) {
      let conversationId = "";
      let chatId = "";
      let answer = "";
      let usage: { tokenCount: number; inputCount: number; outputCount: number } | undefined;
      const messages = req.messages.map((m) => ({
        role: m.role === Role.ASSISTANT ? ("assistant" as const) : ("user" as const),
        content: m.content,
      }));
      await forward(
        benchBots[req.model] ?? req.botId,
        req.userId || "bench",
        messages,
        ctx.signal,
        (name, data) => {
          if (name === "conversation.chat.created") {
            conversationId = String(data.conversation_id);
            chatId = String(data.id);
          } else if (name === "conversation.message.delta") {
            if (data.type === "answer") answer += String(data.content ?? "");
          } else if (name === "conversation.chat.completed") {
            const u = data.usage as {
              token_count: number;
              input_count: number;
              output_count: number;
            };
            usage = {
              tokenCount: u.token_count,
              inputCount: u.input_count,
              outputCount: u.output_count,
            };
          }
        },
      );
      return { conversationId, chatId, status: ChatStatus.COMPLETED, answer, usage };
    },
  });
}

const server = createServer(connectNodeAdapter({ routes }));
server.listen(Number(process.env.BENCH_PORT), "127.0.0.1");
process.on("SIGTERM", () => process.exit(0));
