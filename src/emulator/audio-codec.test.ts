import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  decodeSpeech,
  encodeSpeech,
  type SpeechFormat,
  type SpeechPayload,
} from "./audio-codec.js";

const payload = (format: SpeechFormat, text = "Hello, 世界 \u2028!"): SpeechPayload => ({
  text,
  voice_id: "7392000000000000001",
  format,
  speed: 1,
  sample_rate: 24000,
});

/** CRC-32 of an Ogg page as RFC 3533 defines it, bit by bit (independent of the table). */
function referenceCrc(page: Buffer): number {
  let crc = 0;
  for (const byte of page) {
    crc ^= byte << 24;
    for (let k = 0; k < 8; k++) crc = crc & 0x80000000 ? (crc << 1) ^ 0x04c11db7 : crc << 1;
    crc >>>= 0;
  }
  return crc;
}

describe("the emulator's fake speech", () => {
  it.each(["mp3", "wav", "pcm", "ogg_opus"] as const)("%s carries its payload back", (format) => {
    const file = encodeSpeech(payload(format));
    expect(decodeSpeech(file)).toEqual(payload(format));
    expect(encodeSpeech(payload(format)).equals(file)).toBe(true);
  });

  it("mp3: an ID3v2.4 tag whose size is right, then MPEG-1 Layer III frame headers", () => {
    const file = encodeSpeech(payload("mp3"));
    expect([...file.subarray(0, 5)]).toEqual([0x49, 0x44, 0x33, 4, 0]);
    const size =
      ((file[6] ?? 0) << 21) | ((file[7] ?? 0) << 14) | ((file[8] ?? 0) << 7) | (file[9] ?? 0);
    const frame = file.subarray(10 + size);
    expect(frame.length % 417).toBe(0);
    expect([...frame.subarray(0, 2)]).toEqual([0xff, 0xfb]);
  });

  it("wav: RIFF sizes add up and the format chunk says 16-bit mono at the sample rate", () => {
    const file = encodeSpeech({ ...payload("wav"), sample_rate: 16000 });
    expect(file.toString("latin1", 0, 4)).toBe("RIFF");
    expect(file.readUInt32LE(4)).toBe(file.length - 8);
    expect(file.toString("latin1", 8, 16)).toBe("WAVEfmt ");
    expect([file.readUInt16LE(20), file.readUInt16LE(22), file.readUInt32LE(24)]).toEqual([
      1, 1, 16000,
    ]);
    expect(file.readUInt16LE(34)).toBe(16);
    const data = file.indexOf("data", 36, "latin1");
    expect(file.readUInt32LE(data + 4)).toBe(3200);
    expect(data + 8 + 3200).toBe(file.length);
  });

  it("ogg: every page has a valid CRC, the stream opens with OpusHead and ends with EOS", () => {
    const file = encodeSpeech({ ...payload("ogg_opus"), sample_rate: 48000 });
    const pages: Buffer[] = [];
    for (let at = 0; at < file.length; ) {
      expect(file.toString("latin1", at, at + 4)).toBe("OggS");
      const segments = file[at + 26] ?? 0;
      let size = 27 + segments;
      for (let i = 0; i < segments; i++) size += file[at + 27 + i] ?? 0;
      pages.push(file.subarray(at, at + size));
      at += size;
    }
    expect(pages).toHaveLength(3);
    for (const page of pages) {
      const zeroed = Buffer.from(page);
      zeroed.writeUInt32LE(0, 22);
      expect(page.readUInt32LE(22)).toBe(referenceCrc(zeroed));
    }
    expect(pages.map((p) => p[5])).toEqual([0x02, 0, 0x04]);
    expect(pages[0]?.toString("latin1", 28, 36)).toBe("OpusHead");
    expect(pages[0]?.readUInt32LE(28 + 12)).toBe(48000);
    expect(pages[1]?.toString("latin1", 28, 36)).toBe("OpusTags");
  });

  it("pcm: an even number of bytes (whole 16-bit samples)", () => {
    for (const text of ["a", "ab", "abc"]) {
      expect(encodeSpeech(payload("pcm", text)).length % 2).toBe(0);
    }
  });

  it("decoding never throws: any bytes, and any cut of a real file, give a payload or none", () => {
    const files = (["mp3", "wav", "pcm", "ogg_opus"] as const).map((f) => encodeSpeech(payload(f)));
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 512 }).map((b) => Buffer.from(b)),
          fc
            .tuple(fc.constantFrom(...files), fc.nat(), fc.uint8Array({ maxLength: 8 }))
            .map(([f, cut, tail]) => Buffer.concat([f.subarray(0, cut % f.length), tail])),
        ),
        (bytes) => {
          const decoded = decodeSpeech(bytes);
          expect(decoded === undefined || typeof decoded.text === "string").toBe(true);
        },
      ),
      { numRuns: 500 },
    );
  });
});
