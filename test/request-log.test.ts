import { create } from "@bufbuild/protobuf";
import { ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChatMessageSchema, ChatService, Role } from "../src/gen/cozegateway/v1/chat_pb.js";
import { type EmulatorProcess, startEmulatorProcess } from "./support/emulator-process.js";
import { type GatewayProcess, startGatewayProcess } from "./support/gateway-process.js";

// The gateway's one log line per request names the request, the caller and the Coze log ids of
// the upstream calls made for it (what Coze support asks for), on every protocol, for successes
// and failures alike, and never mixes up two requests' ids.

const callerKey = "sk-request-log-test-0123456789abcdef";
const cozeLogId = /^\d{14}[0-9A-F]{20}$/;

let emulator: EmulatorProcess;
let gateway: GatewayProcess;

beforeAll(async () => {
  emulator = await startEmulatorProcess();
  gateway = await startGatewayProcess({ emulator, callerKey });
}, 30_000);

afterAll(async () => {
  await gateway?.close();
  await emulator?.close();
});

interface RequestLine {
  requestId: string;
  method: string;
  code: string;
  caller?: string;
  cozeLogIds?: string[];
}

/** The request line of `requestId`, once the gateway has written it. */
async function lineOf(requestId: string): Promise<RequestLine> {
  for (let waited = 0; waited < 5_000; waited += 25) {
    for (const text of gateway.output().split("\n")) {
      if (!text.startsWith("{")) continue;
      const line = JSON.parse(text) as { msg?: string } & RequestLine;
      if (line.msg === "request" && line.requestId === requestId) return line;
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`no request line for ${requestId}`);
}

async function rest(requestId: string, model: string, stream: boolean) {
  const res = await fetch(`${gateway.url}/v1/chat/completions`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      authorization: `Bearer ${callerKey}`,
      "x-request-id": requestId,
    },
    body: JSON.stringify({ model, stream, messages: [{ role: "user", content: "hello" }] }),
  });
  await res.text();
  return res;
}

describe("the request log line", () => {
  it("carries the Coze log id of each REST chat, stream or not, and only its own", async () => {
    const [plain, streamed] = await Promise.all([
      rest("rest-plain-1", "echo", false),
      rest("rest-stream-1", "echo", true),
    ]);
    expect([plain.status, streamed.status]).toEqual([200, 200]);
    const a = await lineOf("rest-plain-1");
    const b = await lineOf("rest-stream-1");
    expect(a).toMatchObject({ method: "POST /v1/chat/completions", code: "200", caller: "test" });
    expect(b).toMatchObject({ method: "POST /v1/chat/completions", code: "200", caller: "test" });
    expect(a.cozeLogIds).toHaveLength(1);
    expect(b.cozeLogIds).toHaveLength(1);
    expect(a.cozeLogIds?.[0]).toMatch(cozeLogId);
    expect(b.cozeLogIds?.[0]).toMatch(cozeLogId);
    expect(a.cozeLogIds?.[0]).not.toBe(b.cozeLogIds?.[0]);
  });

  it("carries the Coze log id of a gRPC chat and of a call Coze refused", async () => {
    const client = createClient(ChatService, createGrpcTransport({ baseUrl: gateway.url }));
    const headers = (id: string) => ({ authorization: `Bearer ${callerKey}`, "x-request-id": id });
    const messages = [create(ChatMessageSchema, { role: Role.USER, content: "hello" })];
    await client.chat({ model: "echo", messages }, { headers: headers("grpc-ok-1") });
    // An unknown bot id: Coze answers with an error envelope and its own log id.
    const refused = await client
      .chat({ botId: "1", messages }, { headers: headers("grpc-refused-1") })
      .catch((e: unknown) => ConnectError.from(e));
    expect(refused).toBeInstanceOf(ConnectError);
    const ok = await lineOf("grpc-ok-1");
    expect(ok).toMatchObject({ method: "cozegateway.v1.ChatService/Chat", code: "ok" });
    expect(ok.caller).toBe("test");
    expect(ok.cozeLogIds?.[0]).toMatch(cozeLogId);
    const failed = await lineOf("grpc-refused-1");
    expect(failed.code).not.toBe("ok");
    expect(failed.cozeLogIds).toEqual([(refused as ConnectError).metadata.get("x-coze-logid")]);
  });
});
