import { create } from "@bufbuild/protobuf";
import { audioModels } from "../config/index.js";
import type { CozeVoice, SpeechFormat } from "../coze/audio.js";
import {
  AudioFormat,
  type AudioService,
  type ListVoicesRequest,
  type SpeechRequest,
  type Voice,
  VoiceModelType,
  VoiceSchema,
  VoiceState,
  VoiceStateFilter,
} from "../gen/cozegateway/v1/audio_pb.js";
import { type Caller, callerOf, mayUse, tenantOf } from "./caller.js";
import type { CoreImpl } from "./core-context.js";
import { channelHeader, invalidArgument, permissionDenied } from "./errors.js";
import { traceOf } from "./request-context.js";
import type { Router } from "./routing.js";
import type { VoiceDirectory } from "./voice-directory.js";

/** Options of {@link createAudioService}. */
export interface AudioServiceOptions {
  /** Gives the channel a request names (the default one when it names none). */
  router: Pick<Router, "channel">;
  voices: VoiceDirectory;
}

/** The limits of coze-api.md §15, checked before Coze is called. */
export const audioLimits = {
  /** The largest speech input, in UTF-8 bytes. */
  inputBytes: 1024,
  /** The largest audio file transcribed, in bytes ("≤ 10 MB"). */
  fileBytes: 10 * 1024 * 1024,
  sampleRates: [8000, 16000, 22050, 24000, 32000, 44100, 48000],
  emotions: [
    "happy",
    "sad",
    "angry",
    "surprised",
    "fear",
    "hate",
    "excited",
    "coldness",
    "neutral",
  ],
  /** What large-model ASR accepts, by file extension (small-model ASR takes a subset). */
  transcriptionFormats: [
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
  ],
} as const;

const formats: Record<number, { coze: SpeechFormat; contentType: string } | undefined> = {
  [AudioFormat.UNSPECIFIED]: { coze: "mp3", contentType: "audio/mpeg" },
  [AudioFormat.MP3]: { coze: "mp3", contentType: "audio/mpeg" },
  [AudioFormat.WAV]: { coze: "wav", contentType: "audio/wav" },
  [AudioFormat.PCM]: { coze: "pcm", contentType: "audio/pcm" },
  [AudioFormat.OGG_OPUS]: { coze: "ogg_opus", contentType: "audio/ogg" },
};

/** MIME types of the transcription formats, for the upload's part. */
const fileTypes: Record<string, string> = {
  mp3: "audio/mpeg",
  wav: "audio/wav",
  ogg: "audio/ogg",
  opus: "audio/ogg",
  m4a: "audio/mp4",
  mp4: "audio/mp4",
  aac: "audio/aac",
  amr: "audio/amr",
};

/**
 * The AudioService implementation over Coze's audio API (coze-api.md §15), shared by the
 * Connect door and the OpenAI door. The model name is checked against the caller's allow-list
 * (ListVoices needs one allowed speech model); the channel is the request's, or the default one.
 * Every limit the reference gives is checked here, each refusal naming its field, so a bad
 * request never reaches Coze.
 */
