import { hash } from "node:crypto";
import { dirname, resolve } from "node:path";
import { ConfigError } from "./config-error.js";
import type { ConfigEnv, GatewayConfig } from "./gateway-config.js";
import { parseWithContext } from "./parse-config.js";
import { describeFsError, modeText, readBounded } from "./secret-ref.js";

const maxConfigBytes = 4 << 20;

/**
 * Reads, parses and validates the config file at `path` (YAML, or JSON for `.json`). `file:`
 * references are relative to the file's directory; `env` supplies `env:` references and the
 * `COZE_GATEWAY_HOST`, `COZE_GATEWAY_PORT` and `COZE_GATEWAY_CORS_ORIGINS` overrides (pass
 * `process.env` from `main.ts`; nothing here reads it).
 *
 * Adds a warning when the file holds a secret inline (an API key, private key or settings JSON)
 * and is readable by group or others (`mode & 0o077`), naming the file and its mode.
 *
 * The config's `sha256` is the SHA-256 of the file's bytes (what `sha256sum` prints), so logs
 * and metrics can name the config in force without showing any of it.
 *
 * @throws ConfigError when the file cannot be read, is larger than 4 MiB, or is invalid; the
 *   message names the file and field and never holds a secret. An invalid file's error lists
 *   every problem found (`all`) and carries the file's `sha256`.
 */
export async function loadConfig(path: string, env: ConfigEnv): Promise<GatewayConfig> {
  let file: { data: Buffer; mode: number };
  try {
    file = await readBounded(path, maxConfigBytes);
  } catch (err) {
    throw new ConfigError({
      file: path,
      field: "",
      problem: `cannot be read: ${describeFsError(err)}`,
      cause: err,
    });
  }
  if (file.data.length > maxConfigBytes) {
    throw new ConfigError({ file: path, field: "", problem: "is larger than 4 MiB" });
  }
  const sha256 = hash("sha256", file.data, "hex");
  const text = file.data.toString("utf8").replace(/^\uFEFF/, "");
  let parsed: Awaited<ReturnType<typeof parseWithContext>>;
  try {
    parsed = await parseWithContext(text, { file: path, baseDir: dirname(resolve(path)), env });
  } catch (err) {
    throw err instanceof ConfigError ? ConfigError.of([err], sha256) : err;
  }
  const { config, inlineSecret } = parsed;
  config.sha256 = sha256;
  // Windows has no such mode bits; its ACLs are another matter.
  if (inlineSecret && (file.mode & 0o077) !== 0 && process.platform !== "win32") {
    const mode = modeText(file.mode);
    config.warnings.unshift(
      `${path}: holds secrets inline and is readable by group or others (mode ${mode}); chmod 600 it, or move the secrets to env: or file: references`,
    );
  }
  return config;
}
