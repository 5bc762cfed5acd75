import { describe, expect, it } from "vitest";
import { decodeItemId, decodeResponseId, encodeResponseId, itemIdOf } from "./response-id.js";

describe("response ids", () => {
  const ref = { conversationId: "7436343107664066623.aaaa", chatId: "7433390907.bbbb" };

  it("round-trips the conversation and chat in a resp_ id, and in its output items' ids", () => {
    const id = encodeResponseId(ref);
    expect(id).toMatch(/^resp_[A-Za-z0-9_-]+$/);
    expect(decodeResponseId(id)).toEqual(ref);
    for (const kind of ["msg", "rs", "fc"] as const) {
      const item = itemIdOf(kind, id, 12);
      expect(item.startsWith(`${kind}_`)).toBe(true);
      expect(decodeItemId(item)).toEqual(ref);
    }
    expect(decodeResponseId(encodeResponseId({ conversationId: "", chatId: "" }))).toEqual({
      conversationId: "",
      chatId: "",
    });
  });

  it("gives two responses of one chat different ids", () => {
    expect(encodeResponseId(ref)).not.toBe(encodeResponseId(ref));
  });

  it("refuses ids it did not make, without throwing", () => {
    const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
    for (const id of [
      "",
      "resp_",
      "resp_!!!",
      `resp_${"A".repeat(2000)}`,
      `resp_${b64(["1", "2"])}`,
      `resp_${b64(["1", "2", ""])}`,
      `resp_${b64(["1", "", "n"])}`,
      `resp_${b64([1, "2", "n"])}`,
      `resp_${Buffer.from("[not json").toString("base64url")}`,
      `call_${b64(["1", "2", "n"])}`,
    ]) {
      expect(decodeResponseId(id)).toBeUndefined();
    }
    const good = b64(["1", "2", "n"]);
    for (const id of [`msg_${good}`, `msg_${good}.x`, `xx_${good}.0`, `resp_${good}.0`]) {
      expect(decodeItemId(id)).toBeUndefined();
    }
    expect(decodeItemId(`msg_${good}.0`)).toEqual({ conversationId: "1", chatId: "2" });
  });
});
