/** Options for {@link ConfigError}. */
export interface ConfigErrorOptions {
  /** The config file as given (or a label such as `demo`). */
  file: string;
  /**
   * Where in the file, e.g. `channels[cn-main].credentials.private_key`; empty for a problem
   * with the file as a whole (unreadable, not YAML, not a mapping).
   */
  field: string;
  /** What is wrong and what is expected, e.g. `must be an integer from 0 to 65535`. */
  problem: string;
  /** The channel the field belongs to, when its name is known. */
  channel?: string | undefined;
  /** The underlying error (an fs error), for debugging; never a parse error that quotes text. */
  cause?: unknown;
}

/**
 * A configuration the gateway cannot start with. `message` is
 * `${file}: ${field}: ${problem}` (or `${file}: ${problem}` when `field` is empty), e.g.
 * `gateway.yaml: channels[cn-main].credentials.private_key: is encrypted; provide it without a
 * passphrase`. Fields of a channel are named by the channel's name once it is known
 * (`channels[cn-main]`), else by its 0-based index (`channels[1]`).
 *
 * The message never holds a secret: no private key, API key or token text, not even part of
 * one, and no excerpt of the file.
 */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  /** The config file as given, or the label of a config that has none. */
  readonly file: string;
  /** The field path; empty when the file as a whole is at fault. */
  readonly field: string;
  /** The problem alone, without file and field. */
  readonly problem: string;
  /** The channel's name when the field is inside a named channel, else `undefined`. */
  readonly channel: string | undefined;

  constructor(options: ConfigErrorOptions) {
    const where = options.field === "" ? options.file : `${options.file}: ${options.field}`;
    super(
      `${where}: ${options.problem}`,
      options.cause === undefined ? undefined : { cause: options.cause },
    );
    this.file = options.file;
    this.field = options.field;
    this.problem = options.problem;
    this.channel = options.channel;
  }
}
