/**
 * The OpenAI-compatible audio routes with the official `openai` SDK: speech, transcription and
 * the voices list, through the real server against the emulator (issue 17, "Audio").
 */
import OpenAI, { APIError, toFile } from "openai";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { hashApiKey } from "../src/config/index.js";
import { decodeSpeech } from "../src/emulator/audio-codec.js";
import { catalog } from "../src/emulator/index.js";
import { type GatewayFixture, startGatewayFixture } from "./support/gateway-fixture.js";

const whisperOnlyKey = "whisper-only-key-0123456789";
const chatOnlyKey = "chat-only-key-0123456789abc";
let fx: GatewayFixture;
let client: OpenAI;
const clientFor = (key: string) =>
  new OpenAI({ baseURL: `${fx.url}/v1`, apiKey: key, maxRetries: 0 });

beforeAll(async () => {
  fx = await startGatewayFixture({
    apiKeys: [
      {
        name: "whisper",
        sha256: hashApiKey(whisperOnlyKey),
        models: ["whisper-1"],
        rawCozeIds: false,
      },
      { name: "chat", sha256: hashApiKey(chatOnlyKey), models: ["coze-*"], rawCozeIds: false },
    ],
  });
  client = clientFor(fx.key);
});
afterAll(async () => {
  await fx?.close();
});
beforeEach(() => fx.demo.emulator.reset());

/** What the SDK's raw speech Response carries, with the emulator payload decoded. */
async function spoken(res: Response) {
  const bytes = Buffer.from(await res.arrayBuffer());
  return { type: res.headers.get("content-type"), bytes, payload: decodeSpeech(bytes) };
}

/** The error a call ended with: an SDK APIError. */
async function failure(call: Promise<unknown>): Promise<APIError> {
  const err = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(APIError);
  return err as APIError;
}

