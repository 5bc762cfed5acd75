import type { KeyObject } from "node:crypto";
import {
  absent,
  child,
  digitsId,
  fail,
  isReference,
  kindOf,
  type LoadContext,
  type Place,
  text,
  token,
} from "./fields.js";
import { parsePrivateKey } from "./private-key.js";
import { fileHint, fromLabel, type ResolvedSecret, resolveSecret } from "./secret-ref.js";

/** The fields of the old new-api channel settings JSON, and ours besides. */
const settingsKeys = [
  "client_id",
  "public_key_id",
  "private_key",
  "space_id",
  "default_bot_id",
  "account_id",
  "enterprise_id",
  "personal_access_token",
];

/** The fields that belong to an OAuth app, which a personal access token replaces. */
const appKeys = ["client_id", "public_key_id", "private_key", "account_id", "enterprise_id"];

/** A channel's credentials block, checked: an OAuth JWT app or a personal access token. */
export type ChannelCredentials = AppCredentials | PatCredentials;

/** The ids both kinds of credentials may carry. */
interface CommonCredentials {
  /** `space_id`, when set and not empty. */
  spaceId: string | undefined;
  /** `default_bot_id`, when set and not empty. */
  defaultBotId: string | undefined;
}

/** An OAuth JWT (service) app: the old new-api "Coze JWT" channel settings. */
export interface AppCredentials extends CommonCredentials {
  kind: "jwt";
  /** The OAuth app id. */
  clientId: string;
  /** The public key fingerprint registered with the app. */
  publicKeyId: string;
  /** The RSA private key, parsed and checked once here (see `parsePrivateKey`). A secret. */
  privateKey: KeyObject;
  /** `account_id`: buy cross-account tokens for this account (coze-api.md §12.1). */
  accountId: string | undefined;
  /** `enterprise_id`: buy enterprise privileged app tokens (coze-api.md §12.1). */
  enterpriseId: string | undefined;
}

/** A personal access token: new-api's plain "Coze" channel (coze-api.md §11). */
export interface PatCredentials extends CommonCredentials {
  kind: "pat";
  /** The token as Coze's console made it, surrounding whitespace removed. A secret. */
  token: string;
}

const expected =
  "the channel settings (client_id, public_key_id, private_key, space_id, default_bot_id; or " +
  "personal_access_token instead of the OAuth app) as a mapping, as their JSON text, env:NAME " +
  "or file:PATH";

const patRule =
  "a personal access token: printable characters without spaces, at most 4096, inline, env:NAME or file:PATH";

/**
 * Reads a channel's `credentials`: the old new-api "Coze JWT" channel settings, accepted
 * unchanged, optionally with `account_id` or `enterprise_id` for the cross-account and
 * enterprise token endpoints; or `personal_access_token` (plus the optional ids) instead of the
 * OAuth app, for what new-api called a plain "Coze" channel. They may be a mapping, the settings
 * JSON as a string (as pasted from the old channel), or an `env:`/`file:` reference to that
 * JSON. `private_key` and `personal_access_token` may themselves be inline, `env:NAME` or
 * `file:PATH`. Empty `space_id`, `default_bot_id` and `account_id` count as unset, as ids did in
 * the old channel; unknown keys are ignored with a warning, as the old channel ignored them.
 *
 * @throws ConfigError when the JSON does not parse, a required field is missing, an app field
 *   comes with a personal access token, `account_id` comes with `enterprise_id`, an id is not a
 *   digit string, or the private key is not a usable RSA key. Never quotes the settings.
 */
