import { decodeSpeech, encodeSpeech, type SpeechFormat } from "./audio-codec.js";
import { findVoice } from "./audio-voices.js";
import { parseMultipart } from "./files.js";
import {
  ApiError,
  badRequest,
  type Ctx,
  destroySocket,
  readBody,
  readJson,
  sendData,
} from "./http-io.js";

/** The largest `input`, in UTF-8 bytes (§15.1). */
const maxInputBytes = 1024;
/** The largest audio file transcribed, in bytes: "≤ 10 MB" (§15.2). */
export const maxTranscriptionBytes = 10 * 1024 * 1024;
const sampleRates = new Set([8000, 16000, 22050, 24000, 32000, 44100, 48000]);
const emotions = new Set([
  "happy",
  "sad",
  "angry",
  "surprised",
  "fear",
  "hate",
  "excited",
  "coldness",
  "neutral",
]);
/** What large-model ASR accepts, by file extension (§15.2; small-model ASR takes a subset). */
const transcriptionFormats = new Set([
  "opus",
  "ogg",
  "mp3",
  "wav",
  "m4a",
  "mp4",
  "pcm",
  "raw",
  "spx",
  "aac",
  "amr",
]);
/** `response_format` as clients send it (js also types `ogg` and `opus`, §15.1). */
const formats: Record<string, SpeechFormat> = {
  mp3: "mp3",
  wav: "wav",
  pcm: "pcm",
  ogg_opus: "ogg_opus",
  ogg: "ogg_opus",
  opus: "ogg_opus",
};
/** Content-Type of each format: the emulator's decision of §15.1. */
const contentTypes: Record<SpeechFormat, string> = {
  mp3: "audio/mpeg",
  wav: "audio/wav",
  pcm: "audio/pcm",
  ogg_opus: "audio/ogg",
};

/**
 * `POST /v1/audio/speech` (coze-api.md §15.1): JSON `{input, voice_id, response_format?,
 * speed?, sample_rate?, emotion?, emotion_scale?, loudness_rate?, context_texts?}`, `null`, `""`
 * and `0` counting as absent (go sends `null` for every unset field, §1.6). Answers the audio
 * bytes themselves with `audio/mpeg`, `audio/wav`, `audio/pcm` or `audio/ogg` and `X-Tt-Logid`;
 * the audio is {@link encodeSpeech}'s, so it transcribes back to `input`. Errors are the JSON
 * envelope with HTTP 400 (code 4000), so that js, which reads the body as bytes, sees them too.
 */
export async function handleSpeech(ctx: Ctx): Promise<void> {
  let audio: { bytes: Buffer; contentType: string };
  try {
    audio = speechOf(await readJson(ctx));
  } catch (err) {
    if (err instanceof ApiError && err.httpStatus === 200)
      throw new ApiError(err.code, err.msg, 400);
    throw err;
  }
  sendAudio(ctx, audio.bytes, audio.contentType);
}

function speechOf(body: Record<string, unknown>): { bytes: Buffer; contentType: string } {
  const input = body.input;
  if (typeof input !== "string" || input === "") throw badRequest("input is required");
  if (Buffer.byteLength(input, "utf8") > maxInputBytes) {
    throw badRequest(`input exceeds ${maxInputBytes} bytes`);
  }
  const voiceId = optionalString(body, "voice_id");
  if (voiceId === undefined) throw badRequest("voice_id is required");
  const voice = findVoice(voiceId);
  if (voice === undefined) throw badRequest(`voice_id ${voiceId.slice(0, 32)} not found`);
  if (voice.state !== "cloned") throw badRequest(`voice_id ${voiceId} is not trained yet`);
  const rawFormat = optionalString(body, "response_format") ?? "mp3";
  const format = formats[rawFormat];
  if (format === undefined) throw badRequest("response_format must be mp3, wav, pcm or ogg_opus");
  const [low, high] = voice.model_type === "big" ? [0.5, 2] : [0.2, 3];
  const speed = optionalNumber(body, "speed") ?? 1;
  if (speed < low || speed > high) {
    throw badRequest(`speed must be within [${low}, ${high}] for this voice`);
  }
  const sampleRate = optionalNumber(body, "sample_rate") ?? 24000;
  if (!sampleRates.has(sampleRate)) throw badRequest(`sample_rate ${sampleRate} is not supported`);
  const emotion = optionalString(body, "emotion");
  if (emotion !== undefined) {
    if (!emotions.has(emotion)) throw badRequest(`emotion ${emotion.slice(0, 32)} is unknown`);
    if (!voice.support_emotions.some((e) => e.emotion === emotion)) {
      throw badRequest(`voice_id ${voiceId} does not support emotion ${emotion}`);
    }
  }
  const emotionScale = optionalNumber(body, "emotion_scale");
  if (emotionScale !== undefined && (emotionScale < 1 || emotionScale > 5)) {
    throw badRequest("emotion_scale must be within [1, 5]");
  }
  const loudness = optionalNumber(body, "loudness_rate");
  if (loudness !== undefined && (!Number.isInteger(loudness) || loudness < -50 || loudness > 100)) {
    throw badRequest("loudness_rate must be an integer within [-50, 100]");
  }
  const contextTexts = optionalString(body, "context_texts");
  const bytes = encodeSpeech({
    text: input,
    voice_id: voiceId,
    format,
    speed,
    sample_rate: sampleRate,
    ...(emotion === undefined ? {} : { emotion, emotion_scale: emotionScale ?? 4 }),
    ...(loudness === undefined ? {} : { loudness_rate: loudness }),
    ...(contextTexts === undefined ? {} : { context_texts: contextTexts }),
  });
  return { bytes, contentType: contentTypes[format] };
}

