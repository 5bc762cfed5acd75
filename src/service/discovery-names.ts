import { type DiscoveryKind, dynamicPrefixes } from "../config/index.js";

/** The `id` name of a discovered item: `bot:{id}`, `workflow:{id}` or `chatflow:{id}`. */
export function idName(kind: DiscoveryKind, id: string): string {
  return `${kind}:${id}`;
}

/** Longest model name, in characters, as a configured one (`channels[].models[].name`). */
const maxLength = 128;
/** Longest description kept, in characters. Coze allows 500 for a bot. */
const maxDescription = 1000;

/**
 * The `name` naming of a Coze name: control and invisible formatting characters and `*` are
 * dropped (a name must not hide characters or look like an allow-list prefix), the ends trimmed,
 * every run of spaces made one `-`, and the result cut to 128 characters. `"Weather tool"`
 * becomes `Weather-tool`; letters of every script are kept.
 *
 * @returns `undefined` when nothing is left, or when the result starts like a dynamic name
 *   (`workflow:`, `bot:`…): those mean something else, and the item keeps its `id` name.
 */
export function nameOf(cozeName: string): string | undefined {
  const cleaned = cozeName
    .normalize("NFC")
    .replace(/\s+/gu, " ")
    .replace(/[\p{Cc}\p{Cf}\p{Co}\p{Cs}*]/gu, "")
    .trim()
    .replace(/ +/g, "-");
  const name = Array.from(cleaned).slice(0, maxLength).join("");
  if (name === "" || dynamicPrefixes.some((d) => name.startsWith(d.prefix))) return undefined;
  return name;
}

/** A display text from Coze, without control characters, cut to `max` characters. */
export function displayText(text: string, max = maxDescription): string {
  const clean = text.replace(/[\p{Cc}\p{Cs}]/gu, (c) => (c === "\n" ? "\n" : " ")).trim();
  const chars = Array.from(clean);
  return chars.length > max ? `${chars.slice(0, max - 1).join("")}…` : clean;
}
