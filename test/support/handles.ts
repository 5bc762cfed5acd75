/** An id the gateway hands out: Coze's id (an interrupt's has two parts) and the key's tag. */
export const handed = /^\d+(\/\d+)?\.[A-Za-z0-9_-]{22}$/;

/** Coze's own id inside an id the gateway handed out (what the emulator's records are keyed by). */
export function cozeIdOf(handle: string): string {
  const dot = handle.indexOf(".");
  if (dot < 0) throw new Error(`not an id the gateway handed out: ${handle}`);
  return handle.slice(0, dot);
}
