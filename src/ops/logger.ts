// pino with redaction: no password, token, key, cookie or secret ever reaches a log line (SPEC 5).
import pino from 'pino';

export const REDACT_PATHS = [
  'password', '*.password', 'token', '*.token', 'secret', '*.secret', 'clientSecret', '*.clientSecret',
  'refresh', '*.refresh', 'access', '*.access', 'code', '*.code', 'otp', '*.otp',
  'req.headers.authorization', 'req.headers.cookie', 'req.headers["x-api-key"]', 'req.headers["proxy-authorization"]',
  'headers.authorization', 'headers.cookie', 'headers["x-api-key"]', 'headers["proxy-authorization"]',
  'res.headers["set-cookie"]',
];

export function createLogger(level: string | undefined, destination?: pino.DestinationStream): pino.Logger {
  const opts: pino.LoggerOptions = {
    level: process.env.LOG_LEVEL ?? level ?? 'info',
    base: { service: 'authgate' },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    serializers: {
      err: (err: unknown) => {
        const e = err as { name?: string; code?: string; message?: string };
        // Messages can carry upstream text; keep them, but never stacks or causes.
        return { name: e?.name, code: e?.code, message: typeof e?.message === 'string' ? e.message.slice(0, 300) : undefined };
      },
    },
  };
  return pino(opts, destination ?? stdoutDestination());
}

let stdout: pino.DestinationStream | undefined;

/**
 * stdout through sonic-boom, written synchronously (pino's default). The per-request lines do
 * not pay a write each: the request log gathers them and hands them over a chunk of ~32 KiB at
 * a time (ops/request-log.ts). Asynchronous writes were tried (issue 12) and measured worse
 * here: each went through libuv's thread pool at ~65 µs of CPU a write on these machines
 * (0.7 µs for the same 16 KiB written synchronously), and a flushSync at exit while one was in
 * flight could write lines out of order.
 */
function stdoutDestination(): pino.DestinationStream {
  if (stdout) return stdout;
  const dest = pino.destination({ dest: 1, sync: true });
  stdout = dest;
  return dest;
}
