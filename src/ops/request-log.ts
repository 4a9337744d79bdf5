// The one log line per request (SPEC 7) and the request counter, for the fast path and the
// gateway's own endpoints alike.
import { writeSync } from 'node:fs';
import pino from 'pino';
import type { Metrics } from './metrics.js';

export interface RequestLine {
  method: string;
  path: string;
  route: string;
  authenticator: string | undefined;
  user: string | undefined;
  status: number;
  ms: number;
  ip: string | undefined;
}

export interface RequestLogger {
  /** Counts the request and writes its line (at `info` and below). */
  (line: RequestLine): void;
  /** Counts the request only: the fast path calls this and records a line only when `lineWanted()`. */
  count(route: string, method: string, status: number): void;
  lineWanted(): boolean;
  /**
   * Records the line of a request already counted. `target` is the request target as received:
   * its query string is cut off when the line is written, and never logged.
   */
  record(method: string, target: string, route: string, authenticator: string | undefined, user: string | undefined, status: number, ms: number, ip: string | undefined): void;
  /**
   * Writes out the lines still gathered (the gateway's close; process exit does it too). Lines
   * recorded after it are written at once.
   */
  flush(): void;
}

/** Lines recorded before they are written out together (or after FLUSH_MS). */
const BATCH = 256;
/** Lines are handed to the destination in chunks of about this many bytes. */
const CHUNK_BYTES = 32 * 1024;
/** Room for a chunk and the line that completes it (a longer line gets a buffer of its own). */
const SLAB_BYTES = 64 * 1024;
const FLUSH_MS = 200;
/** At most this many bytes per write(2), as sonic-boom writes (a container runtime reads its log pipe 16 KiB at a time). */
const MAX_WRITE = 16 * 1024;
/** Encoded constant runs kept (per method, per route and authenticator). */
const MAX_SEGMENTS = 4096;
/** Paths are cut to this many UTF-16 units. */
const MAX_PATH = 512;

/** Every live request logger's flush, run once when the process exits (SIGTERM ends in process.exit). */
const flushers = new Set<() => void>();
let exitHooked = false;
function onExit(flush: () => void): void {
  flushers.add(flush);
  if (exitHooked) return;
  exitHooked = true;
  process.once('exit', () => { for (const f of flushers) f(); });
}

const utf8Bytes = (s: string): Uint8Array => Buffer.from(s, 'utf8');

/**
 * Writes a line's JSON straight into bytes: no string is made for the common case (printable
 * ASCII, nothing to escape), which JSON.stringify handles otherwise, exactly as pino would.
 */
class LineBytes {
  out: Buffer;
  at = 0;

  constructor(size: number) {
    this.out = Buffer.allocUnsafeSlow(size);
  }

  /** Fixed bytes: a short run in a loop (TypedArray#set's call costs more than copying a few bytes), a longer one with set. */
  raw(bytes: Uint8Array): void {
    const out = this.out;
    const at = this.at;
    const n = bytes.length;
    if (n > 24) out.set(bytes, at);
    else for (let i = 0; i < n; i++) out[at + i] = bytes[i] as number;
    this.at = at + n;
  }

  /** A JSON string literal. */
  string(s: string): void {
    const out = this.out;
    const start = this.at;
    let at = start;
    out[at++] = 0x22;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c < 0x20 || c === 0x22 || c === 0x5c || c > 0x7e) {
        this.at = start + out.write(JSON.stringify(s), start);
        return;
      }
      out[at++] = c;
    }
    out[at++] = 0x22;
    this.at = at;
  }

  /** A non-negative integer below 2^53 (a millisecond timestamp has 13 digits). */
  uint(n: number): void {
    if (n < 1e9) return this.small(n);
    // Above 2^31 the digits would be divided as doubles: split into two parts that are not.
    const high = Math.floor(n / 1e9);
    this.small(high);
    this.digits(n - high * 1e9, 9);
  }

  /** A non-negative integer below 1e9, in small-integer arithmetic. */
  small(n: number): void {
    let width = 1;
    for (let p = 10; p <= n; p *= 10) width++;
    this.digits(n, width);
  }

  /** `n` (below 1e9) as exactly `width` digits, zero-padded on the left. */
  digits(n: number, width: number): void {
    const out = this.out;
    let at = this.at + width;
    this.at = at;
    let v = n | 0;
    for (let i = 0; i < width; i++) {
      const q = (v / 10) | 0;
      out[--at] = 0x30 + (v - q * 10);
      v = q;
    }
  }

  /**
   * `Math.round(ms * 100) / 100` as JSON, from integers: the same number when parsed (both are
   * the double nearest to the decimal), without a double's shortest-form conversion.
   */
  hundredths(ms: number): void {
    const h = Math.round(ms * 100);
    if (!(h >= 0 && h < 2 ** 30)) {
      // JSON.stringify's form, as pino would write it (NaN and infinities become null).
      this.at += this.out.write(Number.isFinite(h) ? String(h / 100) : 'null', this.at, 'latin1');
      return;
    }
    const whole = Math.floor(h / 100);
    const frac = h - whole * 100;
    this.uint(whole);
    if (frac === 0) return;
    this.out[this.at++] = 0x2e;
    this.out[this.at++] = 0x30 + Math.floor(frac / 10);
    if (frac % 10 !== 0) this.out[this.at++] = 0x30 + (frac % 10);
  }
}

