import { catalog } from "./catalog.js";
import { badRequest, type Ctx, queryParam, sendData } from "./http-io.js";

/** An emotion a voice speaks with (coze-api.md §15.3 `support_emotions`). */
interface EmotionInfo {
  emotion: string;
  display_name: string;
  emotion_scale_interval: { min: number; max: number; default: number };
}

/** One voice as `/v1/audio/voices` lists it: every field of §15.3, always (py requires most). */
export interface VoiceRecord {
  voice_id: string;
  name: string;
  language_code: string;
  language_name: string;
  preview_text: string;
  preview_audio: string;
  model_name: string;
  state: "init" | "cloned";
  model_type: "big" | "small";
  is_system_voice: boolean;
  create_time: number;
  update_time: number;
  available_training_times: number;
  support_emotions: EmotionInfo[];
}

const created = 1_730_000_000;
const emotion = (name: string, display: string): EmotionInfo => ({
  emotion: name,
  display_name: display,
  emotion_scale_interval: { min: 1, max: 5, default: 4 },
});

function voice(
  id: string,
  name: string,
  fields: Partial<VoiceRecord> & Pick<VoiceRecord, "model_type">,
): VoiceRecord {
  return {
    voice_id: id,
    name,
    language_code: "en",
    language_name: "English",
    preview_text: `Hello, I am ${name}.`,
    preview_audio: `https://coze-emulator.invalid/voices/${id}.mp3`,
    model_name: fields.model_type === "big" ? "seed-tts-1.0" : "",
    state: "cloned",
    is_system_voice: true,
    create_time: created,
    update_time: created,
    available_training_times: 0,
    support_emotions: [],
    ...fields,
  };
}

/** The emulator's voices, in list order (ids in {@link catalog}.voices). */
export const voices: readonly VoiceRecord[] = [
  voice(catalog.voices.alloy, "alloy", { model_type: "big" }),
  voice(catalog.voices.nova, "nova", {
    model_type: "big",
    support_emotions: [
      emotion("happy", "Happy"),
      emotion("sad", "Sad"),
      emotion("angry", "Angry"),
      emotion("neutral", "Neutral"),
    ],
  }),
  voice(catalog.voices.echo, "echo", {
    model_type: "small",
    language_code: "zh",
    language_name: "中文",
    preview_text: "你好，我是 echo。",
  }),
  voice(catalog.voices.cloned, "my-voice", {
    model_type: "small",
    is_system_voice: false,
    available_training_times: 9,
  }),
  voice(catalog.voices.untrained, "untrained", {
    model_type: "small",
    state: "init",
    is_system_voice: false,
    available_training_times: 10,
  }),
];

/** The voice with this id, in any state. */
export function findVoice(id: string): VoiceRecord | undefined {
  return voices.find((v) => v.voice_id === id);
}

/** The most voices one page holds (§15.3); a larger `page_size` is clamped (§13.7). */
const maxPageSize = 100;

/**
 * `GET /v1/audio/voices` (coze-api.md §15.3): `filter_system_voice` (default false),
 * `model_type` `big|small` (absent: both), `voice_state` `init|cloned|all` (default `cloned`),
 * `page_num` (default 1), `page_size` 1 to 100 (default 100, clamped). Answers
 * `data {voice_list, has_more}`. A value outside those is 4000.
 */
export function handleListVoices(ctx: Ctx): void {
  const filterSystem = booleanParam(ctx, "filter_system_voice");
  const modelType = queryParam(ctx, "model_type");
  if (modelType !== undefined && modelType !== "big" && modelType !== "small") {
    throw badRequest("model_type must be big or small");
  }
  const state = queryParam(ctx, "voice_state") ?? "cloned";
  if (state !== "init" && state !== "cloned" && state !== "all") {
    throw badRequest("voice_state must be init, cloned or all");
  }
  const pageNum = positiveParam(ctx, "page_num") ?? 1;
  const pageSize = Math.min(positiveParam(ctx, "page_size") ?? maxPageSize, maxPageSize);
  const matching = voices.filter(
    (v) =>
      !(filterSystem && v.is_system_voice) &&
      (modelType === undefined || v.model_type === modelType) &&
      (state === "all" || v.state === state),
  );
  const start = (pageNum - 1) * pageSize;
  sendData(ctx, {
    voice_list: matching.slice(start, start + pageSize),
    has_more: start + pageSize < matching.length,
  });
}

function booleanParam(ctx: Ctx, name: string): boolean {
  const value = queryParam(ctx, name);
  if (value === undefined || value === "false") return false;
  if (value === "true") return true;
  throw badRequest(`${name} must be true or false`);
}

/** A positive integer query parameter; `0`, `""` and absent are absent (§1.6). */
function positiveParam(ctx: Ctx, name: string): number | undefined {
  const value = queryParam(ctx, name);
  if (value === undefined || value === "0") return undefined;
  if (!/^\d{1,9}$/.test(value)) throw badRequest(`${name} must be a positive integer`);
  return Number(value);
}