export function createAudioService(options: AudioServiceOptions): CoreImpl<typeof AudioService> {
  const { router, voices } = options;

  return {
    async speech(req, ctx) {
      allow(callerOf(ctx), modelOf(req.model, "speech"));
      const channel = router.channel(req.channel);
      const checked = checkSpeech(req);
      const voice = await voices.find(channel, req.voice, ctx.signal, traceOf(ctx));
      checkForVoice(req, voice);
      ctx.responseHeader.set(channelHeader, channel.name);
      const speech = await channel.clientFor(tenantOf(ctx).sessionName).audio.speech({
        input: req.input,
        voiceId: voice.voiceId,
        format: checked.format.coze,
        speed: req.speed === 0 ? undefined : Math.round(req.speed * 1000) / 1000,
        sampleRate: req.sampleRate === 0 ? undefined : req.sampleRate,
        emotion: req.emotion === "" ? undefined : req.emotion,
        emotionScale: req.emotionScale === 0 ? undefined : req.emotionScale,
        loudnessRate: req.loudnessRate,
        contextTexts: req.instructions === "" ? undefined : req.instructions,
        signal: ctx.signal,
        trace: traceOf(ctx),
      });
      return {
        audio: speech.audio,
        contentType: checked.format.contentType,
        format:
          req.responseFormat === AudioFormat.UNSPECIFIED ? AudioFormat.MP3 : req.responseFormat,
        voiceId: voice.voiceId,
      };
    },

    async transcribe(req, ctx) {
      allow(callerOf(ctx), modelOf(req.model, "transcription"));
      const channel = router.channel(req.channel);
      if (req.file.length === 0) throw invalidArgument("file", "is required (an audio file)");
      if (req.file.length > audioLimits.fileBytes) {
        throw invalidArgument(
          "file",
          `is ${req.file.length} bytes; Coze transcribes files of at most ${audioLimits.fileBytes} bytes (10 MiB)`,
        );
      }
      const extension = extensionOf(req.fileName);
      if (
        extension === undefined ||
        !(audioLimits.transcriptionFormats as readonly string[]).includes(extension)
      ) {
        throw invalidArgument(
          "file_name",
          `${extension === undefined ? "has no extension" : `names format ${JSON.stringify(extension.slice(0, 16))}`}; Coze transcribes ${audioLimits.transcriptionFormats.join(", ")}`,
        );
      }
      ctx.responseHeader.set(channelHeader, channel.name);
      const result = await channel.clientFor(tenantOf(ctx).sessionName).audio.transcribe({
        data: req.file,
        fileName: req.fileName,
        contentType: fileTypes[extension] ?? "application/octet-stream",
        signal: ctx.signal,
        trace: traceOf(ctx),
      });
      return { text: result.text };
    },

    async listVoices(req, ctx) {
      const caller = callerOf(ctx);
      if (!audioModels.speech.some((m) => mayUse(caller, m))) {
        throw permissionDenied(
          "model",
          `listing voices needs a speech model (${audioModels.speech.join(", ")}), which this API key may not use`,
        );
      }
      const channel = router.channel(req.channel);
      const query = voiceQuery(req);
      ctx.responseHeader.set(channelHeader, channel.name);
      const page = await channel.client.audio.listVoices({
        ...query,
        signal: ctx.signal,
        trace: traceOf(ctx),
      });
      return { voices: page.voices.map(voiceMessage), hasMore: page.hasMore };
    },
  };
}

/** The model name a request runs under: its own, or the kind's default when empty. */
function modelOf(model: string, kind: keyof typeof audioModels): string {
  const names: readonly string[] = audioModels[kind];
  if (model === "") return names[0] as string;
  if (!names.includes(model)) {
    throw invalidArgument(
      "model",
      `${JSON.stringify(model.slice(0, 64))} is not a ${kind} model; use ${names.join(", ")}`,
    );
  }
  return model;
}

function allow(caller: Caller | undefined, model: string): void {
  if (!mayUse(caller, model)) {
    throw permissionDenied("model", `model "${model}" is not allowed for this API key`);
  }
}

/** The checks that need no voice, done before the voice is looked up. */
function checkSpeech(req: SpeechRequest) {
  if (req.input === "") throw invalidArgument("input", "is required (the text to speak)");
  const bytes = Buffer.byteLength(req.input, "utf8");
  if (bytes > audioLimits.inputBytes) {
    throw invalidArgument(
      "input",
      `is ${bytes} bytes of UTF-8; Coze speaks at most ${audioLimits.inputBytes} bytes at a time`,
    );
  }
  if (req.voice === "") throw invalidArgument("voice", "is required (a voice id or name)");
  const format = formats[req.responseFormat];
  if (format === undefined) {
    throw invalidArgument("response_format", "must be mp3, wav, pcm or ogg_opus");
  }
  if (req.speed !== 0 && !(req.speed >= 0.2 && req.speed <= 3)) {
    throw invalidArgument(
      "speed",
      `must be between 0.2 and 3 (0.5 and 2 for large-model voices); got ${req.speed}`,
    );
  }
  if (
    req.sampleRate !== 0 &&
    !(audioLimits.sampleRates as readonly number[]).includes(req.sampleRate)
  ) {
    throw invalidArgument("sample_rate", `must be one of ${audioLimits.sampleRates.join(", ")}`);
  }
  if (req.emotion !== "" && !(audioLimits.emotions as readonly string[]).includes(req.emotion)) {
    throw invalidArgument("emotion", `must be one of ${audioLimits.emotions.join(", ")}`);
  }
  if (req.emotionScale !== 0) {
    if (req.emotion === "") throw invalidArgument("emotion_scale", "needs emotion");
    if (!(req.emotionScale >= 1 && req.emotionScale <= 5)) {
      throw invalidArgument("emotion_scale", `must be between 1 and 5; got ${req.emotionScale}`);
    }
  }
  const loudness = req.loudnessRate;
  if (loudness !== undefined && !(loudness >= -50 && loudness <= 100)) {
    throw invalidArgument(
      "loudness_rate",
      `must be between -50 and 100 (percent); got ${loudness}`,
    );
  }
  return { format };
}

