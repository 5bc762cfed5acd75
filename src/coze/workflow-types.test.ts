import { describe, expect, it } from "vitest";
import { parseInterrupt } from "./workflow-types.js";

// coze-api.md §14.2 / §14.3: an interrupt's `data` is plain text or the JSON text
// {"content_type": …, "content": …}; the caller is shown the question, never the JSON.
const eventId = "75694987037/2691977632";
const read = (data: string, extra: Record<string, unknown> = {}) =>
  parseInterrupt({ event_id: eventId, type: 5, data, ...extra });

describe("an interrupt's question", () => {
  it("is plain-text data as it is", () => {
    expect(read("Which city?")).toMatchObject({
      question: "Which city?",
      data: "Which city?",
      contentType: undefined,
      content: undefined,
    });
  });

  it("is the content of the JSON form when that content is text", () => {
    const data = JSON.stringify({ content_type: "text", content: "Which city?" });
    expect(read(data)).toMatchObject({
      question: "Which city?",
      data,
      contentType: "text",
      content: "Which city?",
    });
  });

  it("asks for the fields of the §14.3 example, with its content structured", () => {
    // Byte for byte the docs example's data (docs:resume_workflow.md:82-102).
    const data =
      '{"content_type":"text","content":"[{\\"type\\":\\"string\\",\\"name\\":\\"img\\",\\"required\\":true,\\"assistType\\":2}]"}';
    const i = read(data, { required_parameters: { img: { required: true, type: "image" } } });
    expect(i).toMatchObject({
      question: "Please provide: img (image)",
      contentType: "text",
      content: [{ type: "string", name: "img", required: true, assistType: 2 }],
      requiredParameters: { img: { required: true, type: "image" } },
    });
    // Without required_parameters, the field list says what to ask for.
    expect(read(data)?.question).toBe("Please provide: img (string)");
  });

  it("says which fields are optional, and asks from required_parameters when data is empty", () => {
    const i = read("", {
      required_parameters: {
        city: { type: "string", required: true },
        date: { type: "string", required: false },
      },
    });
    expect(i?.question).toBe("Please provide: city (string), date (string, optional)");
    expect(read("")?.question).toBe("");
  });

  it("takes the question of an options object, and never shows JSON it cannot read as one", () => {
    const options = JSON.stringify({
      content_type: "option",
      content: JSON.stringify({ question: "Pick one", options: [{ name: "A" }, { name: "B" }] }),
    });
    expect(read(options)).toMatchObject({
      question: "Pick one",
      contentType: "option",
      content: { question: "Pick one", options: [{ name: "A" }, { name: "B" }] },
    });
    // JSON content without a question or fields: its text, since nothing better is known.
    const odd = JSON.stringify({ content_type: "text", content: { a: 1 } });
    expect(read(odd)).toMatchObject({ question: '{"a":1}', content: { a: 1 } });
    // A number-like content stays text: only objects and arrays are structured.
    expect(read(JSON.stringify({ content_type: "text", content: "42" }))).toMatchObject({
      question: "42",
      content: "42",
    });
  });

  it("keeps text that only looks like JSON as text", () => {
    for (const data of ["{not json", '{"a":1}', "[1,2]", '"quoted"']) {
      expect(read(data), data).toMatchObject({ question: data, contentType: undefined });
    }
  });
});