describe("audio.speech.create", () => {
  it("speaks with a voice named as OpenAI names voices, as mp3 by default", async () => {
    const res = await client.audio.speech.create({
      model: "tts-1",
      voice: "alloy",
      input: "Hello",
    });
    expect(res.headers.get("x-gateway-channel")).toBe("demo");
    const { type, bytes, payload } = await spoken(res);
    expect(type).toBe("audio/mpeg");
    expect(bytes.subarray(0, 3).toString("latin1")).toBe("ID3");
    expect(payload).toEqual({
      text: "Hello",
      voice_id: catalog.voices.alloy,
      format: "mp3",
      speed: 1,
      sample_rate: 24000,
    });
  });

  it.each([
    ["opus", "audio/ogg", "ogg_opus"],
    ["wav", "audio/wav", "wav"],
    ["pcm", "audio/pcm", "pcm"],
  ] as const)("response_format %s answers %s", async (format, type, coze) => {
    const res = await client.audio.speech.create({
      model: "gpt-4o-mini-tts",
      voice: { id: catalog.voices.echo },
      input: "formats",
      response_format: format,
    });
    const got = await spoken(res);
    expect([got.type, got.payload?.format]).toEqual([type, coze]);
  });

  it("passes speed, instructions and the Coze extensions through", async () => {
    const res = await client.audio.speech.create({
      model: "tts-1-hd",
      voice: "NOVA",
      input: "sad news",
      speed: 0.75,
      instructions: "speak slowly",
      sample_rate: 48000,
      emotion: "sad",
      emotion_scale: 2.5,
      loudness_rate: -20,
    } as OpenAI.Audio.SpeechCreateParams);
    expect((await spoken(res)).payload).toEqual({
      text: "sad news",
      voice_id: catalog.voices.nova,
      format: "mp3",
      speed: 0.75,
      sample_rate: 48000,
      emotion: "sad",
      emotion_scale: 2.5,
      loudness_rate: -20,
      context_texts: "speak slowly",
    });
  });

  it.each([
    [{ voice: "nobody" }, "voice", "unknown voice"],
    [{ voice: "untrained" }, "voice", "unknown voice"],
    [{ response_format: "aac" }, "response_format", "'mp3', 'opus', 'wav' and 'pcm'"],
    [{ response_format: "flac" }, "response_format", "'mp3', 'opus', 'wav' and 'pcm'"],
    [{ speed: 2.5 }, "speed", '0.5 and 2 for voice "alloy", a large-model voice'],
    [{ speed: 4 }, "speed", "between 0.2 and 3"],
    [{ speed: "fast" }, "speed", "expected a number"],
    [{ input: "é".repeat(513) }, "input", "1026 bytes"],
    [{ input: "" }, "input", "Missing required parameter"],
    [{ emotion: "happy" }, "emotion", "speaks with one emotion"],
    [{ voice: "nova", emotion: "joyful" }, "emotion", "must be one of"],
    [{ voice: "nova", emotion: "happy", emotion_scale: 9 }, "emotion_scale", "between 1 and 5"],
    [{ sample_rate: 11025 }, "sample_rate", "must be one of"],
    [{ loudness_rate: 200 }, "loudness_rate", "between -50 and 100"],
    [{ model: "whisper-1" }, "model", "not a speech model"],
    [{ stream_format: "sse" }, "stream_format", "'audio'"],
  ])("refuses %j with a 400 naming %s, before Coze is called", async (change, param, words) => {
    const err = await failure(
      client.audio.speech.create({
        model: "tts-1",
        voice: "alloy",
        input: "x",
        ...change,
      } as OpenAI.Audio.SpeechCreateParams),
    );
    expect([err.status, err.param, (err.error as { type?: string }).type]).toEqual([
      400,
      param,
      "invalid_request_error",
    ]);
    expect(err.message).toContain(words);
    expect(fx.demo.emulator.stats().calls["audio.speech"] ?? 0).toBe(0);
  });

  it("a key whose allow-list lacks the speech model gets 403 and Coze is not called", async () => {
    const err = await failure(
      clientFor(whisperOnlyKey).audio.speech.create({ model: "tts-1", voice: "alloy", input: "x" }),
    );
    expect([err.status, err.code]).toEqual([403, "permission_denied"]);
    expect(fx.demo.emulator.stats().calls["audio.voices"] ?? 0).toBe(0);
  });

  it("a client that goes away cancels the Coze call", async () => {
    fx.demo.emulator.faults.inject({ kind: "stall", endpoint: "audio.speech", afterEvents: 0 });
    const canceled = async () => {
      const text = await (await fetch(`${fx.url}/metrics`)).text();
      const line = text
        .split("\n")
        .find(
          (l) =>
            l.startsWith("coze_gateway_upstream_requests_total{") &&
            l.includes('step="audio.speech"') &&
            l.includes('outcome="canceled"'),
        );
      return Number(line?.split(" ").at(-1) ?? 0);
    };
    const before = await canceled();
    const abort = new AbortController();
    const call = client.audio.speech
      .create({ model: "tts-1", voice: "alloy", input: "never heard" }, { signal: abort.signal })
      .catch((e: unknown) => e);
    await expect.poll(() => fx.demo.emulator.stats().calls["audio.speech"] ?? 0).toBe(1);
    abort.abort();
    await call;
    await expect.poll(canceled).toBe(before + 1);
  });

  it("an upstream refusal is never a success: Coze's rate limit is a 429 with Retry-After", async () => {
    fx.demo.emulator.faults.inject({
      kind: "status",
      endpoint: "audio.speech",
      status: 429,
      times: 1,
      retryAfterSeconds: 7,
    });
    const err = await failure(
      client.audio.speech.create({ model: "tts-1", voice: "alloy", input: "x" }),
    );
    expect([err.status, err.headers?.get("retry-after"), err.headers?.get("x-coze-logid")]).toEqual(
      [429, "7", expect.stringMatching(/^\d{14}/)],
    );
  });
});

