import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  AudioFormat,
  type ListVoicesRequestSchema,
  type SpeechRequestSchema,
  VoiceModelType,
  VoiceStateFilter,
} from "../gen/cozegateway/v1/audio_pb.js";
import {
  invalidType,
  invalidValue,
  isInteger,
  isNumber,
  isRecord,
  isString,
  missing,
  optional,
  unsupported,
} from "./json-checks.js";
import { parseJsonObject } from "./parse-request.js";

/** OpenAI's `response_format` values (and Coze's `ogg_opus`) the gateway can serve. */
const speechFormats: Record<string, AudioFormat> = {
  mp3: AudioFormat.MP3,
  opus: AudioFormat.OGG_OPUS,
  ogg_opus: AudioFormat.OGG_OPUS,
  wav: AudioFormat.WAV,
  pcm: AudioFormat.PCM,
};
const maxModelLength = 256;

/**
 * Parses a `POST /v1/audio/speech` body (OpenAI's fields, plus Coze's as extensions) into a
 * SpeechRequest: `model`, `input` and `voice` (a string, or `{id}` as OpenAI's custom voices)
 * are required; `response_format` is `mp3` (default), `opus` (Ogg Opus; Coze's `ogg_opus` too),
 * `wav` or `pcm`: Coze speaks neither `aac` nor `flac`; `speed`; `instructions` (Coze's
 * `context_texts`); `stream_format` only `audio`. Extensions: `sample_rate`, `emotion`,
 * `emotion_scale`, `loudness_rate`. Ranges and the voice are the core's to check.
 *
 * @throws OpenAiError 400 naming the field: invalid JSON, a missing field, a wrong type, an
 *   unsupported format.
 */
export function parseSpeechRequest(text: string): MessageInitShape<typeof SpeechRequestSchema> {
  const body = parseJsonObject(text);
  const model = requiredString(body, "model");
  if (model.length > maxModelLength) {
    throw invalidValue("model", `must be at most ${maxModelLength} characters.`);
  }
  const input = requiredString(body, "input");
  const voice = voiceOf(body.voice);
  optional(body, "response_format", "response_format", "a string", isString);
  const format = (body.response_format as string | null | undefined) ?? "mp3";
  const responseFormat = speechFormats[format];
  if (responseFormat === undefined) {
    throw unsupported("response_format", format, ["mp3", "opus", "wav", "pcm"]);
  }
  optional(body, "stream_format", "stream_format", "a string", isString);
  const streamFormat = body.stream_format as string | null | undefined;
  if (streamFormat !== undefined && streamFormat !== null && streamFormat !== "audio") {
    // Coze answers one whole file: there are no speech events to stream.
    throw unsupported("stream_format", streamFormat, ["audio"]);
  }
  optional(body, "speed", "speed", "a number", isNumber);
  optional(body, "instructions", "instructions", "a string", isString);
  optional(body, "sample_rate", "sample_rate", "an integer", isInteger);
  optional(body, "emotion", "emotion", "a string", isString);
  optional(body, "emotion_scale", "emotion_scale", "a number", isNumber);
  optional(body, "loudness_rate", "loudness_rate", "an integer", isInteger);
  const int32 = (field: string) => {
    const v = body[field] as number | null | undefined;
    if (v !== undefined && v !== null && Math.abs(v) > 2 ** 31 - 1) {
      throw invalidValue(field, "is out of range.");
    }
    return v ?? undefined;
  };
  return {
    model,
    input,
    voice,
    responseFormat,
    speed: (body.speed as number | null | undefined) ?? 0,
    instructions: (body.instructions as string | null | undefined) ?? "",
    sampleRate: int32("sample_rate") ?? 0,
    emotion: (body.emotion as string | null | undefined) ?? "",
    emotionScale: (body.emotion_scale as number | null | undefined) ?? 0,
    loudnessRate: int32("loudness_rate") ?? 0,
  };
}

function requiredString(body: Record<string, unknown>, field: string): string {
  const v = body[field];
  if (v === undefined || v === null || v === "") throw missing(field);
  if (typeof v !== "string") throw invalidType(field, "a string", v);
  return v;
}

/** `voice`: a voice id or name, or OpenAI's custom-voice object `{id}`. */
function voiceOf(v: unknown): string {
  if (v === undefined || v === null || v === "") throw missing("voice");
  if (typeof v === "string") return v;
  if (isRecord(v) && typeof v.id === "string" && v.id !== "") return v.id;
  throw invalidType("voice", "a string or an object with an id", v);
}

const modelTypes: Record<string, VoiceModelType> = {
  big: VoiceModelType.BIG,
  small: VoiceModelType.SMALL,
};
const voiceStates: Record<string, VoiceStateFilter> = {
  init: VoiceStateFilter.INIT,
  cloned: VoiceStateFilter.CLONED,
  all: VoiceStateFilter.ALL,
};

/**
 * Parses the query of `GET /v1/audio/voices` (Coze's parameters, coze-api.md §15.3):
 * `filter_system_voice` (`true`/`false`), `model_type` (`big`/`small`), `voice_state`
 * (`init`/`cloned`/`all`), `page_num` and `page_size` (integers). Empty values are absent.
 *
 * @throws OpenAiError 400 naming the parameter that is not one of those values.
 */
export function parseVoicesQuery(url: string): MessageInitShape<typeof ListVoicesRequestSchema> {
  const q = url.indexOf("?");
  const params = new URLSearchParams(q === -1 ? "" : url.slice(q + 1));
  const get = (name: string) => params.get(name) || undefined;
  const filter = get("filter_system_voice");
  if (filter !== undefined && filter !== "true" && filter !== "false") {
    throw unsupported("filter_system_voice", filter, ["true", "false"]);
  }
  const modelType = get("model_type");
  if (modelType !== undefined && modelTypes[modelType] === undefined) {
    throw unsupported("model_type", modelType, Object.keys(modelTypes));
  }
  const state = get("voice_state");
  if (state !== undefined && voiceStates[state] === undefined) {
    throw unsupported("voice_state", state, Object.keys(voiceStates));
  }
  const integer = (name: string) => {
    const v = get(name);
    if (v === undefined) return 0;
    if (!/^\d{1,6}$/.test(v)) throw invalidValue(name, "must be a positive integer.");
    return Number(v);
  };
  return {
    filterSystemVoice: filter === "true",
    modelType: modelType === undefined ? VoiceModelType.UNSPECIFIED : modelTypes[modelType],
    voiceState: state === undefined ? VoiceStateFilter.UNSPECIFIED : voiceStates[state],
    pageNum: integer("page_num"),
    pageSize: integer("page_size"),
  };
}
