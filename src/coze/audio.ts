import { FormData } from "undici";
import { CozeError, safeMessage } from "./errors.js";
import type { CallTrace, CozeHttp } from "./http.js";
import { bool, compact, id, type Json, num, obj, str } from "./wire.js";

/** The encodings Coze speaks in (coze-api.md §15.1). */
export type SpeechFormat = "mp3" | "wav" | "pcm" | "ogg_opus";

/** One text to speak (`POST /v1/audio/speech`); unset options are left to Coze's defaults. */
export interface SpeechRequest {
  /** At most 1024 bytes of UTF-8 (Coze refuses more). */
  input: string;
  voiceId: string;
  /** Default `mp3`. */
  format?: SpeechFormat;
  /** 0.2 to 3 (0.5 to 2 for large-model voices); Coze's default 1. */
  speed?: number;
  /** In Hz; Coze's default 24 000. */
  sampleRate?: number;
  emotion?: string;
  /** 1 to 5; Coze's default 4. */
  emotionScale?: number;
  /** Percent, −50 to 100; Coze's default 0. */
  loudnessRate?: number;
  /** Style instructions (TTS 2.0 voices). */
  contextTexts?: string;
  signal?: AbortSignal;
  trace?: CallTrace;
}

/** Speech as Coze returned it. */
export interface Speech {
  audio: Buffer;
  /** Coze's `Content-Type` of the audio. */
  contentType: string;
  logId: string | undefined;
}

/** One audio file to transcribe (`POST /v1/audio/transcriptions`). */
export interface TranscriptionRequest {
  data: Uint8Array;
  /** Its name; Coze reads the format from the extension. */
  fileName: string;
  /** Its MIME type, when known. */
  contentType?: string;
  signal?: AbortSignal;
  trace?: CallTrace;
}

/** What `GET /v1/audio/voices` is asked for (coze-api.md §15.3); unset means Coze's default. */
export interface VoiceQuery {
  filterSystemVoice?: boolean;
  modelType?: "big" | "small";
  voiceState?: "init" | "cloned" | "all";
  /** From 1. */
  pageNum?: number;
  /** 1 to 100. */
  pageSize?: number;
  signal?: AbortSignal;
  trace?: CallTrace;
}

/** One emotion a voice speaks with. */
export interface VoiceEmotion {
  emotion: string;
  displayName: string;
  scale: { min: number; max: number; default: number };
}

/** One voice of the account (§15.3), read leniently: a missing field is empty. */
export interface CozeVoice {
  voiceId: string;
  name: string;
  languageCode: string;
  languageName: string;
  previewText: string;
  previewAudio: string;
  modelName: string;
  /** `init`, `cloned`, or `""` when Coze says neither (the docs' example leaves it out). */
  state: "init" | "cloned" | "";
  /** `big`, `small`, or `""` when Coze says neither. */
  modelType: "big" | "small" | "";
  isSystemVoice: boolean;
  /** Unix seconds. */
  createTime: number;
  updateTime: number;
  availableTrainingTimes: number;
  supportEmotions: VoiceEmotion[];
}

/** One page of voices. */
export interface VoicePage {
  voices: CozeVoice[];
  hasMore: boolean;
}

/** Coze's audio API over REST (coze-api.md §15). */
export interface AudioApi {
  /** Speaks `input`; throws {@link CozeError} (`bad_request` when Coze refuses the options). */
  speech(req: SpeechRequest): Promise<Speech>;
  /** The text of an audio file; throws {@link CozeError}. */
  transcribe(req: TranscriptionRequest): Promise<{ text: string; logId: string | undefined }>;
  /** One page of voices; throws {@link CozeError}. */
  listVoices(query: VoiceQuery): Promise<VoicePage>;
}

/** Creates the audio API on top of the HTTP layer: the channel's token, timeouts and retries. */
export function createAudioApi(http: CozeHttp): AudioApi {
  return {
    async speech(req) {
      const res = await http.binary({
        step: "audio.speech",
        method: "POST",
        path: "/v1/audio/speech",
        // Only what was given: Coze's defaults stand for the rest (py sends them, go sends null).
        body: compact({
          input: req.input,
          voice_id: req.voiceId,
          response_format: req.format,
          speed: req.speed,
          sample_rate: req.sampleRate,
          emotion: req.emotion,
          emotion_scale: req.emotionScale,
          loudness_rate: req.loudnessRate,
          context_texts: req.contextTexts,
        }),
        accept: "audio/*, application/json",
        signal: req.signal,
        trace: req.trace,
      });
      return { audio: res.body, contentType: res.contentType, logId: res.logId };
    },

    async transcribe(req) {
      const form = new FormData();
      const type = req.contentType ?? "application/octet-stream";
      form.append("file", new Blob([req.data], { type }), req.fileName);
      const res = await http.json({
        step: "audio.transcriptions",
        method: "POST",
        path: "/v1/audio/transcriptions",
        form,
        signal: req.signal,
        trace: req.trace,
      });
      const text = str(obj(res.body.data)?.text);
      if (text === undefined) throw protocol("audio.transcriptions", res.logId);
      return { text, logId: res.logId };
    },

    async listVoices(query) {
      const res = await http.json({
        step: "audio.voices",
        method: "GET",
        path: "/v1/audio/voices",
        query: {
          // go always sends it (§15.3); false is Coze's default.
          filter_system_voice: query.filterSystemVoice ?? false,
          model_type: query.modelType,
          voice_state: query.voiceState,
          page_num: query.pageNum,
          page_size: query.pageSize,
        },
        signal: query.signal,
        trace: query.trace,
      });
      const data = obj(res.body.data);
      const list = data?.voice_list;
      if (!data || !Array.isArray(list)) throw protocol("audio.voices", res.logId);
      const voices = list
        .map(obj)
        .filter((v): v is Json => v !== undefined && id(v.voice_id) !== undefined);
      return { voices: voices.map(voiceOf), hasMore: bool(data.has_more) ?? false };
    },
  };
}

function voiceOf(v: Json): CozeVoice {
  const state = str(v.state);
  const modelType = str(v.model_type);
  const emotions = Array.isArray(v.support_emotions) ? v.support_emotions : [];
  return {
    voiceId: id(v.voice_id) ?? "",
    name: str(v.name) ?? "",
    languageCode: str(v.language_code) ?? "",
    languageName: str(v.language_name) ?? "",
    previewText: str(v.preview_text) ?? "",
    previewAudio: str(v.preview_audio) ?? "",
    modelName: str(v.model_name) ?? "",
    state: state === "init" || state === "cloned" ? state : "",
    modelType: modelType === "big" || modelType === "small" ? modelType : "",
    isSystemVoice: bool(v.is_system_voice) ?? false,
    createTime: num(v.create_time) ?? 0,
    updateTime: num(v.update_time) ?? 0,
    availableTrainingTimes: num(v.available_training_times) ?? 0,
    supportEmotions: emotions.flatMap((e) => {
      const o = obj(e);
      const name = str(o?.emotion);
      if (!o || !name) return [];
      const scale = obj(o.emotion_scale_interval);
      return [
        {
          emotion: name,
          displayName: str(o.display_name) ?? name,
          scale: {
            min: num(scale?.min) ?? 1,
            max: num(scale?.max) ?? 5,
            default: num(scale?.default) ?? 4,
          },
        },
      ];
    }),
  };
}

function protocol(step: string, logId: string | undefined): CozeError {
  return new CozeError("protocol", safeMessage("protocol", step), { step, logId });
}