/** The checks that depend on the voice: its speed range and its emotions. */
function checkForVoice(req: SpeechRequest, voice: CozeVoice): void {
  if (voice.modelType === "big" && req.speed !== 0 && !(req.speed >= 0.5 && req.speed <= 2)) {
    throw invalidArgument(
      "speed",
      `must be between 0.5 and 2 for ${voice.name || voice.voiceId}, a large-model voice; got ${req.speed}`,
    );
  }
  if (req.emotion !== "" && !voice.supportEmotions.some((e) => e.emotion === req.emotion)) {
    const has = voice.supportEmotions.map((e) => e.emotion);
    throw invalidArgument(
      "emotion",
      has.length === 0
        ? `voice ${voice.name || voice.voiceId} speaks with one emotion; leave emotion out`
        : `voice ${voice.name || voice.voiceId} speaks with ${has.join(", ")}`,
    );
  }
}

function extensionOf(fileName: string): string | undefined {
  const dot = fileName.lastIndexOf(".");
  return dot === -1 || dot === fileName.length - 1
    ? undefined
    : fileName.slice(dot + 1).toLowerCase();
}

function voiceQuery(req: ListVoicesRequest) {
  if (req.pageNum < 0) throw invalidArgument("page_num", "must be 1 or more");
  if (req.pageSize < 0 || req.pageSize > 100) {
    throw invalidArgument("page_size", "must be between 1 and 100");
  }
  const modelType = { [VoiceModelType.BIG]: "big", [VoiceModelType.SMALL]: "small" } as const;
  const states = {
    [VoiceStateFilter.INIT]: "init",
    [VoiceStateFilter.CLONED]: "cloned",
    [VoiceStateFilter.ALL]: "all",
  } as const;
  if (req.modelType !== VoiceModelType.UNSPECIFIED && !(req.modelType in modelType)) {
    throw invalidArgument("model_type", "must be big or small");
  }
  if (req.voiceState !== VoiceStateFilter.UNSPECIFIED && !(req.voiceState in states)) {
    throw invalidArgument("voice_state", "must be init, cloned or all");
  }
  return {
    filterSystemVoice: req.filterSystemVoice,
    modelType: modelType[req.modelType as keyof typeof modelType],
    voiceState: states[req.voiceState as keyof typeof states],
    pageNum: req.pageNum === 0 ? undefined : req.pageNum,
    pageSize: req.pageSize === 0 ? undefined : req.pageSize,
  };
}

function voiceMessage(v: CozeVoice): Voice {
  return create(VoiceSchema, {
    voiceId: v.voiceId,
    name: v.name,
    languageCode: v.languageCode,
    languageName: v.languageName,
    previewText: v.previewText,
    previewAudio: v.previewAudio,
    modelName: v.modelName,
    state:
      v.state === "init"
        ? VoiceState.INIT
        : v.state === "cloned"
          ? VoiceState.CLONED
          : VoiceState.UNSPECIFIED,
    modelType:
      v.modelType === "big"
        ? VoiceModelType.BIG
        : v.modelType === "small"
          ? VoiceModelType.SMALL
          : VoiceModelType.UNSPECIFIED,
    isSystemVoice: v.isSystemVoice,
    createTime: BigInt(Math.trunc(v.createTime)),
    updateTime: BigInt(Math.trunc(v.updateTime)),
    availableTrainingTimes: Math.min(
      Math.max(Math.trunc(v.availableTrainingTimes), 0),
      2 ** 31 - 1,
    ),
    supportEmotions: v.supportEmotions.map((e) => ({
      emotion: e.emotion,
      displayName: e.displayName,
      scaleMin: e.scale.min,
      scaleMax: e.scale.max,
      scaleDefault: e.scale.default,
    })),
  });
}