describe("audio.transcriptions.create", () => {
  it("transcribes the gateway's own speech back to its text (json and text)", async () => {
    const speech = await client.audio.speech.create({
      model: "tts-1",
      voice: "echo",
      input: "round trip ✓",
    });
    const file = await toFile(Buffer.from(await speech.arrayBuffer()), "speech.mp3");
    const json = await client.audio.transcriptions.create({ model: "whisper-1", file });
    expect(json).toEqual({ text: "round trip ✓" });
    const text = await clientFor(whisperOnlyKey).audio.transcriptions.create({
      model: "whisper-1",
      file,
      response_format: "text",
      language: "en",
      prompt: "ignored",
      temperature: 0,
    });
    expect(text).toBe("round trip ✓");
  });

  it.each([
    [{ model: "tts-1" }, "model", "not a transcription model"],
    [{ response_format: "srt" }, "response_format", "'json' and 'text'"],
    [{ response_format: "verbose_json" }, "response_format", "'json' and 'text'"],
    [{ fileName: "speech.flac" }, "file", 'names format "flac"'],
    [{ fileName: "noextension" }, "file", "has no extension"],
    [{ data: Buffer.alloc(0) }, "file", "is required"],
  ])("refuses %j with a 400 naming %s", async (change, param, words) => {
    const {
      fileName = "a.mp3",
      data = Buffer.from("abc"),
      ...params
    } = change as {
      fileName?: string;
      data?: Buffer;
    } & Record<string, string>;
    const err = await failure(
      client.audio.transcriptions.create({
        model: "whisper-1",
        file: await toFile(data, fileName),
        ...params,
      } as OpenAI.Audio.TranscriptionCreateParamsNonStreaming),
    );
    expect([err.status, err.param]).toEqual([400, param]);
    expect(err.message).toContain(words);
    expect(fx.demo.emulator.stats().calls["audio.transcriptions"] ?? 0).toBe(0);
  });

  it("a key allowed only chat models gets 403", async () => {
    const err = await failure(
      clientFor(chatOnlyKey).audio.transcriptions.create({
        model: "whisper-1",
        file: await toFile(Buffer.from("abc"), "a.mp3"),
      }),
    );
    expect(err.status).toBe(403);
  });
});

describe("GET /v1/audio/voices", () => {
  it("lists the channel's voices in the documented shape, with Coze's filters and paging", async () => {
    const all = await client.get<{
      object: string;
      data: Record<string, unknown>[];
      has_more: boolean;
    }>("/audio/voices");
    expect(all.object).toBe("list");
    expect(all.has_more).toBe(false);
    expect(all.data.map((v) => v.name)).toEqual(["alloy", "nova", "echo", "my-voice"]);
    expect(all.data[1]).toEqual({
      id: catalog.voices.nova,
      object: "voice",
      name: "nova",
      language_code: "en",
      language_name: "English",
      preview_text: "Hello, I am nova.",
      preview_audio: `https://coze-emulator.invalid/voices/${catalog.voices.nova}.mp3`,
      model_name: "seed-tts-1.0",
      model_type: "big",
      state: "cloned",
      is_system_voice: true,
      create_time: 1_730_000_000,
      update_time: 1_730_000_000,
      available_training_times: 0,
      support_emotions: expect.arrayContaining([
        {
          emotion: "sad",
          display_name: "Sad",
          emotion_scale_interval: { min: 1, max: 5, default: 4 },
        },
      ]),
    });
    const page = await client.get<{ data: { id: string }[]; has_more: boolean }>("/audio/voices", {
      query: { model_type: "small", page_num: 1, page_size: 1 },
    });
    expect([page.data.map((v) => v.id), page.has_more]).toEqual([[catalog.voices.echo], true]);
  });

  it("refuses a bad filter with a 400 naming it, and a key without a speech model with 403", async () => {
    const bad = await failure(client.get("/audio/voices", { query: { voice_state: "gone" } }));
    expect([bad.status, bad.param]).toEqual([400, "voice_state"]);
    const forbidden = await failure(clientFor(whisperOnlyKey).get("/audio/voices"));
    expect(forbidden.status).toBe(403);
  });
});