/** A string field; `null`, `""` and absent are absent (§1.6); anything else is 4000. */
function optionalString(body: Record<string, unknown>, name: string): string | undefined {
  const value = body[name];
  if (value === undefined || value === null || value === "") return undefined;
  if (typeof value !== "string") throw badRequest(`${name} must be a string`);
  return value;
}

/** A number field; `null`, `0` and absent are absent (§1.6); anything else is 4000. */
function optionalNumber(body: Record<string, unknown>, name: string): number | undefined {
  const value = body[name];
  if (value === undefined || value === null || value === 0) return undefined;
  if (typeof value !== "number" || !Number.isFinite(value)) {
    throw badRequest(`${name} must be a number`);
  }
  return value;
}

/**
 * Sends audio bytes with `X-Tt-Logid`, unless a fault says otherwise: `reset` cuts the
 * connection, `stall` never answers, `malformed` sends half the file.
 */
function sendAudio(ctx: Ctx, bytes: Buffer, contentType: string): void {
  const { res, plan } = ctx;
  if (res.headersSent || res.destroyed) return;
  if (plan.resetAfter !== undefined) {
    destroySocket(res);
    return;
  }
  if (plan.stallAfter !== undefined) return;
  const body = plan.malformedAfter === undefined ? bytes : bytes.subarray(0, bytes.length >> 1);
  res.writeHead(200, {
    "Content-Type": contentType,
    "Content-Length": String(body.length),
    "X-Tt-Logid": ctx.logid,
  });
  res.end(body);
}

/**
 * `POST /v1/audio/transcriptions` (coze-api.md §15.2): multipart/form-data with one file part
 * named `file` (the docs' table calls it `body`: that name is accepted too), at most 10 MB, of a
 * format large-model ASR accepts by its file name's extension (a name without one is taken as
 * it is). Answers `data {text}` as JSON: the text an emulator speech file carries, else a
 * sentence saying what was received. Errors: 4000 with HTTP 200, like other business errors.
 */
export async function handleTranscription(ctx: Ctx): Promise<void> {
  const type = ctx.req.headers["content-type"] ?? "";
  const boundary = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(type);
  if (!type.toLowerCase().startsWith("multipart/form-data") || !boundary) {
    throw badRequest("the body must be multipart/form-data");
  }
  const parts = parseMultipart(await readBody(ctx), boundary[1] ?? boundary[2] ?? "").filter(
    (part) => part.name === "file" || part.name === "body",
  );
  if (parts.length === 0) throw badRequest("the multipart field `file` is required");
  if (parts.length > 1) throw badRequest("only one audio file can be transcribed at a time");
  const [file] = parts as [(typeof parts)[number]];
  if (file.data.length === 0) throw badRequest("the audio file is empty");
  if (file.data.length > maxTranscriptionBytes) throw badRequest("the audio file exceeds 10 MB");
  const dot = (file.filename ?? "").lastIndexOf(".");
  const extension = dot === -1 ? undefined : (file.filename ?? "").slice(dot + 1).toLowerCase();
  if (extension !== undefined && !transcriptionFormats.has(extension)) {
    throw badRequest(`audio format ${extension.slice(0, 16)} is not supported`);
  }
  const spoken = decodeSpeech(file.data);
  sendData(ctx, {
    text: spoken?.text ?? `[emulator: ${file.data.length} bytes of audio without emulator speech]`,
  });
}
