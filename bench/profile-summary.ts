// Summarises a V8 `.cpuprofile` (from `npm run bench -- --profile`): self time by function and by
// file or package, so the gateway's share of a request can be told from Node's and the libraries'.
// Percentages are of the busy time (idle left out). With a request count (the lines of the
// gateway's request log, `wc -l`), each line also says its µs per request, so that the profiles
// of two gateways under different loads compare.
// Usage: node dist/bench/bench/profile-summary.js FILE.cpuprofile [top] [requests]
import { readFileSync } from "node:fs";

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount: number;
  children?: number[];
}

const [file, topArg, requestsArg] = process.argv.slice(2);
if (!file) throw new Error("usage: profile-summary FILE.cpuprofile [top] [requests]");
const top = Number(topArg ?? 40);
const requests = requestsArg === undefined ? undefined : Number(requestsArg);
const profile = JSON.parse(readFileSync(file, "utf8")) as {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
};
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
// Self time per node from the sample deltas (µs).
const self = new Map<number, number>();
profile.samples.forEach((id, i) => {
  self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
});
const idleIds = new Set(
  profile.nodes.filter((n) => n.callFrame.functionName === "(idle)").map((n) => n.id),
);
for (const id of idleIds) self.delete(id);
const total = [...self.values()].reduce((a, b) => a + b, 0);

function where(url: string): string {
  if (url === "") return "(native/V8)";
  if (url.startsWith("node:")) return url;
  const nm = url.lastIndexOf("node_modules/");
  if (nm !== -1) {
    const rest = url.slice(nm + "node_modules/".length).split("/");
    return rest[0]?.startsWith("@") ? `${rest[0]}/${rest[1]}` : (rest[0] ?? url);
  }
  const dist = url.indexOf("/dist/");
  return dist === -1 ? url : url.slice(dist + 1);
}

const fns = new Map<string, number>();
const files = new Map<string, number>();
for (const [id, us] of self) {
  const n = byId.get(id);
  if (!n) continue;
  const w = where(n.callFrame.url);
  const name = `${n.callFrame.functionName || "(anonymous)"} ${w}:${n.callFrame.lineNumber + 1}`;
  fns.set(name, (fns.get(name) ?? 0) + us);
  files.set(w, (files.get(w) ?? 0) + us);
}
const show = (m: Map<string, number>, n: number) =>
  [...m]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([k, v]) => `${((v / total) * 100).toFixed(1).padStart(5)}%${perRequest(v)}  ${k}`)
    .join("\n");
const perRequest = (us: number) =>
  requests === undefined ? "" : ` ${(us / requests).toFixed(1).padStart(6)} µs/req`;
process.stdout.write(
  `busy ${(total / 1e6).toFixed(2)} s sampled (idle left out)${requests === undefined ? "" : `, ${(total / requests).toFixed(1)} µs per request over ${requests}`}\n\nby file or package\n${show(files, 30)}\n\nby function (self)\n${show(fns, top)}\n`,
);

// Inclusive time: each sample counts once for every distinct function on its stack.
const parent = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const inclusive = new Map<string, number>();
const label = (n: Node) =>
  `${n.callFrame.functionName || "(anonymous)"} ${where(n.callFrame.url)}:${n.callFrame.lineNumber + 1}`;
for (const [id, us] of self) {
  const seen = new Set<string>();
  for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
    const n = byId.get(cur);
    if (!n) break;
    const l = label(n);
    if (seen.has(l)) continue;
    seen.add(l);
    inclusive.set(l, (inclusive.get(l) ?? 0) + us);
  }
}
process.stdout.write(`\nby function (inclusive)\n${show(inclusive, top)}\n`);
