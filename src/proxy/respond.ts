// Answers the fast path writes itself (no Fastify reply): problem+json (SPEC 5) and the
// browser redirect to the login page, with the same headers sendProblem gives.
import type { ServerResponse } from 'node:http';
import { problemBody, type ErrorCode } from '../errors.js';

export function writeProblem(res: ServerResponse, code: ErrorCode, detail?: string, headers?: Record<string, string>): void {
  if (res.headersSent) { res.destroy(); return; }
  const p = problemBody(code, detail);
  const body = JSON.stringify(p);
  res.statusCode = p.status;
  res.setHeader('content-type', 'application/problem+json; charset=utf-8');
  res.setHeader('cache-control', 'no-store');
  res.setHeader('content-length', Buffer.byteLength(body));
  if (headers) for (const k in headers) res.setHeader(k, headers[k] as string);
  res.end(body);
}

export function writeRedirect(res: ServerResponse, location: string): void {
  res.statusCode = 302;
  res.setHeader('location', location);
  res.setHeader('cache-control', 'no-store');
  res.setHeader('content-length', 0);
  res.end();
}

/** What @fastify/cookie's reply.clearCookie(name, { path: '/' }) sends. */
export function clearCookieHeader(name: string): string {
  return `${name}=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT`;
}
