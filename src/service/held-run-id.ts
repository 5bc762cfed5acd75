/**
 * Whether `id` has the form of a held run's id (see `HeldRun.id` in `held-runs.ts`): `0` and
 * 18 digits, which no Coze id has.
 */
export function isHeldRunId(id: string): boolean {
  return id.length === 19 && id[0] === "0" && /^\d+$/.test(id);
}

/**
 * Whether a handed-out execute id names a run the gateway holds itself: its id part (before the
 * tag, or all of a raw id) has a held run's form. The form alone says where the run lives, for
 * the words of an error about it; it proves nothing about who may read the run.
 */
export function isHeldRunHandle(handed: string): boolean {
  const dot = handed.indexOf(".");
  return isHeldRunId(dot < 0 ? handed : handed.slice(0, dot));
}

/** Where a held run goes on, said to its caller when the gateway stopped waiting for it. */
export const heldGoesOnText =
  "the workflow run goes on in the gateway, which holds it (it is lost if the gateway stops)";

/** What becomes of a held run when the gateway shuts down. */
export const heldLostText =
  "the workflow run was held by this gateway process and is lost at shutdown: start it again";
