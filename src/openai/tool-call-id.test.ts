import { describe, expect, it } from "vitest";
import { decodeToolCallId, encodeToolCallId } from "./tool-call-id.js";

describe("tool call ids", () => {
  const ref = { conversationId: "7436343107664066623", chatId: "7433390907", toolCallId: "a/b+c=" };

  it("round-trips the conversation, chat and Coze tool call id in a call_ id of base64url", () => {
    const id = encodeToolCallId(ref);
    expect(id).toMatch(/^call_[A-Za-z0-9_-]+$/);
    expect(Buffer.from(id.slice(5), "base64url").toString()).toBe(
      JSON.stringify([ref.conversationId, ref.chatId, ref.toolCallId]),
    );
    expect(decodeToolCallId(id)).toEqual(ref);
  });

  it("refuses ids it did not make, without throwing", () => {
    const b64 = (v: unknown) => `call_${Buffer.from(JSON.stringify(v)).toString("base64url")}`;
    for (const id of [
      "",
      "call_",
      "call_abc",
      "toolu_123",
      `call_${"A".repeat(2000)}`,
      "call_!!!",
      b64(["1", "2"]),
      b64(["1", "2", ""]),
      b64(["1", 2, "3"]),
      b64({ a: 1 }),
      `call_${Buffer.from("[not json").toString("base64url")}`,
    ]) {
      expect(decodeToolCallId(id)).toBeUndefined();
    }
  });
});
