import { generateKeyPair } from "node:crypto";
import { lstat, mkdir, open, rm } from "node:fs/promises";
import { join, resolve } from "node:path";
import { parseArgs, promisify } from "node:util";
import { describeFsError } from "./config/secret-ref.js";

const generateKeyPairAsync = promisify(generateKeyPair);

/** RSA modulus lengths `keygen` offers. RS256 needs at least 2048 (coze-api.md §2.1). */
export const keyBits = [2048, 3072, 4096] as const;

/** One of {@link keyBits}. */
export type KeyBits = (typeof keyBits)[number];

/** The names of the two files `keygen` writes into its output directory. */
export const keyFileNames = {
  privateKey: "coze-app-private.pem",
  publicKey: "coze-app-public.pem",
} as const;

/** Options of {@link generateKeyFiles}. */
export interface KeygenOptions {
  /** Directory for the two files, relative to the working directory; created (0700) if missing. */
  outDir: string;
  /** RSA modulus length in bits. Default 2048, what the Coze console itself generates. */
  bits?: KeyBits;
  /** Replace existing files. Default false: an existing file is an error and nothing changes. */
  force?: boolean;
}

/** What {@link generateKeyFiles} wrote. */
export interface KeyFiles {
  /** Absolute path of the private key: PKCS#8 PEM (`BEGIN PRIVATE KEY`), mode 0600. */
  privateKeyPath: string;
  /** Absolute path of the public key: SPKI PEM (`BEGIN PUBLIC KEY`), mode 0644. */
  publicKeyPath: string;
  /** The public key PEM, to upload to the Coze console. Not secret. */
  publicKeyPem: string;
  /** The modulus length. */
  bits: KeyBits;
}

/** Why `keygen` failed: `exists` (a file is in the way, no `--force`) or `write_failed`. */
export type KeygenErrorCode = "exists" | "write_failed";

/** A failure of {@link generateKeyFiles}. The message names paths, never key material. */
export class KeygenError extends Error {
  override readonly name = "KeygenError";
  constructor(
    readonly code: KeygenErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * Generates an RSA key pair for a Coze OAuth JWT (service) app and writes it into
 * `options.outDir` as {@link keyFileNames}: the private key as PKCS#8 PEM with mode 0600 (the
 * form `parsePrivateKey` and every Coze SDK accept), the public key as SPKI PEM for the console.
 *
 * Without `force`, an existing file of either name is refused before a key is generated, and a
 * file created meanwhile is never overwritten (exclusive create). With `force`, existing files
 * (or symlinks) are removed first, so the new private key is never written through a link or
 * left with an old, wider mode.
 *
 * @throws KeygenError `exists` when a file is in the way; `write_failed` when the directory or
 *   a file cannot be written (a private key written before the failure is removed again).
 */
export async function generateKeyFiles(options: KeygenOptions): Promise<KeyFiles> {
  const bits = options.bits ?? 2048;
  const dir = resolve(options.outDir);
  const privateKeyPath = join(dir, keyFileNames.privateKey);
  const publicKeyPath = join(dir, keyFileNames.publicKey);
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new KeygenError("write_failed", `cannot create ${dir}: ${describeFsError(err)}`, {
      cause: err,
    });
  }
  if (!options.force) {
    const taken: string[] = [];
    for (const path of [privateKeyPath, publicKeyPath]) {
      if (await exists(path)) taken.push(path);
    }
    if (taken.length > 0) throw existsError(taken);
  }
  const { privateKey, publicKey } = await generateKeyPairAsync("rsa", {
    modulusLength: bits,
    publicKeyEncoding: { type: "spki", format: "pem" },
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
  });
  if (options.force) {
    await Promise.all([rm(privateKeyPath, { force: true }), rm(publicKeyPath, { force: true })]);
  }
  await writeNewFile(privateKeyPath, privateKey, 0o600);
  try {
    await writeNewFile(publicKeyPath, publicKey, 0o644);
  } catch (err) {
    // Half a pair is worse than none: the next run would refuse to replace it.
    await rm(privateKeyPath, { force: true });
    throw err;
  }
  return { privateKeyPath, publicKeyPath, publicKeyPem: publicKey, bits };
}

/** Where {@link runKeygen} writes. `--out` is resolved against `process.cwd()`. */
export interface KeygenIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

