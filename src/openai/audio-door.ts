import { create } from "@bufbuild/protobuf";
import {
  ListVoicesRequestSchema,
  ListVoicesResponseSchema,
  SpeechRequestSchema,
  SpeechResponseSchema,
  TranscribeRequestSchema,
  TranscribeResponseSchema,
  type Voice,
  VoiceModelType,
  VoiceState,
} from "../gen/cozegateway/v1/audio_pb.js";
import {
  audioLimits,
  type Caller,
  type CoreContext,
  CozeError,
  GatewayError,
  requestOf,
  type ServiceImpls,
} from "../service/index.js";
import { readAudioForm } from "./audio-form.js";
import { parseSpeechRequest, parseVoicesQuery } from "./audio-request.js";
import { clientGone, createCallContext } from "./call-context.js";
import { missing, unsupported } from "./json-checks.js";
import type { NodeRequest, NodeResponse } from "./node-types.js";
import { OpenAiError, toOpenAiError } from "./openai-error.js";
import { readBody } from "./read-body.js";
import { sendOpenAiError } from "./respond.js";
import type { LogFn } from "./turn.js";

/** Options of {@link createAudioRoutes}. */
export interface AudioRoutesOptions {
  /** The core; its `audio` service serves every route. */
  services: ServiceImpls;
  /** The largest request body, in bytes (the server's `bodyLimitBytes`). */
  bodyLimitBytes: number;
  log: LogFn;
}

/** One request to an audio route. */
export interface AudioCall {
  req: NodeRequest;
  res: NodeResponse;
  caller: Caller;
  /** Aborts when the server's shutdown grace period is over: the call is then answered 503. */
  hardStop: AbortSignal | undefined;
}

/** The paths the audio routes serve, for the OpenAI door's route labels and its 404 text. */
export const audioPaths = ["/v1/audio/speech", "/v1/audio/transcriptions", "/v1/audio/voices"];

/** What a produced answer is: its body and Content-Type. */
interface Answer {
  body: Buffer | string;
  contentType: string;
}

/**
 * The OpenAI-compatible audio routes, over `AudioService` in process (the same core a gRPC
 * client reaches):
 * - `POST /v1/audio/speech`: OpenAI's JSON in (`parseSpeechRequest`), the audio bytes out with
 *   their Content-Type (`audio/mpeg`, `audio/ogg`, `audio/wav`, `audio/pcm`);
 * - `POST /v1/audio/transcriptions`: multipart/form-data in (`readAudioForm`: `file`, `model`,
 *   `response_format` `json` or `text`; `language`, `prompt` and `temperature` are accepted and
 *   ignored, Coze has no such settings), `{"text"}` or the text out;
 * - `GET /v1/audio/voices`: the channel's voices as `{"object":"list","data":[…],"has_more"}`.
 *
 * Returns `false` for any other path. Errors are thrown as OpenAI errors for the door's one
 * mapping, or answered here when they come from the core (with the channel header).
 */
