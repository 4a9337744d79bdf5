// The one log line per request (SPEC 7) and the request counter, for the fast path and the
// gateway's own endpoints alike.
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
  /** Counts the request only: the fast path calls this and builds a line only when `lineWanted()`. */
  count(route: string, method: string, status: number): void;
  lineWanted(): boolean;
  /** Writes a line already counted. */
  write(line: RequestLine): void;
  /** Writes out the lines still gathered (the gateway's close; process exit does it too). */
  flush(): void;
}

/** Lines are handed to the destination in chunks of about this many characters, or after FLUSH_MS. */
const FLUSH_CHARS = 16 * 1024;
const FLUSH_MS = 200;

/** Every live request logger's flush, run once when the process exits (SIGTERM ends in process.exit). */
const flushers = new Set<() => void>();
let exitHooked = false;
function onExit(flush: () => void): void {
  flushers.add(flush);
  if (exitHooked) return;
  exitHooked = true;
  process.once('exit', () => { for (const f of flushers) f(); });
}

/** A JSON string literal; the common case (printable ASCII, nothing to escape) without JSON.stringify. */
function jsonString(value: string): string {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x20 || c === 0x22 || c === 0x5c || c > 0x7e) return JSON.stringify(value);
  }
  return `"${value}"`;
}

type PinoInternals = pino.Logger & { [key: symbol]: unknown };

export function createRequestLogger(log: pino.Logger, metrics: Metrics): RequestLogger {
  // The line has a fixed set of fields, none of them a secret: it is serialised here, into the
  // logger's own destination (an asynchronous one in production, see ops/logger.ts), in pino's
  // format with the logger's bindings: pino's generic serialisation and redaction cost ~5 µs
  // per line; this costs well under one (issue 12: info within 1 µs/req of warn). The level
  // check stays on the gateway's logger, so a level change applies at once.
  const internals = log as PinoInternals;
  const stream = internals[pino.symbols.streamSym] as { write(chunk: string): unknown; flushSync?: () => void } | undefined;
  const chindings = internals[pino.symbols.chindingsSym];
  const bindings = typeof chindings === 'string' ? chindings : '';
  const level = log.levels.values.info ?? 30;
  const count = (route: string, method: string, status: number): void => metrics.requests.inc(route, method, String(status));
  const lineWanted = (): boolean => log.isLevelEnabled('info');

  // Lines are gathered and handed to the destination a chunk at a time: one write per line cost
  // about 2 µs of CPU in sonic-boom (its byte count of the whole pending buffer on every write,
  // and a thread-pool write each), measured. A line waits at most FLUSH_MS.
  let pending = '';
  let timer: NodeJS.Timeout | undefined;
  const gather = typeof stream?.flushSync === 'function';
  const flush = (): void => {
    if (timer !== undefined) { clearTimeout(timer); timer = undefined; }
    if (pending === '' || stream === undefined) return;
    const chunk = pending;
    pending = '';
    stream.write(chunk);
  };
  const flushAtExit = (): void => {
    flush();
    try { stream?.flushSync?.(); } catch { /* the destination is already closed */ }
  };
  onExit(flushAtExit);

  const write = (line: RequestLine): void => {
    const path = line.path.length > 512 ? line.path.slice(0, 512) : line.path;
    const ms = Math.round(line.ms * 100) / 100;
    if (stream === undefined) {
      log.info({ ...line, path, ms }, 'request');
      return;
    }
    pending +=
      `{"level":${level},"time":${Date.now()}${bindings},"method":${jsonString(line.method)},"path":${jsonString(path)},"route":${jsonString(line.route)}` +
      (line.authenticator === undefined ? '' : `,"authenticator":${jsonString(line.authenticator)}`) +
      (line.user === undefined ? '' : `,"user":${jsonString(line.user)}`) +
      `,"status":${line.status},"ms":${ms}` +
      (line.ip === undefined ? '' : `,"ip":${jsonString(line.ip)}`) +
      ',"msg":"request"}\n';
    // Only a file-descriptor destination (sonic-boom, production's stdout or file) is worth
    // gathering for; a stream of the embedding program's own (tests) gets each line at once.
    if (!gather || pending.length >= FLUSH_CHARS) flush();
    else if (timer === undefined) {
      timer = setTimeout(flush, FLUSH_MS);
      timer.unref();
    }
  };
  const close = (): void => {
    flush();
    flushers.delete(flushAtExit);
  };
  const logger = (line: RequestLine): void => {
    count(line.route, line.method, line.status);
    if (lineWanted()) write(line);
  };
  return Object.assign(logger, { count, lineWanted, write, flush: close });
}
