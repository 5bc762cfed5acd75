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
  /**
   * The other problems found in the same file, in file order after this one (the loader reads on
   * past a problem and reports them all). Default none.
   */
  more?: readonly ConfigError[];
  /** SHA-256 of the file's bytes in hex, when the file could be read. */
  sha256?: string | undefined;
}

/**
 * A configuration the gateway cannot start with. `message` is
 * `${file}: ${field}: ${problem}` (or `${file}: ${problem}` when `field` is empty), e.g.
 * `gateway.yaml: channels[cn-main].credentials.private_key: is encrypted; provide it without a
 * passphrase`. Fields of a channel are named by the channel's name once it is known
 * (`channels[cn-main]`), else by its 0-based index (`channels[1]`).
 *
 * The message never holds a secret: no private key, API key or token text, not even part of
 * one, and no excerpt of the file. When the file has several problems, this is the first and
 * {@link ConfigError.all} lists them all.
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
  /** Every problem found in the file, this one first; `[this]` when it is the only one. */
  readonly all: readonly ConfigError[];
  /** SHA-256 of the file's bytes in hex, when the file could be read (`loadConfig`). */
  readonly sha256: string | undefined;

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
    this.all = [this, ...(options.more ?? [])];
    this.sha256 = options.sha256;
  }

  /**
   * One error for several problems: the first, with {@link all} listing every one; `sha256`
   * names the file's bytes when known.
   */
  static of(errors: readonly ConfigError[], sha256?: string): ConfigError {
    const [first, ...more] = errors.flatMap((e) => e.all);
    if (first === undefined) throw new TypeError("ConfigError.of needs at least one error");
    return new ConfigError({
      file: first.file,
      field: first.field,
      problem: first.problem,
      channel: first.channel,
      cause: first.cause,
      more,
      sha256: sha256 ?? first.sha256,
    });
  }
}
