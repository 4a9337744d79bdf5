// Memory under abuse (issue #6 item 4): many distinct invalid credentials of each kind through
// the gateway, RSS before and after. Every cache on those paths must be bounded, so RSS should
// level off however many credentials come.
import { randomBytes } from 'node:crypto';
import { crc32 } from 'node:zlib';
import type autocannon from 'autocannon';
import { runLoad } from './measure.js';
import type { Child } from './procs.js';
import { rssBytes } from './procs.js';
import type { AbuseResult } from './report.js';
import type { BenchFixtures } from './fixtures.js';

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

function base62(bytes: Buffer, width: number): string {
  let n = BigInt(`0x${bytes.toString('hex') || '0'}`);
  let out = '';
  for (let i = 0; i < width; i++) {
    out = (BASE62[Number(n % 62n)] as string) + out;
    n /= 62n;
  }
  return out;
}

/**
 * A well-formed gateway API token (prefix, 43 random base62 chars, CRC32 checksum) that was never
 * issued: it passes the format check, so it costs a store lookup — the expensive kind of guess.
 */
export function wellFormedUnknownToken(prefix = 'agt_'): string {
  const random = base62(randomBytes(33), 43);
  const sum = Buffer.alloc(4);
  sum.writeUInt32BE(crc32(random) >>> 0);
  return `${prefix}${random}${base62(sum, 6)}`;
}

const b64url = (v: string | Buffer): string => Buffer.from(v).toString('base64url');

/** An RS256 JWT for the configured issuer and known kid whose signature is random. */
function forgedJwt(fx: BenchFixtures): string {
  const header = b64url(JSON.stringify({ alg: 'RS256', typ: 'at+jwt', kid: fx.extKey.kid }));
  const now = Math.floor(Date.now() / 1000);
  const payload = b64url(JSON.stringify({ iss: fx.aux.issuer, sub: randomBytes(6).toString('hex'), aud: 'bench-api', iat: now, exp: now + 3600, jti: randomBytes(8).toString('hex') }));
  return `${header}.${payload}.${b64url(randomBytes(256))}`;
}

export interface AbuseKind {
  kind: string;
  path: string;
  headers: () => Record<string, string>;
}

export function abuseKinds(fx: BenchFixtures, types: ReadonlySet<string>): AbuseKind[] {
  const out: AbuseKind[] = [];
  if (types.has('basic'))
    out.push({ kind: 'Basic credentials', path: '/basic/x', headers: () => ({ authorization: `Basic ${Buffer.from(`u${randomBytes(6).toString('hex')}:${randomBytes(9).toString('base64url')}`).toString('base64')}` }) });
  if (types.has('apikey')) out.push({ kind: 'API keys', path: '/apikey/x', headers: () => ({ 'x-api-key': randomBytes(24).toString('base64url') }) });
  if (types.has('token')) out.push({ kind: 'opaque tokens', path: '/token/x', headers: () => ({ authorization: `Token ${wellFormedUnknownToken()}` }) });
  if (types.has('jwt')) out.push({ kind: 'JWTs', path: '/jwt-rs256/x', headers: () => ({ authorization: `Bearer ${forgedJwt(fx)}` }) });
  return out;
}

async function gcAndMeasure(gw: Child): Promise<{ rss: number; heap: number }> {
  const r = await gw.send({ cmd: 'gc' });
  const mem = r.memory as { heapUsed: number } | undefined;
  return { rss: rssBytes(gw.pid), heap: mem?.heapUsed ?? Number.NaN };
}

export async function runAbuse(gw: Child, baseUrl: string, kinds: AbuseKind[], count: number, connections: number, log: (s: string) => void): Promise<AbuseResult[]> {
  const results: AbuseResult[] = [];
  for (const k of kinds) {
    const load = (amount: number) =>
      runLoad(
        {
          url: baseUrl + k.path,
          connections,
          amount,
          timeoutSeconds: 30,
          setupRequest: (req: autocannon.Request) => ({ ...req, headers: { ...(req.headers ?? {}), ...k.headers() } }),
        },
        gw.pid,
      );
    // A warm-up of the same kind first, so "before" is the working set of this path (caches at
    // their bound, heap grown to its size) rather than a freshly collected heap.
    await load(Math.max(1000, Math.min(50_000, Math.floor(count / 20))));
    const before = { rss: rssBytes(gw.pid) };
    log(`abuse: ${count.toLocaleString('en-US')} distinct invalid ${k.kind} …`);
    // In quarters, with RSS after each: a bounded cache shows as a plateau, a leak as a line.
    const steps: number[] = [];
    const statusCodes: Record<string, number> = {};
    let sent = 0;
    let seconds = 0;
    for (let q = 0; q < 4; q++) {
      const amount = q < 3 ? Math.floor(count / 4) : count - 3 * Math.floor(count / 4);
      const r = await load(amount);
      steps.push(r.rssBytes / 2 ** 20);
      sent += r.ok + r.non2xx;
      seconds += r.durationS;
      for (const [code, n] of Object.entries(r.statusCodes)) statusCodes[code] = (statusCodes[code] ?? 0) + n;
    }
    const after = rssBytes(gw.pid);
    const gced = await gcAndMeasure(gw);
    const growth = ((after - before.rss) / 2 ** 20) * (1_000_000 / count);
    results.push({
      kind: k.kind,
      count,
      rps: sent / seconds,
      statusCodes,
      rssStepsMB: steps,
      rssBeforeMB: before.rss / 2 ** 20,
      rssAfterMB: after / 2 ** 20,
      rssAfterGcMB: gced.rss / 2 ** 20,
      heapAfterGcMB: gced.heap / 2 ** 20,
      growthPerMillionMB: growth,
      verdict: count < 1_000_000 ? 'not judged' : growth < 50 ? 'ok' : 'miss',
    });
    log(`  RSS ${(before.rss / 2 ** 20).toFixed(0)} → ${steps.map((v) => v.toFixed(0)).join(' → ')} MB (after GC ${(gced.rss / 2 ** 20).toFixed(0)} MB), ${Math.round(sent / seconds)} req/s, ${JSON.stringify(statusCodes)}`);
  }
  return results;
}
