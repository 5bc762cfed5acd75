/**
 * The `msg` the emulator sends with a Coze error code. Quoted where coze-api.md quotes the
 * wire text (6003 §14.1, 4013 and 4028 §17.2); elsewhere the reference gives the meaning only,
 * and the text is ours, saying that meaning.
 */
const texts: ReadonlyMap<number, string> = new Map([
  [4008, "The bot's daily usage limit has been reached. Try again tomorrow."],
  [4009, "Too many users: the system request limit has been reached. Try again later."],
  [4010, "The prompt tokens exceed the model's limit."],
  [4011, "Insufficient Coze Token balance. Recharge to continue."],
  [4013, "Model's request rate limit exceeded"],
  [4019, "Insufficient balance of the Volcengine pay-as-you-go bot, or the account is in arrears."],
  [4020, "The RPM peak exceeds the purchased quota. Try again later."],
  [4022, "The Ark model service account is in arrears."],
  [4027, "Overdue payment."],
  [4028, "Insufficient coze credits balance, please wait for the quota refresh or upgrade"],
  [4102, "The request was blocked by risk control. Try again later."],
  [4314, "The execution record was not found."],
  [4315, "The execution has already finished and cannot be resumed."],
  [5000, "internal error"],
  [
    6003,
    "Workflow execution with is_async=true is a premium feature available only to Coze Professional users",
  ],
  [6006, "The workflow's code node timed out."],
  [788788103, "The Volcengine account balance is owed."],
]);

/** The `msg` for Coze error `code`. */
export function cozeErrorText(code: number): string {
  return texts.get(code) ?? `Coze error ${code}`;
}
