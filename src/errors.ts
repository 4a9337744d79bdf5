// The one catalogue of problem+json error codes (SPEC section 5). Every failure response the
// gateway itself produces goes through `sendProblem`, so a code always maps to one status.
import type { FastifyReply } from 'fastify';

export const ERROR_CATALOGUE = {
  unauthenticated: { status: 401, title: 'Unauthorized' },
  invalid_credentials: { status: 401, title: 'Unauthorized' },
  invalid_token: { status: 401, title: 'Unauthorized' },
  token_expired: { status: 401, title: 'Unauthorized' },
  token_revoked: { status: 401, title: 'Unauthorized' },
  forbidden: { status: 403, title: 'Forbidden' },
  mfa_required: { status: 403, title: 'Forbidden' },
  reauth_required: { status: 403, title: 'Forbidden' },
  csrf: { status: 403, title: 'Forbidden' },
  locked: { status: 429, title: 'Too Many Requests' },
  bad_path: { status: 400, title: 'Bad Request' },
  no_route: { status: 404, title: 'Not Found' },
  bad_request: { status: 400, title: 'Bad Request' },
  upstream_unavailable: { status: 502, title: 'Bad Gateway' },
  upstream_timeout: { status: 504, title: 'Gateway Timeout' },
  store_unavailable: { status: 503, title: 'Service Unavailable' },
  // Extensions (compatible additions to SPEC 5).
  not_found: { status: 404, title: 'Not Found' },
  method_not_allowed: { status: 405, title: 'Method Not Allowed' },
  payload_too_large: { status: 413, title: 'Content Too Large' },
  unsupported_media_type: { status: 415, title: 'Unsupported Media Type' },
  headers_too_large: { status: 431, title: 'Request Header Fields Too Large' },
  service_unavailable: { status: 503, title: 'Service Unavailable' },
  internal: { status: 500, title: 'Internal Server Error' },
} as const satisfies Record<string, { status: number; title: string }>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

export const DEFAULT_DETAIL: Partial<Record<ErrorCode, string>> = {
  unauthenticated: 'Authentication is required.',
  invalid_credentials: 'The credentials are not valid.',
  invalid_token: 'The token is not valid.',
  token_expired: 'The token has expired.',
  token_revoked: 'The token has been revoked.',
  forbidden: 'You are not allowed to access this resource.',
  mfa_required: 'A second factor is required.',
  reauth_required: 'Please sign in again.',
  csrf: 'Cross-site request refused.',
  locked: 'Too many failed attempts; try again later.',
  bad_path: 'The request path is not acceptable.',
  no_route: 'No route matches this request.',
  bad_request: 'The request is malformed.',
  upstream_unavailable: 'The upstream service is unavailable.',
  upstream_timeout: 'The upstream service did not answer in time.',
  store_unavailable: 'The state store is unavailable.',
  internal: 'An internal error occurred.',
};

/** An error that maps to a problem+json response. `detail` must never contain a secret. */
export class GatewayError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly detail: string;
  readonly headers: Record<string, string> | undefined;
  constructor(code: ErrorCode, detail?: string, headers?: Record<string, string>) {
    super(detail ?? DEFAULT_DETAIL[code] ?? ERROR_CATALOGUE[code].title);
    this.name = 'GatewayError';
    this.code = code;
    this.status = ERROR_CATALOGUE[code].status;
    this.detail = detail ?? DEFAULT_DETAIL[code] ?? ERROR_CATALOGUE[code].title;
    this.headers = headers;
  }
}

/** Thrown by every store driver when the backing store cannot be reached (fail closed). */
export class StoreUnavailableError extends GatewayError {
  constructor(detail = 'The state store is unavailable.') {
    super('store_unavailable', detail);
    this.name = 'StoreUnavailableError';
  }
}

export interface ProblemBody {
  type: 'about:blank';
  title: string;
  status: number;
  code: ErrorCode;
  detail: string;
}

export function problemBody(code: ErrorCode, detail?: string): ProblemBody {
  const entry = ERROR_CATALOGUE[code];
  return { type: 'about:blank', title: entry.title, status: entry.status, code, detail: detail ?? DEFAULT_DETAIL[code] ?? entry.title };
}

export function sendProblem(
  reply: FastifyReply,
  code: ErrorCode,
  detail?: string,
  headers?: Record<string, string>,
): FastifyReply {
  const body = problemBody(code, detail);
  reply.code(body.status).header('content-type', 'application/problem+json; charset=utf-8').header('cache-control', 'no-store');
  if (headers) for (const [k, v] of Object.entries(headers)) reply.header(k, v);
  return reply.send(JSON.stringify(body));
}
