import { extname } from "node:path";
import { parseDocument } from "yaml";
import { checkAllowLists, readApiKeys } from "./api-keys.js";
import { audioModelNames } from "./audio-models.js";
import { readChannels } from "./channels.js";
import { ConfigError } from "./config-error.js";
import { jsonErrorPosition, linePosition } from "./credentials.js";
import {
  asMapping,
  attempt,
  attemptAsync,
  type LoadContext,
  onlyKnownKeys,
  root,
} from "./fields.js";
import type { ConfigEnv, GatewayConfig } from "./gateway-config.js";
import { readInterrupts } from "./interrupts.js";
import { dynamicPrefixes, resolveModel } from "./resolve-model.js";
import { readServerSecret } from "./server-secret.js";
import { readServer } from "./server-section.js";
import { readState } from "./state.js";
import { readTracing } from "./tracing.js";

/** Options of {@link parseConfig} and {@link validateConfig}. */
export interface ParseConfigOptions {
  /**
   * The file the text came from, as it should appear in messages and `source`; its extension
   * picks the format (`.json` is JSON, anything else YAML). May be a label such as `demo`.
   */
  file: string;
  /** The directory `file:` references are relative to. */
  baseDir: string;
  /** The environment: `env:` references and the `COZE_GATEWAY_*` overrides read it. */
  env: ConfigEnv;
}

const topKeys = [
  "server",
  "server_secret",
  "api_keys",
  "channels",
  "tracing",
  "state",
  "interrupts",
];
const topRule =
  "a mapping with server_secret, api_keys and channels (and optionally server, tracing, state and interrupts)";

/**
 * Parses and validates a config file's text (YAML, or JSON when `options.file` ends in `.json`).
 * Reads the `file:` references it holds.
 *
 * @throws ConfigError on a syntax error (with its line and column, never an excerpt), else on
 *   invalid fields (see {@link validateConfig}).
 */
export async function parseConfig(
  text: string,
  options: ParseConfigOptions,
): Promise<GatewayConfig> {
  return (await parseWithContext(text, options)).config;
}

/**
 * Validates an already parsed config value (the file's data model, snake_case keys) into a
 * {@link GatewayConfig}, resolving `env:` and `file:` references. For configs built in code,
 * such as demo mode.
 *
 * @throws ConfigError naming file, channel and field of the first invalid field, with every
 *   problem found in `all` (the reading goes on past a bad field, entry or section).
 */
export async function validateConfig(
  value: unknown,
  options: ParseConfigOptions,
): Promise<GatewayConfig> {
  return (await validateWithContext(value, options)).config;
}

/** {@link parseConfig}, also telling whether the text itself holds a secret. @internal */
export async function parseWithContext(
  text: string,
  options: ParseConfigOptions,
): Promise<{ config: GatewayConfig; inlineSecret: boolean }> {
  const value =
    extname(options.file).toLowerCase() === ".json"
      ? parseJson(text, options.file)
      : parseYaml(text, options.file);
  return validateWithContext(value, options);
}

async function validateWithContext(
  value: unknown,
  options: ParseConfigOptions,
): Promise<{ config: GatewayConfig; inlineSecret: boolean }> {
  const ctx: LoadContext = {
    file: options.file,
    baseDir: options.baseDir,
    env: options.env,
    warnings: [],
    errors: [],
    inlineSecret: false,
  };
  const top = asMapping(ctx, root, value, topRule);
  onlyKnownKeys(ctx, root, top, topKeys);
  // Each section is read even when one before it failed: every problem is reported at once.
  const server = await attemptAsync(ctx, undefined, () => readServer(ctx, top.server));
  const serverSecret = await attemptAsync(ctx, undefined, () =>
    readServerSecret(ctx, top.server_secret),
  );
  const apiKeys = await attemptAsync(ctx, undefined, () => readApiKeys(ctx, top.api_keys));
  const read = await attemptAsync(ctx, undefined, () => readChannels(ctx, top.channels));
  const tracing = await attemptAsync(ctx, undefined, () => readTracing(ctx, top.tracing));
  const state = await attemptAsync(ctx, undefined, () => readState(ctx, top.state));
  const interrupts = attempt(ctx, undefined, () => readInterrupts(ctx, top.interrupts));
  if (
    ctx.errors.length > 0 ||
    server === undefined ||
    serverSecret === undefined ||
    apiKeys === undefined ||
    read === undefined
  ) {
    throw ConfigError.of(ctx.errors);
  }
  const { channels, models } = read;
  const config: GatewayConfig = {
    source: options.file,
    server,
    serverSecret,
    apiKeys,
    channels,
    models,
    tracing,
    state,
    interrupts,
    warnings: ctx.warnings,
  };
  // A channel that names discovered models after Coze's names serves names no one knows yet:
  // an allow-list entry cannot be told to match nothing.
  const namesFromCoze = channels.some((c) => c.discovery.enabled && c.discovery.naming === "name");
  if (!namesFromCoze) {
    checkAllowLists(
      ctx,
      apiKeys,
      [...models.map((m) => m.name), ...audioModelNames],
      (name) => resolveModel(config, name) !== undefined || audioModelNames.includes(name),
      dynamicPrefixes.map((d) => d.prefix),
    );
  }
  return { config, inlineSecret: ctx.inlineSecret };
}

function parseJson(text: string, file: string): unknown {
  const clean = text.replace(/^\uFEFF/, "");
  try {
    return JSON.parse(clean);
  } catch (err) {
    // V8's message quotes the text near the error, and the text holds secrets: position only.
    const where = jsonErrorPosition(clean, err);
    throw new ConfigError({ file, field: where ?? "", problem: "is not valid JSON" });
  }
}

// What a YAML error code means. The library's own messages can quote the source (a bad escape,
// an unexpected token), which may be a secret: only these words and a position are shown.
const yamlProblems: Partial<Record<string, string>> = {
  DUPLICATE_KEY: "a key appears twice in the same mapping",
  BAD_INDENT: "bad indentation",
  TAB_AS_INDENT: "a tab is used for indentation; use spaces",
  MISSING_CHAR: "a quote, bracket, comma or colon is missing",
  MULTILINE_IMPLICIT_KEY: "a key spans several lines (a missing colon or quote?)",
  BLOCK_AS_IMPLICIT_KEY: "a nested block cannot be a key",
  BAD_DQ_ESCAPE: "a double-quoted string holds an invalid escape sequence",
  BAD_SCALAR_START: "a plain value cannot start with this character; quote it",
  MULTIPLE_DOCS: "the file holds several YAML documents; keep one",
  UNEXPECTED_TOKEN: "unexpected text",
  BAD_ALIAS: "an alias refers to an unknown anchor",
  TAG_RESOLVE_FAILED: "an unknown tag",
  RESOURCE_EXHAUSTION: "too many alias expansions",
};

function parseYaml(text: string, file: string): unknown {
  const doc = parseDocument(text, {
    prettyErrors: false,
    uniqueKeys: true,
    // `<<: *shared` lets channels share sections; a YAML 1.1 feature the library supports.
    merge: true,
  });
  const error = doc.errors[0];
  if (error !== undefined) {
    const problem = yamlProblems[error.code] ?? `syntax error (${error.code})`;
    throw new ConfigError({
      file,
      field: linePosition(text, error.pos[0]),
      problem: `is not valid YAML: ${problem}`,
    });
  }
  try {
    return doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    // Alias expansion limits throw here; their messages quote nothing.
    throw new ConfigError({
      file,
      field: "",
      problem: "is not valid YAML: too many alias expansions",
      cause: err,
    });
  }
}
