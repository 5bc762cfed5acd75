import { type Agent, request } from "node:http";

/** What one streamed answer looked like from the client. */
export interface StreamSample {
  /**
   * The Coze conversation id of the `X-Coze-Conversation-Id` header, without the tag the gateway
   * binds it to its key with (`{id}.{tag}`): the id the emulator host records streams under.
   */
  conversationId: string;
  status: number;
  /** hrtime (ns) when the request was sent. */
  sentAt: bigint;
  /** hrtime (ns) of the response's first byte (status line and headers, with the first events). */
  firstByteAt: bigint;
  /** Content chunks: their text and the hrtime (ns) of the read that delivered them. */
  texts: string[];
  arrivals: bigint[];
  /** Socket reads that delivered more than one content chunk (events held back and merged). */
  coalescedReads: number;
  /** Events whose `sequence_number` was not the one after the previous event's (Responses). */
  sequenceErrors: number;
  /**
   * The event types in order, a run of content events as one (Responses only): what the stream
   * was framed with around its text.
   */
  framing: string[];
  done: boolean;
}

/** What one SSE event (its text, without the blank line that ends it) tells the client. */
export interface ShapeEvent {
  /** Answer text the event carries ("" or absent when none). */
  text?: string;
  /** The event ends a successful stream (`[DONE]`, `response.completed`). */
  done?: boolean;
  /** The event's `type` (Responses). */
  type?: string;
  /** The event's `sequence_number` (Responses). */
  sequence?: number;
}

/** How one OpenAI surface asks for a streamed answer and frames it. */
export interface StreamShape {
  /** `chat` or `responses`. */
  name: string;
  /** The request path. */
  path: string;
  /** A streamed request for `model` with one user `text`. */
  body(model: string, text: string): Record<string, unknown>;
  /** Reads one event. */
  read(event: string): ShapeEvent;
  /** The event type of a content event, when the surface names its events. */
  contentType?: string;
  /** The framing a whole answer must have (see {@link StreamSample.framing}), when checked. */
  framing?: readonly string[];
}

/** Chat Completions: `data: {chunk}` events with `choices[0].delta.content`, then `data: [DONE]`. */
export const chatShape: StreamShape = {
  name: "chat",
  path: "/v1/chat/completions",
  body: (model, text) => ({ model, stream: true, messages: [{ role: "user", content: text }] }),
  read(event) {
    if (event === "data: [DONE]") return { done: true };
    if (!event.startsWith("data: {")) return {};
    const json = JSON.parse(event.slice(6)) as { choices?: { delta?: { content?: string } }[] };
    return { text: json.choices?.[0]?.delta?.content };
  },
};

/**
 * The Responses API: `event: <type>` and `data: {"type", "sequence_number", …}`; the text in
 * `response.output_text.delta` events, the end at `response.completed`.
 */
export const responsesShape: StreamShape = {
  name: "responses",
  path: "/v1/responses",
  body: (model, text) => ({ model, stream: true, input: text }),
  read(event) {
    const line = event.startsWith("data: ") ? 0 : event.indexOf("\ndata: ");
    // A comment such as `: keep-alive`.
    if (line === -1) return {};
    const json = JSON.parse(event.slice(line === 0 ? 6 : line + 7)) as {
      type: string;
      sequence_number: number;
      delta?: string;
    };
    return {
      type: json.type,
      sequence: json.sequence_number,
      text: json.type === "response.output_text.delta" ? json.delta : undefined,
      done: json.type === "response.completed",
    };
  },
  contentType: "response.output_text.delta",
  framing: [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
  ],
};

/**
 * Streams one answer (`stream: true`) in `shape` (Chat Completions unless told) and notes when
 * each content chunk arrived. `onFirstContent` fires when the first content chunk is in;
 * `signal` aborts the request (destroying the socket: the client "goes away").
 */
export function streamCompletion(options: {
  url: string;
  key: string;
  body: Record<string, unknown>;
  agent: Agent;
  shape?: StreamShape;
  signal?: AbortSignal;
  onFirstContent?: (conversationId: string) => void;
}): Promise<StreamSample> {
  const shape = options.shape ?? chatShape;
  return new Promise((resolve, reject) => {
    const sentAt = process.hrtime.bigint();
    const req = request(
      `${options.url}${shape.path}`,
      {
        method: "POST",
        agent: options.agent,
        signal: options.signal,
        headers: {
          "content-type": "application/json",
          authorization: `Bearer ${options.key}`,
        },
      },
      (res) => {
        const sample: StreamSample = {
          conversationId: String(res.headers["x-coze-conversation-id"] ?? "").split(".")[0] ?? "",
          status: res.statusCode ?? 0,
          sentAt,
          firstByteAt: process.hrtime.bigint(),
          texts: [],
          arrivals: [],
          coalescedReads: 0,
          sequenceErrors: 0,
          framing: [],
          done: false,
        };
        let nextSequence = 0;
        res.setEncoding("utf8");
        let pending = "";
        res.on("data", (chunk: string) => {
          const at = process.hrtime.bigint();
          const text = pending + chunk;
          let pos = 0;
          let contents = 0;
          for (let end = text.indexOf("\n\n"); end !== -1; end = text.indexOf("\n\n", pos)) {
            const e = shape.read(text.slice(pos, end));
            pos = end + 2;
            if (e.sequence !== undefined) {
              if (e.sequence !== nextSequence) sample.sequenceErrors++;
              nextSequence = e.sequence + 1;
            }
            if (e.type !== undefined && !(e.type === shape.contentType && lastIs(sample, e.type))) {
              sample.framing.push(e.type);
            }
            if (e.done) sample.done = true;
            if (typeof e.text !== "string" || e.text === "") continue;
            if (sample.texts.length === 0) options.onFirstContent?.(sample.conversationId);
            sample.texts.push(e.text);
            sample.arrivals.push(at);
            contents++;
          }
          pending = text.slice(pos);
          if (contents > 1) sample.coalescedReads++;
        });
        res.once("end", () => resolve(sample));
        res.once("error", reject);
        res.once("aborted", () => resolve(sample));
      },
    );
    req.once("error", reject);
    req.end(JSON.stringify(options.body));
  });
}

const lastIs = (s: StreamSample, type: string) => s.framing[s.framing.length - 1] === type;
