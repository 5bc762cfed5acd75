/**
 * AudioService over gRPC, Connect and gRPC-Web with connect-node clients, through the real
 * server against the emulator: the same core as the OpenAI audio routes.
 */
import {
  Code,
  ConnectError,
  createClient,
  type Interceptor,
  type Transport,
} from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashApiKey } from "../src/config/index.js";
import { decodeSpeech } from "../src/emulator/audio-codec.js";
import { catalog } from "../src/emulator/index.js";
import {
  AudioFormat,
  AudioService,
  VoiceModelType,
  VoiceState,
  VoiceStateFilter,
} from "../src/gen/cozegateway/v1/audio_pb.js";
import { type GatewayFixture, startGatewayFixture } from "./support/gateway-fixture.js";

const ttsOnlyKey = "tts-only-key-0123456789abcdef";
let fx: GatewayFixture;
beforeAll(async () => {
  fx = await startGatewayFixture({
    apiKeys: [
      { name: "tts", sha256: hashApiKey(ttsOnlyKey), models: ["tts-*"], rawCozeIds: false },
    ],
  });
});
afterAll(async () => {
  await fx?.close();
});

function auth(key: string): Interceptor {
  return (next) => (req) => {
    req.header.set("authorization", `Bearer ${key}`);
    return next(req);
  };
}

const transports: [string, (key: string) => Transport][] = [
  ["gRPC over h2c", (key) => createGrpcTransport({ baseUrl: fx.url, interceptors: [auth(key)] })],
  [
    "Connect JSON over HTTP/1.1",
    (key) =>
      createConnectTransport({
        baseUrl: fx.url,
        httpVersion: "1.1",
        useBinaryFormat: false,
        interceptors: [auth(key)],
      }),
  ],
  [
    "Connect binary over HTTP/2",
    (key) =>
      createConnectTransport({
        baseUrl: fx.url,
        httpVersion: "2",
        useBinaryFormat: true,
        interceptors: [auth(key)],
      }),
  ],
  [
    "gRPC-Web over HTTP/1.1",
    (key) =>
      createGrpcWebTransport({ baseUrl: fx.url, httpVersion: "1.1", interceptors: [auth(key)] }),
  ],
];

/** The ConnectError a call ended with. */
async function failure(call: Promise<unknown>): Promise<ConnectError> {
  const err = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ConnectError);
  return err as ConnectError;
}

describe.each(transports)("AudioService over %s", (_name, make) => {
  it("Speech returns the whole file, its type and the voice id; Transcribe gives the text back", async () => {
    const audio = createClient(AudioService, make(fx.key));
    let channel: string | null = null;
    const speech = await audio.speech(
      {
        input: "über gRPC",
        voice: "nova",
        responseFormat: AudioFormat.WAV,
        speed: 1.25,
        emotion: "happy",
      },
      { onHeader: (h) => (channel = h.get("x-gateway-channel")) },
    );
    expect(channel).toBe("demo");
    expect([speech.contentType, speech.format, speech.voiceId]).toEqual([
      "audio/wav",
      AudioFormat.WAV,
      catalog.voices.nova,
    ]);
    expect(decodeSpeech(Buffer.from(speech.audio))).toMatchObject({
      text: "über gRPC",
      format: "wav",
      speed: 1.25,
      emotion: "happy",
    });
    const heard = await audio.transcribe({ file: speech.audio, fileName: "speech.wav" });
    expect(heard.text).toBe("über gRPC");
  });

  it("ListVoices pages and filters, with every field", async () => {
    const audio = createClient(AudioService, make(fx.key));
    const all = await audio.listVoices({ voiceState: VoiceStateFilter.ALL });
    expect(all.voices.map((v) => v.name)).toEqual([
      "alloy",
      "nova",
      "echo",
      "my-voice",
      "untrained",
    ]);
    const nova = all.voices[1];
    expect(nova).toMatchObject({
      voiceId: catalog.voices.nova,
      modelType: VoiceModelType.BIG,
      state: VoiceState.CLONED,
      isSystemVoice: true,
      createTime: 1_730_000_000n,
    });
    expect(nova?.supportEmotions[0]).toMatchObject({
      emotion: "happy",
      scaleMin: 1,
      scaleMax: 5,
      scaleDefault: 4,
    });
    const own = await audio.listVoices({ filterSystemVoice: true, pageSize: 1 });
    expect([own.voices.map((v) => v.voiceId), own.hasMore]).toEqual([
      [catalog.voices.cloned],
      false,
    ]);
  });

  it("bad input is InvalidArgument naming the field, before Coze is called", async () => {
    const audio = createClient(AudioService, make(fx.key));
    const cases: [Parameters<typeof audio.speech>[0], string][] = [
      [{ input: "x", voice: "nobody" }, "voice"],
      [{ input: "x", voice: "alloy", speed: 2.5 }, "speed"],
      [{ input: "x".repeat(1025), voice: "alloy" }, "input"],
      [{ input: "x", voice: "alloy", responseFormat: 99 as AudioFormat }, "response_format"],
      [{ input: "x", voice: "alloy", loudnessRate: -51 }, "loudness_rate"],
      [{ input: "x", voice: "alloy", model: "whisper-1" }, "model"],
    ];
    const before = fx.demo.emulator.stats().calls["audio.speech"] ?? 0;
    for (const [request, field] of cases) {
      const err = await failure(audio.speech(request));
      expect(err.code).toBe(Code.InvalidArgument);
      expect(err.rawMessage.startsWith(`${field}: `)).toBe(true);
      expect(err.metadata.get("x-gateway-error")).toBe("invalid_argument");
    }
    const file = await failure(audio.transcribe({ file: new Uint8Array(8), fileName: "a.flac" }));
    expect([file.code, file.rawMessage.split(":")[0]]).toEqual([Code.InvalidArgument, "file_name"]);
    const size = await failure(audio.listVoices({ pageSize: 101 }));
    expect([size.code, size.rawMessage.split(":")[0]]).toEqual([Code.InvalidArgument, "page_size"]);
    expect(fx.demo.emulator.stats().calls["audio.speech"] ?? 0).toBe(before);
  });

  it("the key's allow-list applies, and an unknown channel is NotFound", async () => {
    const limited = createClient(AudioService, make(ttsOnlyKey));
    expect((await limited.speech({ input: "ok", voice: "alloy" })).audio.length).toBeGreaterThan(0);
    const denied = await failure(
      limited.transcribe({ file: new Uint8Array(8), fileName: "a.mp3" }),
    );
    expect(denied.code).toBe(Code.PermissionDenied);
    const audio = createClient(AudioService, make(fx.key));
    const channel = await failure(
      audio.speech({ input: "x", voice: "alloy", channel: "elsewhere" }),
    );
    expect(channel.code).toBe(Code.NotFound);
  });

  it("an upstream failure carries Coze's code, step and log id, never a success", async () => {
    fx.demo.emulator.faults.inject({
      kind: "status",
      endpoint: "audio.transcriptions",
      status: 503,
      times: 1,
    });
    const audio = createClient(AudioService, make(fx.key));
    const err = await failure(audio.transcribe({ file: new Uint8Array(8), fileName: "a.mp3" }));
    expect(err.code).toBe(Code.Unavailable);
    expect(err.metadata.get("x-coze-step")).toBe("audio.transcriptions");
    expect(err.metadata.get("x-coze-code")).toBe("5000");
    expect(err.metadata.get("x-coze-logid")).toMatch(/^\d{14}/);
  });
});
