import { type AddressInfo, connect, createServer, type Socket } from "node:net";

/**
 * A TCP relay on 127.0.0.1 in front of `target`, counting the connections made through it: a
 * stand-in for Coze's address that shows when the gateway opens and closes its pooled sockets.
 */
export interface TcpTap {
  /** `http://127.0.0.1:PORT`: the base URL to give a channel. */
  url: string;
  /** Connections accepted since the start. */
  readonly accepted: number;
  /** Connections open now. */
  readonly open: number;
  /** Resolves once no connection is open; rejects after `ms`. */
  idle(ms: number): Promise<void>;
  close(): Promise<void>;
}

/** Starts a {@link TcpTap} relaying to `target` (`http://host:port`). */
export async function startTcpTap(target: string): Promise<TcpTap> {
  const { hostname, port } = new URL(target);
  const sockets = new Set<Socket>();
  let accepted = 0;
  let waiters: (() => void)[] = [];
  const server = createServer((inbound) => {
    accepted++;
    const outbound = connect(Number(port), hostname);
    sockets.add(inbound);
    sockets.add(outbound);
    inbound.pipe(outbound).pipe(inbound);
    const end = () => {
      inbound.destroy();
      outbound.destroy();
      if (sockets.delete(inbound)) {
        sockets.delete(outbound);
        if (open() === 0) {
          for (const wake of waiters) wake();
          waiters = [];
        }
      }
    };
    inbound.on("close", end).on("error", end);
    outbound.on("close", end).on("error", end);
  });
  const open = () => sockets.size / 2;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    get accepted() {
      return accepted;
    },
    get open() {
      return open();
    },
    async idle(ms) {
      if (open() === 0) return;
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          new Promise<void>((resolve) => waiters.push(resolve)),
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new Error(`${open()} connection(s) still open`)), ms);
          }),
        ]);
      } finally {
        clearTimeout(timer);
      }
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
