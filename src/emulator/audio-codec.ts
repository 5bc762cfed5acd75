/**
 * The emulator's fake speech: tiny but well-formed audio files (MP3, WAV, raw PCM, Ogg Opus) of
 * silence that carry what was asked for (text, voice, options) as JSON in a metadata field of
 * their format, so that transcribing a file the emulator spoke gives its text back, and tests
 * can read which options reached Coze. Deterministic: the same request gives the same bytes.
 */

/** The speech formats of `/v1/audio/speech` (coze-api.md §15.1). */
export type SpeechFormat = "mp3" | "wav" | "pcm" | "ogg_opus";

/** What a fake speech file carries. */
export interface SpeechPayload {
  text: string;
  voice_id: string;
  format: SpeechFormat;
  speed: number;
  sample_rate: number;
  emotion?: string;
  emotion_scale?: number;
  loudness_rate?: number;
  context_texts?: string;
}

/** Where the payload sits: the ID3 `TXXX` description, the Ogg comment name, the PCM magic. */
const tag = "coze-emulator";
const oggComment = "COZE_EMULATOR=";
const pcmMagic = Buffer.from("CZEMU1");

/** Encodes `payload` as a file in `payload.format`. */
export function encodeSpeech(payload: SpeechPayload): Buffer {
  const json = Buffer.from(JSON.stringify(payload), "utf8");
  switch (payload.format) {
    case "mp3":
      return mp3(json);
    case "wav":
      return wav(json, payload.sample_rate);
    case "pcm":
      return pcm(json, payload.sample_rate);
    case "ogg_opus":
      return oggOpus(json, payload.sample_rate);
  }
}

/** The payload of a file {@link encodeSpeech} made; `undefined` for any other audio. */
export function decodeSpeech(file: Buffer): SpeechPayload | undefined {
  try {
    // Any upload lands here: a truncated or hostile file reads out of range, which is "none".
    const json = findPayload(file);
    if (json === undefined) return undefined;
    const value: unknown = JSON.parse(json.toString("utf8"));
    return typeof value === "object" &&
      value !== null &&
      typeof (value as SpeechPayload).text === "string"
      ? (value as SpeechPayload)
      : undefined;
  } catch {
    return undefined;
  }
}

function findPayload(file: Buffer): Buffer | undefined {
  const head = file.subarray(0, 4).toString("latin1");
  if (head.startsWith("ID3")) return id3Payload(file);
  if (head === "RIFF") return riffPayload(file);
  if (head === "OggS") return oggPayload(file);
  if (file.subarray(0, pcmMagic.length).equals(pcmMagic)) {
    const length = file.readUInt32LE(pcmMagic.length);
    return file.subarray(pcmMagic.length + 4, pcmMagic.length + 4 + length);
  }
  return undefined;
}

/** A 7-bit-per-byte ("synchsafe") 28-bit integer, as ID3v2.4 sizes are written. */
function synchsafe(n: number): Buffer {
  return Buffer.from([(n >> 21) & 0x7f, (n >> 14) & 0x7f, (n >> 7) & 0x7f, n & 0x7f]);
}

function readSynchsafe(b: Buffer, at: number): number {
  return (
    ((b[at] ?? 0) << 21) | ((b[at + 1] ?? 0) << 14) | ((b[at + 2] ?? 0) << 7) | (b[at + 3] ?? 0)
  );
}

/**
 * An ID3v2.4 tag with one `TXXX` frame (UTF-8, description {@link tag}) followed by a few
 * silent MPEG-1 Layer III frames (128 kbit/s, 44.1 kHz, 417 bytes each).
 */
function mp3(json: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from([3]), Buffer.from(`${tag}\0`), json]);
  const frame = Buffer.concat([Buffer.from("TXXX"), synchsafe(body.length), Buffer.alloc(2), body]);
  const header = Buffer.concat([
    Buffer.from("ID3"),
    Buffer.from([4, 0, 0]),
    synchsafe(frame.length),
  ]);
  const silent = Buffer.alloc(417);
  silent.set([0xff, 0xfb, 0x90, 0x64]);
  return Buffer.concat([header, frame, silent, silent, silent, silent]);
}

function id3Payload(file: Buffer): Buffer | undefined {
  const end = 10 + readSynchsafe(file, 6);
  for (let at = 10; at + 10 <= end; ) {
    const id = file.subarray(at, at + 4).toString("latin1");
    const size = readSynchsafe(file, at + 4);
    const body = file.subarray(at + 10, at + 10 + size);
    if (id === "TXXX" && body[0] === 3) {
      const nul = body.indexOf(0, 1);
      if (nul > 0 && body.subarray(1, nul).toString("utf8") === tag) return body.subarray(nul + 1);
    }
    if (size === 0) break;
    at += 10 + size;
  }
  return undefined;
}

/** 100 ms of 16-bit mono silence at `rate`. */
function silence(rate: number): Buffer {
  return Buffer.alloc(Math.floor(rate / 10) * 2);
}

function chunk(id: string, data: Buffer): Buffer {
  const header = Buffer.alloc(8);
  header.write(id, 0, "latin1");
  header.writeUInt32LE(data.length, 4);
  return Buffer.concat([header, data, data.length % 2 === 1 ? Buffer.alloc(1) : Buffer.alloc(0)]);
}

