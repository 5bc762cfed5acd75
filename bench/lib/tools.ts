import { spawn } from "node:child_process";
import { run } from "./proc.js";

/** wrk's and h2load's version lines; installs them with apt-get when missing and run as root. */
export async function ensureTools(): Promise<{ wrk: string; h2load: string }> {
  let wrk = await versionOf("wrk", "-v");
  let h2load = await versionOf("h2load", "--version");
  if ((!wrk || !h2load) && process.getuid?.() === 0) {
    process.stderr.write("bench: installing wrk and nghttp2-client (h2load) with apt-get\n");
    await run("apt-get", ["update", "-qq"]);
    await run("apt-get", [
      "install",
      "-y",
      "-qq",
      "--no-install-recommends",
      "wrk",
      "nghttp2-client",
    ]);
    wrk = await versionOf("wrk", "-v");
    h2load = await versionOf("h2load", "--version");
  }
  if (!wrk || !h2load) {
    throw new Error("the bench needs wrk and h2load: apt-get install wrk nghttp2-client");
  }
  return { wrk, h2load };
}

/** The first line a tool prints about its version (wrk prints it and exits 1), or "". */
function versionOf(cmd: string, arg: string): Promise<string> {
  return new Promise((resolve) => {
    const child = spawn(cmd, [arg], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    const take = (c: Buffer) => {
      out += c.toString();
    };
    child.stdout.on("data", take);
    child.stderr.on("data", take);
    child.once("error", () => resolve(""));
    child.once("exit", () => resolve(out.trim().split("\n")[0]?.trim() ?? ""));
  });
}
