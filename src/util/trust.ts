// Trusted proxies (server.trustedProxies): only these peers may describe the original request
// through X-Forwarded-* (THREATS 76, 81). Nothing is trusted by default.
import { BlockList, isIPv4, isIPv6 } from 'node:net';

export interface Trust {
  readonly has: boolean;
  readonly list: BlockList;
  /** What Fastify's `trustProxy` gets: the same list, or false. */
  readonly fastifyTrust: false | ((address: string, hop: number) => boolean);
  /**
   * Answers already computed, by address. BlockList.check allocates a SocketAddress per call and
   * Fastify asks several times per request (ip, host, protocol); the answer for an address never
   * changes for one compiled list. Bounded: cleared when it reaches MEMO_MAX addresses.
   */
  readonly memo: Map<string, boolean>;
}

const MEMO_MAX = 1024;

export function compileTrust(entries: readonly string[]): Trust {
  const list = new BlockList();
  for (const entry of entries) {
    const [addr, bits] = entry.split('/');
    const family = isIPv4(addr ?? '') ? 'ipv4' : isIPv6(addr ?? '') ? 'ipv6' : undefined;
    if (!family || addr === undefined) throw new Error(`server.trustedProxies: '${entry}' is not an IP address or CIDR`);
    if (bits === undefined) list.addAddress(addr, family);
    else {
      const prefix = Number(bits);
      if (!Number.isInteger(prefix) || prefix < 0 || prefix > (family === 'ipv4' ? 32 : 128)) throw new Error(`server.trustedProxies: '${entry}' has an invalid prefix length`);
      list.addSubnet(addr, prefix, family);
    }
  }
  const has = entries.length > 0;
  const trust: Trust = { has, list, fastifyTrust: has ? (address: string) => isTrustedAddress(trust, address) : false, memo: new Map() };
  return trust;
}

export function isTrustedAddress(trust: Trust, address: string | undefined): boolean {
  if (!trust.has || !address) return false;
  const known = trust.memo.get(address);
  if (known !== undefined) return known;
  const answer = checkAddress(trust.list, address);
  if (trust.memo.size >= MEMO_MAX) trust.memo.clear();
  trust.memo.set(address, answer);
  return answer;
}

function checkAddress(list: BlockList, address: string): boolean {
  let a = address;
  if (a.startsWith('::ffff:') && isIPv4(a.slice(7))) a = a.slice(7);
  if (isIPv4(a)) return list.check(a, 'ipv4');
  if (isIPv6(a)) return list.check(a, 'ipv6');
  return false;
}
