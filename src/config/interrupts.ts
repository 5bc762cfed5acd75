import { child, integer, type LoadContext, root, section } from "./fields.js";
import type { InterruptsConfig } from "./gateway-config.js";

/** Defaults of the `interrupts` section. */
export const interruptDefaults = {
  /** A day: long enough for a person to come back to a question, short of Coze's run limits. */
  ttlSeconds: 86_400,
} as const;

/** The longest `interrupts.ttl_seconds`: a week. */
const maxTtlSeconds = 604_800;

/**
 * Reads the optional `interrupts` section: `ttl_seconds`, how long a workflow's question (or a
 * chatflow's conversation) waits for a reply that resumes it, 0 to turn replies off.
 *
 * @throws ConfigError for an unknown field or a number out of range.
 */
export function readInterrupts(ctx: LoadContext, value: unknown): InterruptsConfig {
  const place = child(root, "interrupts");
  const map = section(ctx, place, value, ["ttl_seconds"]);
  const ttlSeconds = integer(ctx, child(place, "ttl_seconds"), map.ttl_seconds, {
    min: 0,
    max: maxTtlSeconds,
    fallback: interruptDefaults.ttlSeconds,
  });
  return { ttlSeconds };
}