export async function readCredentials(
  ctx: LoadContext,
  place: Place,
  value: unknown,
): Promise<ChannelCredentials> {
  let settings = value;
  let inConfigText = true;
  if (absent(value)) fail(ctx, place, `is missing; expected ${expected}`);
  if (typeof value === "string") {
    let json: ResolvedSecret = { text: value, source: "inline", label: "the value" };
    if (isReference(value)) {
      json = await resolveSecret(ctx, place, value, { expected, secret: true, inConfigText });
      inConfigText = false;
    } else {
      ctx.inlineSecret = true;
    }
    settings = parseSettingsJson(ctx, place, json);
  }
  if (typeof settings !== "object" || settings === null || Array.isArray(settings)) {
    fail(ctx, place, `must be ${expected}, not ${kindOf(settings)}`);
  }
  const map = settings as Record<string, unknown>;
  for (const key of Object.keys(map)) {
    if (!settingsKeys.includes(key)) {
      const shown = key.length > 64 ? `${key.slice(0, 61)}...` : key;
      ctx.warnings.push(
        `${ctx.file}: ${child(place, shown).path}: is not a known settings field and is ignored; known: ${settingsKeys.join(", ")}`,
      );
    }
  }
  const spaceId = digitsId(ctx, child(place, "space_id"), map.space_id);
  const defaultBotId = digitsId(ctx, child(place, "default_bot_id"), map.default_bot_id);
  if (!absent(map.personal_access_token)) {
    const appKey = appKeys.find((k) => !absent(map[k]));
    if (appKey !== undefined) {
      fail(
        ctx,
        child(place, appKey),
        "cannot be combined with personal_access_token: a channel authenticates with a personal access token or with an OAuth app, not both",
      );
    }
    const tokenPlace = child(place, "personal_access_token");
    const resolved = await resolveSecret(ctx, tokenPlace, map.personal_access_token, {
      expected: patRule,
      secret: true,
      inConfigText,
    });
    const pat = resolved.text.trim();
    if (!/^[\x21-\x7e]{1,4096}$/.test(pat)) {
      fail(ctx, tokenPlace, `must be ${patRule}${fromLabel(resolved)}`);
    }
    return { kind: "pat", token: pat, spaceId, defaultBotId };
  }
  const noApp = appKeys.slice(0, 3).every((k) => absent(map[k]));
  const clientId = token(
    ctx,
    child(place, "client_id"),
    map.client_id,
    noApp
      ? "the OAuth app id (or personal_access_token instead of the OAuth app)"
      : "the OAuth app id",
  );
  const publicKeyId = token(
    ctx,
    child(place, "public_key_id"),
    map.public_key_id,
    "the public key id (fingerprint) of the OAuth app",
  );
  const keyPlace = child(place, "private_key");
  const pem = await resolveSecret(ctx, keyPlace, map.private_key, {
    expected: "an RSA private key in PEM form, env:NAME or file:PATH",
    secret: true,
    inConfigText,
  });
  const privateKey = checkPrivateKey(ctx, keyPlace, pem);
  const accountId = digitsId(ctx, child(place, "account_id"), map.account_id);
  const enterpriseId = readEnterpriseId(ctx, child(place, "enterprise_id"), map.enterprise_id);
  if (accountId !== undefined && enterpriseId !== undefined) {
    fail(
      ctx,
      child(place, "enterprise_id"),
      "cannot be combined with account_id: a channel buys its tokens for one account or one enterprise",
    );
  }
  return {
    kind: "jwt",
    clientId,
    publicKeyId,
    privateKey,
    accountId,
    enterpriseId,
    spaceId,
    defaultBotId,
  };
}

const enterpriseRule =
  "an enterprise id: 1 to 128 letters, digits, _, . and -, e.g. volcano_210195";

function readEnterpriseId(ctx: LoadContext, place: Place, value: unknown): string | undefined {
  const id = text(ctx, place, value, enterpriseRule);
  if (id === undefined || id === "") return undefined;
  if (!/^[A-Za-z0-9_.-]{1,128}$/.test(id)) fail(ctx, place, `must be ${enterpriseRule}`);
  return id;
}

function parseSettingsJson(ctx: LoadContext, place: Place, json: ResolvedSecret): unknown {
  try {
    return JSON.parse(json.text);
  } catch (err) {
    // V8's message quotes the text around the error, which here holds the private key: keep
    // only the position.
    const where = jsonErrorPosition(json.text, err);
    const what =
      json.source === "inline"
        ? "is not valid settings JSON"
        : `${json.label} does not hold valid settings JSON`;
    fail(
      ctx,
      place,
      `${what}${where === undefined ? "" : ` (error at ${where})`}; expected ${expected}`,
    );
  }
}

/** `line 3, column 7` of a JSON.parse error, from the offset V8 reports; never any text. */
export function jsonErrorPosition(text: string, err: unknown): string | undefined {
  const message = err instanceof Error ? err.message : "";
  const match = /at position (\d+)/.exec(message);
  if (match !== null) return linePosition(text, Number(match[1]));
  return /end of JSON input/.test(message) ? linePosition(text, text.length) : undefined;
}

/** `line L, column C` (both from 1) of a character offset into `text`. */
export function linePosition(text: string, offset: number): string {
  const before = text.slice(0, offset);
  const line = before.split("\n").length;
  const column = offset - (before.lastIndexOf("\n") + 1) + 1;
  return `line ${line}, column ${column}`;
}

function checkPrivateKey(ctx: LoadContext, place: Place, pem: ResolvedSecret): KeyObject {
  try {
    // Parsed once, here: whatever form the settings held (PKCS#1, `\n` escapes, CRLF), the token
    // cache gets the key object and never reads PEM again.
    return parsePrivateKey(pem.text);
  } catch (err) {
    // parsePrivateKey's messages are ours and never quote the key ("private key is encrypted;
    // …"); drop their subject, which the field already names.
    const reason = err instanceof TypeError ? err.message.replace(/^private key /, "") : "";
    const notPem = reason === "" || reason.startsWith("is not PEM");
    const problem = notPem
      ? reason.replace(/^(is not PEM)?/, "is not an RSA private key in PEM form") + fileHint(pem)
      : reason;
    fail(ctx, place, `${problem}${fromLabel(pem)}`);
  }
}
