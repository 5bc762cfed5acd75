// Loaded with `--import` into every process the bench measures (gateway and baselines). It adds
// no work to the request path: it only answers the harness's IPC questions, so the harness can
// read a heap size after a full collection (`--expose-gc`) without any endpoint in the product.
const gc = (globalThis as { gc?: () => void }).gc;
if (process.send) {
  process.on("message", (m: { type?: string; path?: string }) => {
    if (m?.type === "heap") {
      gc?.();
      gc?.();
      process.send?.({ type: "heap", usage: process.memoryUsage() });
    } else if (m?.type === "snapshot") {
      // For digging into a heap figure: `v8.writeHeapSnapshot` to the path asked for.
      import("node:v8").then((v8) => {
        process.send?.({ type: "snapshot", file: v8.writeHeapSnapshot(m.path) });
      });
    }
  });
  // The channel must not keep a process alive that would otherwise exit.
  process.channel?.unref();
}