type PinoInternals = pino.Logger & { [key: symbol]: unknown };

export function createRequestLogger(log: pino.Logger, metrics: Metrics): RequestLogger {
  // The line has a fixed set of fields, none of them a secret: it is serialised here, into the
  // logger's own destination, in pino's format with the logger's bindings (pino's generic
  // serialisation and redaction cost ~5 µs a line). The level check stays on the gateway's
  // logger, so a level change applies at once.
  const internals = log as PinoInternals;
  const stream = internals[pino.symbols.streamSym] as { write(chunk: string): unknown; flushSync?: () => void } | undefined;
  const chindings = internals[pino.symbols.chindingsSym];
  const head = utf8Bytes(`{"level":${log.levels.values.info ?? 30},"time":`);
  const bindings = typeof chindings === 'string' ? chindings : '';
  const [kStatus, kMs, kIp, tail] = [',"status":', ',"ms":', ',"ip":', ',"msg":"request"}\n'].map(utf8Bytes) as [Uint8Array, Uint8Array, Uint8Array, Uint8Array];
  // The constant runs of a line are encoded once per method, and once per route and
  // authenticator, and copied whole: a line is then a few copies and the variable fields
  // (time, path, user, status, duration, ip). Methods, route names and authenticator names come
  // from the HTTP parser's table and the configuration; the caches are bounded all the same.
  let segmentCount = 0;
  const methodSegments = new Map<string, Uint8Array>();
  const routeSegments = new Map<string, Map<string | undefined, [Uint8Array, Uint8Array]>>();
  const methodSegment = (method: string): Uint8Array => {
    let seg = methodSegments.get(method);
    if (seg === undefined) {
      seg = utf8Bytes(`${bindings},"method":${JSON.stringify(method)},"path":`);
      if (segmentCount < MAX_SEGMENTS) { segmentCount++; methodSegments.set(method, seg); }
    }
    return seg;
  };
  /** `,"route":…[,"authenticator":…]` followed by `,"user":` (with a user) or `,"status":` (without). */
  const routeSegment = (route: string, authenticator: string | undefined, withUser: boolean): Uint8Array => {
    let byAuthenticator = routeSegments.get(route);
    let pair = byAuthenticator?.get(authenticator);
    if (pair === undefined) {
      const start = `,"route":${JSON.stringify(route)}${authenticator === undefined ? '' : `,"authenticator":${JSON.stringify(authenticator)}`}`;
      pair = [utf8Bytes(`${start},"status":`), utf8Bytes(`${start},"user":`)];
      if (segmentCount < MAX_SEGMENTS) {
        segmentCount++;
        if (byAuthenticator === undefined) routeSegments.set(route, (byAuthenticator = new Map()));
        byAuthenticator.set(authenticator, pair);
      }
    }
    return pair[withUser ? 1 : 0];
  };
  const fixedBytes = head.length + Buffer.byteLength(bindings) + 200;
  const count = (route: string, method: string, status: number): void => metrics.requests.inc(route, method, String(status));
  const lineWanted = (): boolean => log.isLevelEnabled('info');

  // Production's destination is a file descriptor (sonic-boom: stdout or a file). There, a
  // request only records its fields (a few array stores); the lines are made BATCH at a time
  // (or after FLUSH_MS) straight into a byte slab and handed over a chunk at a time. Measured in
  // the gateway (bench: info against warn, alternated in one run), against a line made as a
  // string during its request: that cost ~2 µs a request there, a loop of them a fraction of
  // it (the request's own work leaves the cache cold for the line), and a chunk kept as one
  // string of appended lines was a rope of ~1,500 pieces whose flattening cost ~1 µs a line.
  // Any other destination (a stream of the embedding program's own, as in tests) gets each
  // line at once, made the same way.
  const gather = typeof stream?.flushSync === 'function';
  const times = new Float64Array(BATCH);
  const durations = new Float64Array(BATCH);
  const statuses = new Uint16Array(BATCH);
  const methods = new Array<string>(BATCH).fill('');
  const targets = new Array<string>(BATCH).fill('');
  const routes = new Array<string>(BATCH).fill('');
  const authenticators = new Array<string | undefined>(BATCH).fill(undefined);
  const users = new Array<string | undefined>(BATCH).fill(undefined);
  const ips = new Array<string | undefined>(BATCH).fill(undefined);
  let recorded = 0;
  /** After close (a reload's old generation, or shutdown), lines of requests still in flight go out at once. */
  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  let slab: LineBytes | undefined;

  // A synchronous sonic-boom with nothing of its own pending (pino's stdout) gets the slab's
  // bytes written to its file descriptor directly: handing it a string meant decoding 32 KiB
  // into a string, measuring it, and encoding it back into a buffer for write(2). Anything else,
  // or a write that fails part-way (EAGAIN on a non-blocking pipe), goes through the stream's
  // own write, which retries as it does for every other log line (a character cut by such a
  // failure part-way comes out as U+FFFD).
  const sonic = stream as { fd?: unknown; sync?: unknown; minLength?: unknown; destroyed?: unknown; _len?: unknown } | undefined;
  const directFd = (): number | undefined =>
    sonic !== undefined && sonic.sync === true && sonic.destroyed !== true && typeof sonic.fd === 'number' && sonic.fd >= 0 && (sonic.minLength ?? 0) === 0 && (sonic._len ?? 0) === 0 ? sonic.fd : undefined;

  const handOver = (b: LineBytes): void => {
    const end = b.at;
    if (end === 0) return;
    b.at = 0;
    let at = 0;
    const fd = directFd();
    if (fd !== undefined) {
      try {
        while (at < end) {
          const n = writeSync(fd, b.out, at, Math.min(MAX_WRITE, end - at));
          if (n <= 0) break;
          at += n;
        }
        if (at === end) return;
      } catch {
        // The rest goes through the stream (whose own write reports a lasting failure).
      }
    }
    stream?.write(b.out.toString('utf8', at, end));
  };

  /** Line i into the slab (or, longer than a slab holds, into bytes of its own). */
  const put = (i: number): void => {
    const method = methods[i] as string;
    const target = targets[i] as string;
    const route = routes[i] as string;
    const authenticator = authenticators[i];
    const user = users[i];
    const ip = ips[i];
    const q = target.indexOf('?');
    let path = q === -1 ? target : target.slice(0, q);
    if (path.length > MAX_PATH) path = path.slice(0, MAX_PATH);
    // At most 6 bytes per UTF-16 unit (an escaped control character), 3 for anything else.
    const most = fixedBytes + 6 * (method.length + path.length + route.length + (authenticator?.length ?? 0) + (user?.length ?? 0) + (ip?.length ?? 0));
    slab ??= new LineBytes(SLAB_BYTES);
    if (slab.at + most > slab.out.length) handOver(slab);
    const b = most > slab.out.length ? new LineBytes(most) : slab;
    b.raw(head);
    b.uint(times[i] as number);
    b.raw(methodSegment(method));
    b.string(path);
    b.raw(routeSegment(route, authenticator, user !== undefined));
    if (user !== undefined) { b.string(user); b.raw(kStatus); }
    b.uint(statuses[i] as number);
    b.raw(kMs);
    b.hundredths(durations[i] as number);
    if (ip !== undefined) { b.raw(kIp); b.string(ip); }
    b.raw(tail);
    if (b !== slab || b.at >= CHUNK_BYTES) handOver(b);
  };

  const flush = (): void => {
    if (timer !== undefined) { clearTimeout(timer); timer = undefined; }
    const n = recorded;
    recorded = 0;
    for (let i = 0; i < n; i++) put(i);
    if (slab) handOver(slab);
    // Written: let the strings go (they are young, and these arrays would keep them alive).
    targets.fill('', 0, n);
    users.fill(undefined, 0, n);
    ips.fill(undefined, 0, n);
  };
  const flushAtExit = (): void => {
    flush();
    try { stream?.flushSync?.(); } catch { /* the destination is already closed */ }
  };
  onExit(flushAtExit);

  const record = (method: string, target: string, route: string, authenticator: string | undefined, user: string | undefined, status: number, ms: number, ip: string | undefined): void => {
    if (stream === undefined) {
      const q = target.indexOf('?');
      const path = q === -1 ? target : target.slice(0, q);
      log.info({ method, path: path.slice(0, MAX_PATH), route, authenticator, user, status, ms: Math.round(ms * 100) / 100, ip }, 'request');
      return;
    }
    const i = recorded++;
    times[i] = Date.now();
    methods[i] = method;
    targets[i] = target;
    routes[i] = route;
    authenticators[i] = authenticator;
    users[i] = user;
    statuses[i] = status;
    durations[i] = ms;
    ips[i] = ip;
    if (!gather || closed || recorded === BATCH) flush();
    else if (timer === undefined) {
      timer = setTimeout(flush, FLUSH_MS);
      timer.unref();
    }
  };
  const close = (): void => {
    closed = true;
    flush();
    flushers.delete(flushAtExit);
  };
  const logger = (l: RequestLine): void => {
    count(l.route, l.method, l.status);
    if (lineWanted()) record(l.method, l.path, l.route, l.authenticator, l.user, l.status, l.ms, l.ip);
  };
  return Object.assign(logger, { count, lineWanted, record, flush: close });
}
