/**
 * Fidelity of the emulator's audio endpoints (coze-api.md §15): the official Coze JS SDK
 * (`@coze/api`, unchanged) speaks, transcribes and lists voices against it. If the SDK cannot
 * use the emulator, the emulator is wrong.
 */

import { createReadStream } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { APIError, BadRequestError, CozeAPI, getJWTToken } from "@coze/api";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeSpeech } from "../src/emulator/audio-codec.js";
import { catalog, type Emulator, startEmulator } from "../src/emulator/index.js";

let emulator: Emulator;
let client: CozeAPI;
let dir: string;

beforeAll(async () => {
  emulator = await startEmulator();
  const app = await emulator.createApp();
  const token = await getJWTToken({
    baseURL: emulator.url,
    appId: app.clientId,
    aud: emulator.host,
    keyid: app.publicKeyId,
    privateKey: app.privateKeyPem,
  });
  client = new CozeAPI({ token: token.access_token, baseURL: emulator.url });
  dir = await mkdtemp(join(tmpdir(), "coze-audio-"));
});
afterAll(async () => {
  await emulator.close();
  await rm(dir, { recursive: true, force: true });
});

describe("@coze/api audio against the emulator", () => {
  it("audio.speech.create returns an mp3 that carries the text, voice and options", async () => {
    const audio = await client.audio.speech.create({
      input: "Hello from the SDK",
      voice_id: catalog.voices.nova,
      speed: 1.5,
      emotion: "happy",
      emotion_scale: 2,
    });
    const bytes = Buffer.from(audio);
    expect(bytes.subarray(0, 3).toString("latin1")).toBe("ID3");
    expect(decodeSpeech(bytes)).toMatchObject({
      text: "Hello from the SDK",
      voice_id: catalog.voices.nova,
      format: "mp3",
      speed: 1.5,
      sample_rate: 24000,
      emotion: "happy",
      emotion_scale: 2,
    });
  });

  it.each([
    ["wav", "RIFF", "wav"],
    ["pcm", "CZEM", "pcm"],
    ["ogg", "OggS", "ogg_opus"],
    ["opus", "OggS", "ogg_opus"],
  ] as const)("audio.speech.create with response_format %s", async (format, magic, decoded) => {
    const audio = Buffer.from(
      await client.audio.speech.create({
        input: "formats",
        voice_id: catalog.voices.echo,
        response_format: format,
        sample_rate: 16000,
      }),
    );
    expect(audio.subarray(0, 4).toString("latin1")).toBe(magic);
    expect(decodeSpeech(audio)).toMatchObject({ format: decoded, sample_rate: 16000 });
  });

  it("audio.speech.create refusals are JSON envelopes with HTTP 400: the SDK, which reads bytes, throws BadRequestError", async () => {
    const refusals = await Promise.all([
      client.audio.speech.create({ input: "x", voice_id: "1" }).catch((e: unknown) => e),
      // A large-model voice speaks at 0.5 to 2 only.
      client.audio.speech
        .create({ input: "x", voice_id: catalog.voices.alloy, speed: 2.5 })
        .catch((e: unknown) => e),
      client.audio.speech
        .create({ input: "é".repeat(513), voice_id: catalog.voices.alloy })
        .catch((e: unknown) => e),
      client.audio.speech
        .create({ input: "x", voice_id: catalog.voices.alloy, emotion: "happy" })
        .catch((e: unknown) => e),
    ]);
    for (const refusal of refusals) {
      expect(refusal).toBeInstanceOf(BadRequestError);
      // The SDK asked axios for an arraybuffer (§15.1): the envelope arrives as raw bytes.
      const raw = (refusal as APIError).rawError as unknown as Buffer;
      expect(JSON.parse(Buffer.from(raw).toString("utf8"))).toMatchObject({
        code: 4000,
        detail: { logid: (refusal as APIError).logid },
      });
    }
  });

  it("audio.transcriptions.create gives back the text of the emulator's own speech", async () => {
    const audio = await client.audio.speech.create({
      input: "round trip",
      voice_id: catalog.voices.alloy,
      response_format: "wav",
    });
    await writeFile(join(dir, "hello.wav"), Buffer.from(audio));
    const result = await client.audio.transcriptions.create({
      file: createReadStream(join(dir, "hello.wav")),
    });
    expect(result).toEqual({ text: "round trip" });
  });

  it("audio.transcriptions.create refuses an unsupported format with code 4000", async () => {
    await writeFile(join(dir, "notes.txt"), "not audio");
    const error = await client.audio.transcriptions
      .create({ file: createReadStream(join(dir, "notes.txt")) })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(APIError);
    expect((error as APIError).code).toBe(4000);
  });

  it("audio.voices.list pages and filters the voices with every documented field", async () => {
    const all = await client.audio.voices.list();
    expect(all.has_more).toBe(false);
    expect(all.voice_list.map((v) => v.name)).toEqual(["alloy", "nova", "echo", "my-voice"]);
    const nova = all.voice_list[1];
    expect(Object.keys(nova ?? {}).sort()).toEqual(
      [
        "available_training_times",
        "create_time",
        "is_system_voice",
        "language_code",
        "language_name",
        "model_name",
        "model_type",
        "name",
        "preview_audio",
        "preview_text",
        "state",
        "support_emotions",
        "update_time",
        "voice_id",
      ].sort(),
    );
    expect(nova?.support_emotions?.[0]).toEqual({
      emotion: "happy",
      display_name: "Happy",
      emotion_scale_interval: { min: 1, max: 5, default: 4 },
    });
    const page = await client.audio.voices.list({ page_num: 2, page_size: 1 });
    expect([page.voice_list.map((v) => v.name), page.has_more]).toEqual([["nova"], true]);
    const own = await client.audio.voices.list({ filter_system_voice: true });
    expect(own.voice_list.map((v) => v.voice_id)).toEqual([catalog.voices.cloned]);
    const small = await client.audio.voices.list({ model_type: "small" });
    expect(small.voice_list.map((v) => v.name)).toEqual(["echo", "my-voice"]);
  });
});
