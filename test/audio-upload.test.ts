/**
 * The transcription upload as an attacker or a slow network sends it, below the SDKs: wrong
 * content types, odd forms, oversized files and bodies (declared and chunked), a body dripped
 * slowly, one that stalls. Every wait is bounded.
 */
import { request } from "node:http";
import { connect as connectH2 } from "node:http2";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type Demo, startDemo } from "../src/demo.js";
import { encodeSpeech } from "../src/emulator/audio-codec.js";
import { catalog } from "../src/emulator/index.js";
import { type Gateway, startGateway } from "../src/gateway.js";
import { type GatewayFixture, startGatewayFixture } from "./support/gateway-fixture.js";
import { type RawConnection, rawConnect, within } from "./support/raw-http.js";

const mib = 1024 * 1024;
const boundary = "----audio-test-boundary";
let fx: GatewayFixture;
const connections: RawConnection[] = [];

beforeAll(async () => {
  // Room for a file just over Coze's 10 MiB inside a body under the limit.
  fx = await startGatewayFixture({ bodyLimitBytes: 11 * mib });
});
afterAll(async () => {
  for (const c of connections) c.socket.destroy();
  await fx?.close();
});
beforeEach(() => fx.demo.emulator.reset());

/** A multipart/form-data body of text fields and file parts. */
function multipart(
  parts: ({ name: string; value: string } | { name: string; file: Buffer; fileName?: string })[],
): Buffer {
  const chunks: Buffer[] = [];
  for (const part of parts) {
    if ("value" in part) {
      chunks.push(
        Buffer.from(
          `--${boundary}\r\nContent-Disposition: form-data; name="${part.name}"\r\n\r\n${part.value}\r\n`,
        ),
      );
    } else {
      const fileName = part.fileName === undefined ? "" : `; filename="${part.fileName}"`;
      chunks.push(
        Buffer.from(
          `--${boundary}\r\nContent-Disposition: form-data; name="${part.name}"${fileName}\r\nContent-Type: audio/mpeg\r\n\r\n`,
        ),
        part.file,
        Buffer.from("\r\n"),
      );
    }
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return Buffer.concat(chunks);
}

const speech = (text: string) =>
  encodeSpeech({
    text,
    voice_id: catalog.voices.alloy,
    format: "mp3",
    speed: 1,
    sample_rate: 24000,
  });

/** POSTs `body` to the transcription route; `chunked` leaves out Content-Length. */
function post(
  body: Buffer,
  options: { type?: string; chunked?: boolean } = {},
): Promise<{
  status: number;
  headers: Record<string, string | string[] | undefined>;
  json: Record<string, unknown>;
}> {
  return new Promise((resolve, reject) => {
    const req = request(`${fx.url}/v1/audio/transcriptions`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${fx.key}`,
        "content-type": options.type ?? `multipart/form-data; boundary=${boundary}`,
        ...(options.chunked
          ? { "transfer-encoding": "chunked" }
          : { "content-length": body.length }),
      },
    });
    req.on("response", async (res) => {
      const chunks: Buffer[] = [];
      for await (const c of res) chunks.push(c as Buffer);
      resolve({
        status: res.statusCode ?? 0,
        headers: res.headers,
        json: JSON.parse(Buffer.concat(chunks).toString()),
      });
    });
    // The server may answer and close before the whole body is written.
    req.on("error", reject);
    if (options.chunked) {
      for (let at = 0; at < body.length; at += 256 * 1024)
        req.write(body.subarray(at, at + 256 * 1024));
      req.end();
    } else req.end(body);
  });
}

const errorOf = (json: Record<string, unknown>) =>
  json.error as { code: string; param: string | null; message: string };

describe("transcription uploads", () => {
  it("a JSON body is refused with a 400 that names the Content-Type", async () => {
    const res = await post(Buffer.from('{"model":"whisper-1","file":"x"}'), {
      type: "application/json",
    });
    expect(res.status).toBe(400);
    expect(errorOf(res.json)).toMatchObject({ code: "invalid_content_type", param: null });
    expect(errorOf(res.json).message).toContain("multipart/form-data");
  });

  it.each([
    ["no file", [{ name: "model", value: "whisper-1" }], "file", "missing_required_parameter"],
    [
      "no model",
      [{ name: "file", file: speech("x"), fileName: "a.mp3" }],
      "model",
      "missing_required_parameter",
    ],
    [
      "two files",
      [
        { name: "model", value: "whisper-1" },
        { name: "file", file: speech("a"), fileName: "a.mp3" },
        { name: "file", file: speech("b"), fileName: "b.mp3" },
      ],
      "file",
      "invalid_value",
    ],
    [
      "a file under another name",
      [
        { name: "model", value: "whisper-1" },
        { name: "audio", file: speech("a"), fileName: "a.mp3" },
      ],
      "audio",
      "invalid_value",
    ],
    [
      "a prompt over 64 KiB",
      [
        { name: "model", value: "whisper-1" },
        { name: "prompt", value: "p".repeat(65 * 1024) },
        { name: "file", file: speech("a"), fileName: "a.mp3" },
      ],
      "prompt",
      "invalid_value",
    ],
  ] as const)("%s: a 400 naming the field", async (_what, parts, param, code) => {
    const res = await post(multipart([...parts]));
    expect([res.status, errorOf(res.json).param, errorOf(res.json).code]).toEqual([
      400,
      param,
      code,
    ]);
    expect(fx.demo.emulator.stats().calls["audio.transcriptions"] ?? 0).toBe(0);
  });

  it("a file part without a file name is still the file (named by its part)", async () => {
    const res = await post(
      multipart([
        { name: "model", value: "whisper-1" },
        { name: "file", file: speech("nameless") },
      ]),
    );
    // No name, no extension: the format cannot be told, and the 400 says so.
    expect([res.status, errorOf(res.json).param]).toEqual([400, "file"]);
    expect(errorOf(res.json).message).toContain("has no extension");
  });

  it("a malformed form is a 400", async () => {
    const body = Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1`,
    );
    const res = await post(body);
    expect([res.status, errorOf(res.json).code]).toEqual([400, "invalid_multipart"]);
  });

  it("a file over 10 MiB is a 400 naming file, cut while it streams; Coze is not called", async () => {
    const big = Buffer.alloc(10 * mib + 1);
    const res = await post(
      multipart([
        { name: "model", value: "whisper-1" },
        { name: "file", file: big, fileName: "big.wav" },
      ]),
      {
        chunked: true,
      },
    );
    expect([res.status, errorOf(res.json).param, errorOf(res.json).code]).toEqual([
      400,
      "file",
      "file_too_large",
    ]);
    expect(res.headers.connection).toBe("close");
    expect(fx.demo.emulator.stats().calls["audio.transcriptions"] ?? 0).toBe(0);
  });

  it("a chunked body over the body limit is a 413 and the connection closes; a declared one too", async () => {
    const huge = Buffer.alloc(12 * mib);
    const chunked = await post(huge, { chunked: true });
    expect([chunked.status, errorOf(chunked.json).code, chunked.headers.connection]).toEqual([
      413,
      "request_too_large",
      "close",
    ]);
    const declared = await post(huge).catch((e: unknown) => e);
    // The server refuses a declared length at once; the client may see the answer or the reset.
    if (!(declared instanceof Error)) expect((declared as { status: number }).status).toBe(413);
  });

  it("works over h2c too, and refuses an oversized file there without reading on", async () => {
    const session = connectH2(fx.url);
    const send = (body: Buffer) =>
      new Promise<{ status: number; json: Record<string, unknown> }>((resolve, reject) => {
        const stream = session.request({
          ":method": "POST",
          ":path": "/v1/audio/transcriptions",
          authorization: `Bearer ${fx.key}`,
          "content-type": `multipart/form-data; boundary=${boundary}`,
        });
        let status = 0;
        const chunks: Buffer[] = [];
        stream.on("response", (h) => {
          status = Number(h[":status"]);
        });
        stream.on("data", (c: Buffer) => chunks.push(c));
        stream.on("end", () =>
          resolve({ status, json: JSON.parse(Buffer.concat(chunks).toString()) }),
        );
        stream.on("error", reject);
        stream.end(body);
      });
    try {
      const ok = await send(
        multipart([
          { name: "model", value: "whisper-1" },
          { name: "file", file: speech("over h2c"), fileName: "h2.mp3" },
        ]),
      );
      expect([ok.status, ok.json]).toEqual([200, { text: "over h2c" }]);
      const big = await send(
        multipart([
          { name: "model", value: "whisper-1" },
          { name: "file", file: Buffer.alloc(10 * mib + 1), fileName: "big.wav" },
        ]),
      );
      expect([big.status, errorOf(big.json).param]).toEqual([400, "file"]);
    } finally {
      session.close();
    }
  });

  it("a body dripped in small pieces is read as it comes and transcribed", async () => {
    const body = multipart([
      { name: "model", value: "whisper-1" },
      { name: "response_format", value: "json" },
      { name: "file", file: speech("slowly but surely"), fileName: "drip.mp3" },
    ]);
    const c = await rawConnect(Number(new URL(fx.url).port));
    connections.push(c);
    c.socket.write(
      `POST /v1/audio/transcriptions HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer ${fx.key}\r\n` +
        `Content-Type: multipart/form-data; boundary=${boundary}\r\nContent-Length: ${body.length}\r\n\r\n`,
    );
    // 64 pieces, each after a pause: boundaries and headers fall across pieces.
    const piece = Math.ceil(body.length / 64);
    for (let at = 0; at < body.length; at += piece) {
      c.socket.write(body.subarray(at, at + piece));
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await within(c.receivedText('"slowly but surely"'), 5000, "the transcription");
    expect(c.received().toString("utf8")).toMatch(/^HTTP\/1\.1 200 /);
  });
});

describe("a transcription upload that stalls", () => {
  let demo: Demo;
  let gateway: Gateway;
  const requestTimeoutMs = 500;
  beforeAll(async () => {
    demo = await startDemo({ port: 0, deltaMs: 0 });
    demo.config.server.requestTimeoutMs = requestTimeoutMs;
    demo.config.server.headersTimeoutMs = 400;
    gateway = await startGateway({ config: demo.config });
  });
  afterAll(async () => {
    await gateway?.close();
    await demo?.close();
  });

  it("is cut with a 408 at the request timeout, and nothing reaches Coze", async () => {
    const body = multipart([
      { name: "model", value: "whisper-1" },
      { name: "file", file: speech("never finished"), fileName: "stall.mp3" },
    ]);
    const c = await rawConnect(gateway.port);
    connections.push(c);
    c.socket.write(
      `POST /v1/audio/transcriptions HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer ${demo.apiKey}\r\n` +
        `Content-Type: multipart/form-data; boundary=${boundary}\r\nContent-Length: ${body.length}\r\n\r\n`,
    );
    const t0 = performance.now();
    // Half the body, then silence.
    c.socket.write(body.subarray(0, body.length >> 1));
    await within(c.closed, 5000, "the server closing the stalled upload");
    expect(performance.now() - t0).toBeGreaterThanOrEqual(requestTimeoutMs - 50);
    expect(c.received().toString("latin1")).toMatch(/^HTTP\/1\.1 408 /);
    expect(demo.emulator.stats().calls["audio.transcriptions"] ?? 0).toBe(0);
  });
});