export function createAudioRoutes(
  options: AudioRoutesOptions,
): (path: string, method: string, call: AudioCall) => Promise<boolean> {
  const { services, bodyLimitBytes, log } = options;

  async function run(call: AudioCall, produce: (ctx: CoreContext) => Promise<Answer>) {
    const cc = createCallContext(call.res, call.caller, call.hardStop, requestOf(call.req));
    try {
      const answer = await produce(cc.ctx);
      send(call.res, answer, cc.withResponseHeaders({}));
    } catch (err) {
      const { signal } = cc.ctx;
      if (signal.reason === clientGone) return;
      const failure = signal.aborted ? signal.reason : err;
      if (!(failure instanceof GatewayError || failure instanceof CozeError)) {
        log("error", "REST audio request failed with an unexpected error", {
          error: failure instanceof Error ? failure.name : typeof failure,
        });
      }
      sendOpenAiError(call.res, restParam(toOpenAiError(failure)), cc.withResponseHeaders({}));
    } finally {
      cc.release();
    }
  }

  async function speech(call: AudioCall) {
    const text = await readBody(call.req, bodyLimitBytes);
    if (text === undefined) throw tooLarge(call.req, bodyLimitBytes);
    const request = create(SpeechRequestSchema, parseSpeechRequest(text));
    await run(call, async (ctx) => {
      const { audio, contentType } = create(
        SpeechResponseSchema,
        await services.audio.speech(request, ctx),
      );
      return { body: Buffer.from(audio.buffer, audio.byteOffset, audio.byteLength), contentType };
    });
  }

  async function transcription(call: AudioCall) {
    const form = await readAudioForm(call.req, {
      bodyBytes: bodyLimitBytes,
      fileBytes: audioLimits.fileBytes,
    });
    const first = (name: string) => form.fields.get(name)?.[0];
    const model = first("model");
    if (!model) throw missing("model");
    const format = first("response_format") || "json";
    if (format !== "json" && format !== "text") {
      // Coze gives the text alone: no segments, timings or subtitles to format.
      throw unsupported("response_format", format, ["json", "text"]);
    }
    const stream = first("stream");
    if (stream !== undefined && stream !== "false") {
      throw unsupported("stream", stream, ["false"]);
    }
    if (form.file === undefined) throw missing("file");
    const request = create(TranscribeRequestSchema, {
      model,
      file: form.file.data,
      fileName: form.file.fileName,
    });
    await run(call, async (ctx) => {
      const { text } = create(
        TranscribeResponseSchema,
        await services.audio.transcribe(request, ctx),
      );
      return format === "text"
        ? { body: text, contentType: "text/plain; charset=utf-8" }
        : { body: JSON.stringify({ text }), contentType: "application/json; charset=utf-8" };
    });
  }

  async function voices(call: AudioCall) {
    const request = create(ListVoicesRequestSchema, parseVoicesQuery(call.req.url ?? ""));
    await run(call, async (ctx) => {
      const page = create(ListVoicesResponseSchema, await services.audio.listVoices(request, ctx));
      const body = { object: "list", data: page.voices.map(voiceJson), has_more: page.hasMore };
      return { body: JSON.stringify(body), contentType: "application/json; charset=utf-8" };
    });
  }

  const routes: Record<string, [method: string, serve: (call: AudioCall) => Promise<void>]> = {
    "/v1/audio/speech": ["POST", speech],
    "/v1/audio/transcriptions": ["POST", transcription],
    "/v1/audio/voices": ["GET", voices],
  };

  return async (path, method, call) => {
    const route = routes[path];
    if (route === undefined) return false;
    const [allowed, serve] = route;
    if (method === allowed || (allowed === "GET" && method === "HEAD")) await serve(call);
    else {
      call.res.setHeader("allow", allowed);
      throw new OpenAiError(405, {
        message: `method ${method.slice(0, 16)} not allowed here; use ${allowed}`,
        type: "invalid_request_error",
        code: "method_not_allowed",
        param: null,
      });
    }
    return true;
  };
}

/** The core names the upload's name `file_name`; over REST it is the `file` part's. */
function restParam(err: OpenAiError): OpenAiError {
  if (err.body.param !== "file_name") return err;
  return new OpenAiError(err.status, { ...err.body, param: "file" }, { ...err.headers });
}

function tooLarge(req: NodeRequest, limit: number): OpenAiError {
  return new OpenAiError(
    413,
    {
      message: `request body larger than ${limit} bytes`,
      type: "invalid_request_error",
      code: "request_too_large",
      param: null,
    },
    req.httpVersionMajor === 1 ? { connection: "close" } : {},
  );
}

function send(res: NodeResponse, answer: Answer, headers: Record<string, string>): void {
  if (res.headersSent || res.writableEnded || res.destroyed) return;
  for (const name in headers) res.setHeader(name, headers[name] as string);
  res.setHeader("content-type", answer.contentType);
  res.setHeader("content-length", Buffer.byteLength(answer.body));
  res.statusCode = 200;
  res.end(answer.body);
}

/**
 * One voice of `GET /v1/audio/voices`: OpenAI's `id` and `object`, then Coze's own fields
 * under Coze's names (coze-api.md §15.3).
 */
function voiceJson(v: Voice) {
  return {
    id: v.voiceId,
    object: "voice",
    name: v.name,
    language_code: v.languageCode,
    language_name: v.languageName,
    preview_text: v.previewText,
    preview_audio: v.previewAudio,
    model_name: v.modelName,
    model_type:
      v.modelType === VoiceModelType.BIG
        ? "big"
        : v.modelType === VoiceModelType.SMALL
          ? "small"
          : null,
    state: v.state === VoiceState.INIT ? "init" : v.state === VoiceState.CLONED ? "cloned" : null,
    is_system_voice: v.isSystemVoice,
    create_time: Number(v.createTime),
    update_time: Number(v.updateTime),
    available_training_times: v.availableTrainingTimes,
    support_emotions: v.supportEmotions.map((e) => ({
      emotion: e.emotion,
      display_name: e.displayName,
      emotion_scale_interval: { min: e.scaleMin, max: e.scaleMax, default: e.scaleDefault },
    })),
  };
}
