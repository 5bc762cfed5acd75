// A personal access token through the HTTP layer (coze-api.md §11.3): every code the reference
// gives for a refused token, in any status, ends the call at once with an error that names the
// channel and never the token.
import { afterEach, describe, expect, it } from "vitest";
import { json, startScriptedServer } from "../../test/support/scripted-server.js";
import { CozeError } from "./errors.js";
import { createCozeHttp } from "./http.js";
import { createPatTokens } from "./pat-tokens.js";
import { createPools, type Pools } from "./pools.js";

const pat = `pat_${"q".repeat(64)}`;
let pools: Pools | undefined;
let server: Awaited<ReturnType<typeof startScriptedServer>> | undefined;

afterEach(async () => {
  await pools?.destroy();
  await server?.close();
});

async function call(...answers: Parameters<typeof startScriptedServer>) {
  server = await startScriptedServer(...answers);
  pools = createPools();
  const http = createCozeHttp({
    baseUrl: server.url,
    tokens: createPatTokens({ token: pat, label: "channel coze-pat" }),
    pools,
  });
  return http.json({ step: "workflow.history", method: "GET", path: "/v1/x" });
}

describe("a personal access token", () => {
  it("is sent as the bearer, unchanged", async () => {
    await call(json(200, { code: 0, msg: "", data: {} }));
    expect(server?.seen[0]?.headers.authorization).toBe(`Bearer ${pat}`);
  });

  it.each([
    [401, 4100, "authentication"],
    [200, 4100, "authentication"],
    [200, 700012006, "authentication"],
    [401, 4101, "permission"],
    [200, 4101, "permission"],
  ] as const)(
    "is refused once (HTTP %i, code %i): %s, naming the channel",
    async (status, code, kind) => {
      const err = await call(
        json(status, { code, msg: `token ${pat} is bad`, detail: { logid: "L1" } }),
        json(200, { code: 0, msg: "", data: {} }),
      ).catch((e: unknown) => e);
      expect(server?.seen).toHaveLength(1); // nothing to refresh: not sent again
      expect(err).toBeInstanceOf(CozeError);
      const error = err as CozeError;
      expect(error).toMatchObject({
        code: kind,
        step: "workflow.history",
        cozeCode: code,
        logId: "L1",
      });
      expect(error.hint).toMatch(/^channel coze-pat: Coze refused its personal access token/);
      expect(error.hint).toContain(
        kind === "permission"
          ? "lacks the permission or the workspace"
          : "unknown, expired or revoked",
      );
      for (const text of [error.message, error.hint ?? ""]) expect(text).not.toContain(pat);
    },
  );

  it("refuses a token that would break the header, and an empty label", () => {
    for (const token of ["", "pat_a b", "pat_a\r\nx: y", "pat_\u00e9"]) {
      expect(() => createPatTokens({ token, label: "channel x" })).toThrow(
        "personal access token must be printable ASCII without spaces",
      );
    }
    expect(() => createPatTokens({ token: pat, label: "" })).toThrow("label must be non-empty");
  });
});