/** RIFF/WAVE, 16-bit mono PCM at `rate`, with a `LIST`/`INFO` chunk whose `ICMT` is the JSON. */
function wav(json: Buffer, rate: number): Buffer {
  const fmt = Buffer.alloc(16);
  fmt.writeUInt16LE(1, 0); // PCM
  fmt.writeUInt16LE(1, 2); // mono
  fmt.writeUInt32LE(rate, 4);
  fmt.writeUInt32LE(rate * 2, 8); // byte rate
  fmt.writeUInt16LE(2, 12); // block align
  fmt.writeUInt16LE(16, 14); // bits per sample
  const info = Buffer.concat([
    Buffer.from("INFO"),
    chunk("ICMT", Buffer.concat([json, Buffer.alloc(1)])),
  ]);
  const body = Buffer.concat([
    Buffer.from("WAVE"),
    chunk("fmt ", fmt),
    chunk("LIST", info),
    chunk("data", silence(rate)),
  ]);
  return chunk("RIFF", body);
}

function riffPayload(file: Buffer): Buffer | undefined {
  if (file.subarray(8, 12).toString("latin1") !== "WAVE") return undefined;
  for (let at = 12; at + 8 <= file.length; ) {
    const id = file.subarray(at, at + 4).toString("latin1");
    const size = file.readUInt32LE(at + 4);
    if (id === "LIST" && file.subarray(at + 8, at + 12).toString("latin1") === "INFO") {
      for (let sub = at + 12; sub + 8 <= at + 8 + size; ) {
        const subId = file.subarray(sub, sub + 4).toString("latin1");
        const subSize = file.readUInt32LE(sub + 4);
        if (subId === "ICMT") {
          const text = file.subarray(sub + 8, sub + 8 + subSize);
          const nul = text.indexOf(0);
          return nul === -1 ? text : text.subarray(0, nul);
        }
        sub += 8 + subSize + (subSize % 2);
      }
    }
    at += 8 + size + (size % 2);
  }
  return undefined;
}

/** Raw PCM cannot hold metadata: the JSON leads the samples, after a magic and its length. */
function pcm(json: Buffer, rate: number): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32LE(json.length);
  const lead = Buffer.concat([pcmMagic, length, json]);
  return Buffer.concat([lead, Buffer.alloc(lead.length % 2), silence(rate)]);
}

/** CRC-32 of Ogg pages: polynomial 0x04C11DB7, not reflected, initial value 0 (RFC 3533). */
const crcTable = Array.from({ length: 256 }, (_, i) => {
  let r = i << 24;
  for (let k = 0; k < 8; k++) r = r & 0x80000000 ? (r << 1) ^ 0x04c11db7 : r << 1;
  return r >>> 0;
});

function oggCrc(page: Buffer): number {
  let crc = 0;
  for (const byte of page) crc = ((crc << 8) ^ (crcTable[((crc >>> 24) ^ byte) & 0xff] ?? 0)) >>> 0;
  return crc;
}

/** One Ogg page holding one whole packet (every packet here is under 64 KiB). */
function oggPage(packet: Buffer, flags: number, granule: number, sequence: number): Buffer {
  const lacing: number[] = [];
  for (let left = packet.length; ; left -= 255) {
    lacing.push(Math.min(left, 255));
    if (left < 255) break;
  }
  const header = Buffer.alloc(27);
  header.write("OggS", 0, "latin1");
  header[5] = flags;
  header.writeBigUInt64LE(BigInt(granule), 6);
  header.writeUInt32LE(0x637a656d, 14); // stream serial number
  header.writeUInt32LE(sequence, 18);
  header[26] = lacing.length;
  const page = Buffer.concat([header, Buffer.from(lacing), packet]);
  page.writeUInt32LE(oggCrc(page), 22);
  return page;
}

/**
 * Ogg Opus (RFC 7845): an `OpusHead` page, an `OpusTags` page whose one comment is the JSON,
 * and one page holding one silent 20 ms Opus packet.
 */
function oggOpus(json: Buffer, rate: number): Buffer {
  const head = Buffer.alloc(19);
  head.write("OpusHead", 0, "latin1");
  head[8] = 1; // version
  head[9] = 1; // channels
  head.writeUInt16LE(312, 10); // pre-skip
  head.writeUInt32LE(rate, 12); // input sample rate
  const comment = Buffer.concat([Buffer.from(oggComment), json]);
  const vendor = Buffer.from(tag);
  const u32 = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(n);
    return b;
  };
  const tags = Buffer.concat([
    Buffer.from("OpusTags"),
    u32(vendor.length),
    vendor,
    u32(1),
    u32(comment.length),
    comment,
  ]);
  return Buffer.concat([
    oggPage(head, 0x02, 0, 0),
    oggPage(tags, 0, 0, 1),
    oggPage(Buffer.from([0xf8, 0xff, 0xfe]), 0x04, 312 + 960, 2),
  ]);
}

function oggPayload(file: Buffer): Buffer | undefined {
  for (let at = 0; at + 27 <= file.length && file.toString("latin1", at, at + 4) === "OggS"; ) {
    const segments = file[at + 26] ?? 0;
    const lacing = file.subarray(at + 27, at + 27 + segments);
    const size = lacing.reduce((sum, n) => sum + n, 0);
    const packet = file.subarray(at + 27 + segments, at + 27 + segments + size);
    if (packet.toString("latin1", 0, 8) === "OpusTags") {
      let p = 8;
      p += 4 + packet.readUInt32LE(p); // vendor
      const count = packet.readUInt32LE(p);
      p += 4;
      for (let i = 0; i < count && p + 4 <= packet.length; i++) {
        const length = packet.readUInt32LE(p);
        const entry = packet.subarray(p + 4, p + 4 + length);
        if (entry.toString("latin1", 0, oggComment.length) === oggComment) {
          return entry.subarray(oggComment.length);
        }
        p += 4 + length;
      }
    }
    at += 27 + segments + size;
  }
  return undefined;
}
