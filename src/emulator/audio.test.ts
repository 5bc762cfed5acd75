import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeSpeech } from "./audio-codec.js";
import { catalog } from "./catalog.js";
import { startEmulator } from "./server.js";
import { mintToken } from "./testing.js";
import type { Emulator } from "./types.js";

let emulator: Emulator;
let token: string;
beforeAll(async () => {
  emulator = await startEmulator();
  token = await mintToken(emulator, await emulator.createApp());
});
afterAll(() => emulator.close());

const speech = (body: unknown) =>
  fetch(`${emulator.url}/v1/audio/speech`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
const transcribe = (form: FormData | string, contentType?: string) =>
  fetch(`${emulator.url}/v1/audio/transcriptions`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${token}`,
      ...(contentType ? { "content-type": contentType } : {}),
    },
    body: form,
  });
const formOf = (...files: [name: string, data: Uint8Array, fileName: string][]) => {
  const form = new FormData();
  for (const [name, data, fileName] of files) form.append(name, new Blob([data]), fileName);
  return form;
};

describe("emulator audio endpoints (coze-api.md §15)", () => {
  it("speech tolerates go's nulls for every unset optional field", async () => {
    const res = await speech({
      input: "go sends nulls",
      voice_id: catalog.voices.alloy,
      response_format: null,
      speed: null,
      sample_rate: null,
      loudness_rate: null,
      emotion: null,
      emotion_scale: null,
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("audio/mpeg");
    expect(res.headers.get("x-tt-logid")).toMatch(/^\d{14}[0-9A-F]{20}$/);
    const payload = decodeSpeech(Buffer.from(await res.arrayBuffer()));
    expect(payload).toEqual({
      text: "go sends nulls",
      voice_id: catalog.voices.alloy,
      format: "mp3",
      speed: 1,
      sample_rate: 24000,
    });
  });

  it("speech refuses with HTTP 400 and the envelope: input over 1024 bytes, untrained voice, bad rate", async () => {
    for (const body of [
      { input: "a".repeat(1025), voice_id: catalog.voices.alloy },
      { input: "x", voice_id: catalog.voices.untrained },
      { input: "x", voice_id: catalog.voices.alloy, sample_rate: 11025 },
      { input: "x", voice_id: catalog.voices.echo, speed: 3.5 },
      { input: "x", voice_id: catalog.voices.alloy, loudness_rate: 101 },
      { input: "x", voice_id: catalog.voices.alloy, response_format: "flac" },
    ]) {
      const res = await speech(body);
      expect(res.status).toBe(400);
      expect(res.headers.get("content-type")).toBe("application/json");
      expect(await res.json()).toMatchObject({ code: 4000, detail: { logid: expect.any(String) } });
    }
    // Exactly 1024 bytes is fine; a small-model voice goes down to 0.2.
    expect(
      (await speech({ input: "é".repeat(512), voice_id: catalog.voices.echo, speed: 0.2 })).status,
    ).toBe(200);
  });

  it("a status fault on audio.speech answers the envelope with that status", async () => {
    emulator.faults.inject({ kind: "status", endpoint: "audio.speech", status: 429, times: 1 });
    const res = await speech({ input: "x", voice_id: catalog.voices.alloy });
    expect(res.status).toBe(429);
    expect(await res.json()).toMatchObject({ code: 4013 });
    expect((await speech({ input: "x", voice_id: catalog.voices.alloy })).status).toBe(200);
  });

  it("transcriptions accept the docs' part name `body` too, and a file name without extension", async () => {
    const audio = Buffer.from(
      await (await speech({ input: "named body", voice_id: catalog.voices.alloy })).arrayBuffer(),
    );
    const res = await transcribe(formOf(["body", audio, "blob"]));
    expect(res.headers.get("content-type")).toBe("application/json");
    expect(await res.json()).toMatchObject({ code: 0, msg: "", data: { text: "named body" } });
  });

  it("transcriptions refuse with 4000: no file, two files, empty, over 10 MB, not multipart", async () => {
    const one = new Uint8Array([1, 2, 3]);
    const cases: [FormData | string, string?][] = [
      [
        (() => {
          const f = new FormData();
          f.append("model", "x");
          return f;
        })(),
      ],
      [formOf(["file", one, "a.mp3"], ["file", one, "b.mp3"])],
      [formOf(["file", new Uint8Array(0), "a.mp3"])],
      [formOf(["file", new Uint8Array(10 * 1024 * 1024 + 1), "big.wav"])],
      ['{"file":"x"}', "application/json"],
    ];
    for (const [body, type] of cases) {
      const res = await transcribe(body, type);
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ code: 4000 });
    }
  });

  it("transcribing audio the emulator did not speak says so, deterministically", async () => {
    const res = await transcribe(formOf(["file", new Uint8Array(64), "rec.m4a"]));
    expect(await res.json()).toMatchObject({
      data: { text: "[emulator: 64 bytes of audio without emulator speech]" },
    });
  });

  it("voices: page_size above 100 is clamped, a bad model_type is 4000", async () => {
    const get = (q: string) =>
      fetch(`${emulator.url}/v1/audio/voices?${q}`, {
        headers: { authorization: `Bearer ${token}` },
      }).then((r) => r.json() as Promise<{ code: number; data?: { voice_list: unknown[] } }>);
    expect((await get("page_size=500&voice_state=all")).data?.voice_list).toHaveLength(5);
    expect((await get("model_type=huge")).code).toBe(4000);
    expect((await get("voice_state=init")).data?.voice_list).toHaveLength(1);
  });
});
