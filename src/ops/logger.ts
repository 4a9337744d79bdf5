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
  return pino(opts, destination ?? asyncStdout());
}

let stdout: pino.DestinationStream | undefined;

/**
 * stdout written asynchronously (sonic-boom): a log line costs the request a string append,
 * not a write(2) (issue 12). Whatever is still buffered is written out synchronously when the
 * process exits (SIGTERM and SIGINT end in process.exit after draining, see gateway.ts).
 */
function asyncStdout(): pino.DestinationStream {
  if (stdout) return stdout;
  const dest = pino.destination({ dest: 1, sync: false });
  process.once('exit', () => { try { dest.flushSync(); } catch { /* stdout already closed */ } });
  stdout = dest;
  return dest;
}
