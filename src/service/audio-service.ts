import { audioModels } from "../config/index.js";
import { AudioFormat, type AudioService } from "../gen/cozegateway/v1/audio_pb.js";
import { audioLimits, checkForVoice, checkSpeech } from "./audio-checks.js";
import { voiceMessage, voiceQuery } from "./audio-voices.js";
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
      const format = checkSpeech(req);
      const voice = await voices.find(channel, req.voice, ctx.signal, traceOf(ctx));
      checkForVoice(req, voice);
      ctx.responseHeader.set(channelHeader, channel.name);
      const speech = await channel.clientFor(tenantOf(ctx).sessionName).audio.speech({
        input: req.input,
        voiceId: voice.voiceId,
        format: format.coze,
        speed: req.speed === 0 ? undefined : Math.round(req.speed * 1000) / 1000,
        sampleRate: req.sampleRate === 0 ? undefined : req.sampleRate,
        emotion: req.emotion === "" ? undefined : req.emotion,
        emotionScale: req.emotionScale === 0 ? undefined : req.emotionScale,
        loudnessRate: req.loudnessRate === 0 ? undefined : req.loudnessRate,
        contextTexts: req.instructions === "" ? undefined : req.instructions,
        signal: ctx.signal,
        trace: traceOf(ctx),
      });
      return {
        audio: speech.audio,
        contentType: format.contentType,
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

function extensionOf(fileName: string): string | undefined {
  const dot = fileName.lastIndexOf(".");
  return dot === -1 || dot === fileName.length - 1
    ? undefined
    : fileName.slice(dot + 1).toLowerCase();
}
