import { describe, expect, it } from "vitest";
import { createManualClock } from "../../test/support/manual-clock.js";
import type { CozeVoice, VoicePage, VoiceQuery } from "../coze/audio.js";
import type { Channel } from "./channels.js";
import { GatewayError } from "./errors.js";
import { createVoiceDirectory } from "./voice-directory.js";

const voice = (voiceId: string, name: string, extra: Partial<CozeVoice> = {}): CozeVoice => ({
  voiceId,
  name,
  languageCode: "en",
  languageName: "English",
  previewText: "",
  previewAudio: "",
  modelName: "",
  state: "cloned",
  modelType: "big",
  isSystemVoice: true,
  createTime: 0,
  updateTime: 0,
  availableTrainingTimes: 0,
  supportEmotions: [],
  ...extra,
});

/** A channel whose Coze account lists `pages()` of voices; counts and holds the list reads. */
function channelWith(pages: () => CozeVoice[][]) {
  const reads: VoiceQuery[] = [];
  let gate: Promise<void> | undefined;
  const channel = {
    name: "main",
    client: {
      audio: {
        async listVoices(query: VoiceQuery): Promise<VoicePage> {
          reads.push(query);
          await gate;
          const all = pages();
          const page = all[(query.pageNum ?? 1) - 1] ?? [];
          return { voices: page, hasMore: (query.pageNum ?? 1) < all.length };
        },
      },
    },
  } as unknown as Channel;
  return {
    channel,
    reads,
    hold() {
      let open = () => {};
      gate = new Promise((resolve) => {
        open = resolve;
      });
      return () => {
        gate = undefined;
        open();
      };
    },
  };
}

const signal = new AbortController().signal;

describe("voice directory", () => {
  it("finds a voice by id or by name in any case, across pages, leaving untrained ones out", async () => {
    const { channel, reads } = channelWith(() => [
      [voice("1", "Alloy"), voice("2", "nova")],
      [voice("3", "echo"), voice("4", "draft", { state: "init" })],
    ]);
    const voices = createVoiceDirectory();
    expect((await voices.find(channel, "3", signal)).name).toBe("echo");
    expect((await voices.find(channel, "alloy", signal)).voiceId).toBe("1");
    expect((await voices.find(channel, "NOVA", signal)).voiceId).toBe("2");
    await expect(voices.find(channel, "draft", signal)).rejects.toMatchObject({
      code: "invalid_argument",
      field: "voice",
    });
    expect(reads.map((q) => [q.pageNum, q.pageSize])).toEqual([
      [1, 100],
      [2, 100],
    ]);
  });

  it("reads the list once for many concurrent requests, again after the TTL", async () => {
    const clock = createManualClock();
    const source = channelWith(() => [[voice("1", "alloy")]]);
    const voices = createVoiceDirectory({ now: clock.now, ttlMs: 60_000 });
    const release = source.hold();
    const waiting = Array.from({ length: 50 }, () =>
      voices.find(source.channel, "alloy", new AbortController().signal),
    );
    release();
    expect((await Promise.all(waiting)).every((v) => v.voiceId === "1")).toBe(true);
    expect(source.reads).toHaveLength(1);
    await clock.advance(59_999);
    await voices.find(source.channel, "alloy", signal);
    expect(source.reads).toHaveLength(1);
    await clock.advance(1);
    await voices.find(source.channel, "alloy", signal);
    expect(source.reads).toHaveLength(2);
  });

  it("an unknown voice reads the list again at most once per interval (a voice cloned a moment ago)", async () => {
    const clock = createManualClock();
    let list = [voice("1", "alloy")];
    const source = channelWith(() => [list]);
    const voices = createVoiceDirectory({ now: clock.now, missRefreshMs: 30_000 });
    await voices.find(source.channel, "alloy", signal);
    for (let i = 0; i < 5; i++) {
      await expect(voices.find(source.channel, "fresh", signal)).rejects.toBeInstanceOf(
        GatewayError,
      );
    }
    expect(source.reads).toHaveLength(1);
    list = [voice("1", "alloy"), voice("9", "fresh")];
    await clock.advance(30_000);
    expect((await voices.find(source.channel, "fresh", signal)).voiceId).toBe("9");
    expect(source.reads).toHaveLength(2);
  });

  it("two voices of one name must be named by id", async () => {
    const source = channelWith(() => [[voice("1", "twin"), voice("2", "Twin")]]);
    const error = await createVoiceDirectory()
      .find(source.channel, "twin", signal)
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "invalid_argument", field: "voice" });
    expect((error as Error).message).toContain("give the voice id");
  });

  it("a caller that goes away stops waiting; the read goes on and serves the next caller", async () => {
    const source = channelWith(() => [[voice("1", "alloy")]]);
    const voices = createVoiceDirectory();
    const release = source.hold();
    const gone = new AbortController();
    const first = voices.find(source.channel, "alloy", gone.signal);
    gone.abort(new Error("client went away"));
    await expect(first).rejects.toThrow("client went away");
    const second = voices.find(source.channel, "alloy", signal);
    release();
    expect((await second).voiceId).toBe("1");
    expect(source.reads).toHaveLength(1);
  });

  it("a failed read is not kept: the next request reads again", async () => {
    let fail = true;
    const source = channelWith(() => {
      if (fail) throw new Error("coze down");
      return [[voice("1", "alloy")]];
    });
    const voices = createVoiceDirectory();
    await expect(voices.find(source.channel, "alloy", signal)).rejects.toThrow("coze down");
    fail = false;
    expect((await voices.find(source.channel, "alloy", signal)).voiceId).toBe("1");
  });
});
