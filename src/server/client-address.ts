import { BlockList, isIP } from "node:net";
import type { NodeRequest } from "./http-response.js";
import { peerAddress } from "./observe.js";

/** The most `X-Forwarded-For` hops read, right to left: a chain of proxies is short. */
const maxHops = 32;

/**
 * Makes the function that tells a request's client address, honouring `X-Forwarded-For` only
 * from `trusted` proxies (CIDR blocks `address/prefix`, as `server.trusted_proxies` holds them):
 * - a peer that is not trusted is the client, whatever header it sent (a forged header from the
 *   open internet is ignored);
 * - behind a trusted peer, the header is read from the right (each proxy appends the address it
 *   got the request from) and the first address that is not a trusted proxy is the client: a
 *   client can put anything at the left of the header, never at the right of its own proxy;
 * - an entry that is not an address stops the walk: the hop to its right, a trusted proxy that
 *   wrote it, is the best known address; so does a chain of only trusted hops (its left-most).
 *
 * Without trusted proxies the peer's address is the answer and the header is never read. IPv4
 * addresses mapped into IPv6 (`::ffff:10.0.0.1`) are written and compared as IPv4.
 *
 * @throws TypeError when an entry of `trusted` is not `address/prefix` (config checks it first).
 */
export function createClientAddress(
  trusted: readonly string[],
): (req: NodeRequest) => string | undefined {
  if (trusted.length === 0) return peerAddress;
  const list = new BlockList();
  for (const cidr of trusted) {
    const [address = "", prefix = ""] = cidr.split("/");
    const family = isIP(address);
    if (family === 0 || !/^[0-9]{1,3}$/.test(prefix)) {
      throw new TypeError(`not a CIDR block: ${JSON.stringify(cidr)}`);
    }
    list.addSubnet(address, Number(prefix), family === 4 ? "ipv4" : "ipv6");
  }
  const isTrusted = (address: string) => list.check(address, isIP(address) === 6 ? "ipv6" : "ipv4");

  return (req) => {
    const peer = peerAddress(req);
    if (peer === undefined || isIP(peer) === 0 || !isTrusted(peer)) return peer;
    const header = req.headers["x-forwarded-for"];
    // Node joins repeated X-Forwarded-For headers with ", ", in order: one list either way.
    const forwarded = Array.isArray(header) ? header.join(",") : header;
    if (forwarded === undefined || forwarded === "") return peer;
    const hops = forwarded.split(",");
    let client = peer;
    for (let i = hops.length - 1; i >= 0 && i >= hops.length - maxHops; i--) {
      const hop = hopAddress(hops[i] as string);
      if (hop === undefined) return client;
      client = hop;
      if (!isTrusted(hop)) return hop;
    }
    return client;
  };
}

/**
 * The address of one `X-Forwarded-For` entry: a bare IPv4 or IPv6 address, also as written with
 * a port (`10.0.0.1:5123`, `[2001:db8::1]:443`); `undefined` for anything else (`unknown`,
 * obfuscated names, garbage).
 */
function hopAddress(entry: string): string | undefined {
  let text = entry.trim();
  if (text.startsWith("[")) {
    const end = text.indexOf("]");
    text = end === -1 ? "" : text.slice(1, end);
  } else if (text.indexOf(":") === text.lastIndexOf(":") && text.includes(".")) {
    // IPv4 with a port: one colon.
    const colon = text.indexOf(":");
    if (colon !== -1) text = text.slice(0, colon);
  }
  const family = isIP(text);
  if (family === 0) return undefined;
  return family === 6 && text.toLowerCase().startsWith("::ffff:") && text.includes(".")
    ? text.slice(7)
    : text;
}
