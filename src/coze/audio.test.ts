import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type CozeFixture, startCozeFixture } from "../../test/support/coze-fixture.js";
import { startScriptedServer } from "../../test/support/scripted-server.js";
import { decodeSpeech } from "../emulator/audio-codec.js";
import { catalog } from "../emulator/index.js";
import { createAudioApi } from "./audio.js";
import { CozeError } from "./errors.js";
import { createCozeHttp } from "./http.js";
import { createPools } from "./pools.js";

let fx: CozeFixture;
beforeAll(async () => {
  fx = await startCozeFixture();
});
afterAll(() => fx.close());
afterEach(() => fx.emulator.reset());

describe("audio against the emulator", () => {
  it("speech returns the audio bytes and Coze's content type, sending only the options given", async () => {
    const speech = await fx.client.audio.speech({
      input: "hello",
      voiceId: catalog.voices.nova,
      format: "wav",
      emotion: "sad",
      loudnessRate: 0,
    });
    expect(speech.contentType).toBe("audio/wav");
    expect(speech.logId).toMatch(/^\d{14}/);
    expect(decodeSpeech(speech.audio)).toEqual({
      text: "hello",
      voice_id: catalog.voices.nova,
      format: "wav",
      speed: 1,
      sample_rate: 24000,
      emotion: "sad",
      emotion_scale: 4,
    });
  });

  it("speech refused by Coze (HTTP 400 envelope) is a bad_request CozeError with Coze's code and log id", async () => {
    const error = await fx.client.audio
      .speech({ input: "x", voiceId: catalog.voices.alloy, speed: 2.5 })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CozeError);
    expect(error).toMatchObject({ code: "bad_request", step: "audio.speech", cozeCode: 4000 });
    expect((error as CozeError).logId).toMatch(/^\d{14}/);
    expect((error as CozeError).message).not.toContain("speed");
  });

  it("transcribe uploads the file as multipart and returns its text", async () => {
    const { audio } = await fx.client.audio.speech({
      input: "say it back",
      voiceId: catalog.voices.echo,
    });
    const result = await fx.client.audio.transcribe({
      data: audio,
      fileName: "speech.mp3",
      contentType: "audio/mpeg",
    });
    expect(result.text).toBe("say it back");
    expect(fx.emulator.stats().calls["audio.transcriptions"]).toBe(1);
  });

  it("listVoices reads every field and pages", async () => {
    const page = await fx.client.audio.listVoices({ pageNum: 2, pageSize: 1 });
    expect(page.hasMore).toBe(true);
    expect(page.voices).toEqual([
      expect.objectContaining({
        voiceId: catalog.voices.nova,
        name: "nova",
        state: "cloned",
        modelType: "big",
        isSystemVoice: true,
        supportEmotions: expect.arrayContaining([
          { emotion: "happy", displayName: "Happy", scale: { min: 1, max: 5, default: 4 } },
        ]),
      }),
    ]);
  });

  it("a connection cut before the audio is an error, never an empty file", async () => {
    fx.emulator.faults.inject({ kind: "reset", endpoint: "audio.speech", afterEvents: 0 });
    const error = await fx.client.audio
      .speech({ input: "x", voiceId: catalog.voices.alloy })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "unavailable", step: "audio.speech" });
  });

  it("voices listing is retried on a 503 (a GET), speech is not sent twice", async () => {
    fx.emulator.faults.inject({ kind: "status", endpoint: "audio.voices", status: 503, times: 1 });
    const page = await fx.client.audio.listVoices({});
    expect(page.voices.length).toBeGreaterThan(0);
    fx.emulator.faults.inject({ kind: "status", endpoint: "audio.speech", status: 503, times: 1 });
    await expect(
      fx.client.audio.speech({ input: "x", voiceId: catalog.voices.alloy }),
    ).rejects.toMatchObject({ code: "unavailable" });
    expect(fx.emulator.stats().calls["audio.speech"]).toBe(1);
  });
});

describe("audio answers Coze should not give", () => {
  const pools = createPools();
  afterAll(() => pools.destroy());
  const apiOn = (url: string) =>
    createAudioApi(
      createCozeHttp({
        baseUrl: url,
        tokens: { getToken: async () => "t", invalidate: () => {} },
        pools,
        maxBodyBytes: 1024,
      }),
    );

  it("a JSON success instead of audio is a protocol error, not an empty file", async () => {
    const server = await startScriptedServer((_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ code: 0, msg: "", data: { content: "" } }));
    });
    try {
      await expect(apiOn(server.url).speech({ input: "x", voiceId: "1" })).rejects.toMatchObject({
        code: "protocol",
        step: "audio.speech",
      });
      expect(server.seen[0]?.headers.accept).toBe("audio/*, application/json");
      expect(JSON.parse(server.seen[0]?.body ?? "")).toEqual({ input: "x", voice_id: "1" });
    } finally {
      await server.close();
    }
  });

  it("audio larger than the body cap is a protocol error, and an empty body too", async () => {
    const server = await startScriptedServer(
      (_req, res) => {
        res.writeHead(200, { "content-type": "audio/mpeg" });
        res.end(Buffer.alloc(4096));
      },
      (_req, res) => {
        res.writeHead(200, { "content-type": "audio/mpeg" });
        res.end();
      },
    );
    try {
      const api = apiOn(server.url);
      await expect(api.speech({ input: "x", voiceId: "1" })).rejects.toMatchObject({
        code: "protocol",
      });
      await expect(api.speech({ input: "x", voiceId: "1" })).rejects.toMatchObject({
        code: "protocol",
      });
    } finally {
      await server.close();
    }
  });

  it("audio labelled application/octet-stream is audio (go reads any non-JSON answer as the file)", async () => {
    const server = await startScriptedServer((_req, res) => {
      res.writeHead(200, { "content-type": "application/octet-stream" });
      res.end(Buffer.from("abc"));
    });
    try {
      const speech = await apiOn(server.url).speech({ input: "x", voiceId: "1" });
      expect([speech.contentType, speech.audio.toString()]).toEqual([
        "application/octet-stream",
        "abc",
      ]);
    } finally {
      await server.close();
    }
  });

  it("a transcription answer without data.text is a protocol error", async () => {
    const server = await startScriptedServer((_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ code: 0, msg: "", data: {} }));
    });
    try {
      await expect(
        apiOn(server.url).transcribe({ data: new Uint8Array([1]), fileName: "a.mp3" }),
      ).rejects.toMatchObject({ code: "protocol", step: "audio.transcriptions" });
      expect(server.seen[0]?.headers["content-type"]).toMatch(/^multipart\/form-data; boundary=/);
    } finally {
      await server.close();
    }
  });
});