/** The usage text of `coze-gateway keygen`. */
export const keygenUsage = `Usage: coze-gateway keygen [--out DIR] [--bits 2048|3072|4096] [--force]

Creates an RSA key pair for a Coze OAuth JWT (service) app:
  DIR/${keyFileNames.privateKey}  the private key (PKCS#8 PEM, mode 0600); stays on this host
  DIR/${keyFileNames.publicKey}   the public key, to upload in the Coze console
and prints the public key with what to do next. The private key is never printed.

  --out DIR     where to write the files (default: the current directory)
  --bits N      RSA key size: 2048 (default), 3072 or 4096
  --force       replace existing key files (a channel using the old key stops working)
  --help        this text
`;

/**
 * `coze-gateway keygen [--out DIR] [--bits N] [--force]`: {@link generateKeyFiles}, then prints
 * the public key and the next steps to `io.stdout`.
 *
 * @returns the exit code: 0 done (or `--help`), 1 a file is in the way or cannot be written,
 *   2 bad arguments (with the usage on `io.stderr`).
 */
export async function runKeygen(argv: readonly string[], io: KeygenIo): Promise<number> {
  let values: ReturnType<typeof parseKeygenArgs>;
  try {
    values = parseKeygenArgs(argv);
  } catch (err) {
    io.stderr(`keygen: ${(err as Error).message}\n\n${keygenUsage}`);
    return 2;
  }
  if (values.help) {
    io.stdout(keygenUsage);
    return 0;
  }
  const bits = keyBits.find((b) => String(b) === (values.bits ?? "2048"));
  if (bits === undefined) {
    io.stderr(`keygen: --bits must be 2048, 3072 or 4096\n\n${keygenUsage}`);
    return 2;
  }
  let files: KeyFiles;
  try {
    files = await generateKeyFiles({
      outDir: values.out ?? ".",
      bits,
      force: values.force === true,
    });
  } catch (err) {
    if (err instanceof KeygenError) {
      io.stderr(`keygen: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
  io.stdout(nextSteps(files));
  return 0;
}

function parseKeygenArgs(argv: readonly string[]) {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      out: { type: "string", short: "o" },
      bits: { type: "string" },
      force: { type: "boolean", short: "f" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.out !== undefined && values.out.trim() === "")
    throw new Error("--out needs a directory");
  return values;
}

/** What to do with a new pair; the private key appears only as its path. */
function nextSteps(files: KeyFiles): string {
  return `Wrote a ${files.bits}-bit RSA key pair for a Coze OAuth JWT (service) app:
  private key  ${files.privateKeyPath}  (mode 0600: keep it on this host, never share it)
  public key   ${files.publicKeyPath}

1. In the Coze console (coze.cn or coze.com), open your OAuth app of type service
   (JWT), add a key, and upload or paste this public key:

${files.publicKeyPem.trimEnd()}

2. The console then lists the key with its public key fingerprint: that is public_key_id.
3. Put both ids and the private key file into the channel's credentials:

    credentials:
      client_id: "<the OAuth app id>"
      public_key_id: "<the public key fingerprint>"
      private_key: file:${files.privateKeyPath}

   and check it: node dist/main.js --config gateway.yaml --check --check-token
`;
}

async function writeNewFile(path: string, text: string, mode: number): Promise<void> {
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  try {
    // "wx": create, or fail when something (even a dangling symlink) is already there.
    handle = await open(path, "wx", mode);
    // The mode of open() passes through the umask; set it exactly.
    await handle.chmod(mode);
    await handle.writeFile(text);
  } catch (err) {
    if (handle === undefined && (err as NodeJS.ErrnoException).code === "EEXIST") {
      throw existsError([path]);
    }
    throw new KeygenError("write_failed", `cannot write ${path}: ${describeFsError(err)}`, {
      cause: err,
    });
  } finally {
    await handle?.close();
  }
}

function existsError(paths: string[]): KeygenError {
  const what = paths.length === 1 ? `${paths[0]} already exists` : `${paths.join(" and ")} exist`;
  return new KeygenError(
    "exists",
    `${what}; a channel may be using that key. Pass --force to replace it, or choose another --out`,
  );
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw new KeygenError("write_failed", `cannot check ${path}: ${describeFsError(err)}`, {
      cause: err,
    });
  }
}
