// GET {prefix}/verify: the forward-auth decision for nginx auth_request, Traefik ForwardAuth and
// Caddy forward_auth (SPEC 6, THREATS K). On the fast path: answered from the raw request
// without Fastify, since it is the forward-auth deployments' per-request hot path.
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { REFUSED_METHODS, type Decision, type Route } from '../pipeline/decide.js';
import { clientInfo, isPublicHost, normalizeHost } from '../proxy/client-info.js';
import { hasAmbiguousCredentials } from '../proxy/forward-headers.js';
import { rawAuthRequest, type FastPathDeps } from '../proxy/request.js';
import { writeProblem, writeRedirect } from '../proxy/respond.js';

interface DescribedRequest { method: string; uri: string; host: string | undefined; proto: string | undefined }

const NOT_DESCRIBED = 'The original request is not described.';

/**
 * The original request as the proxy describes it (SPEC 6): exactly one of the two header sets,
 * with a method. A proxy overwrites only the set it uses and passes the client's own headers on,
 * so a request carrying members of both sets (or no method) is refused: otherwise a client adds
 * `X-Forwarded-Uri: /public/x` beside nginx's `X-Original-URL`, or drops the method to turn a
 * cross-site POST into a GET (issue 9 item 2). A string is the refusal's detail.
 */
export function describedRequest(h: IncomingHttpHeaders): DescribedRequest | string {
  const one = (v: string | string[] | undefined): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
  const forwarded = h['x-forwarded-method'] !== undefined || h['x-forwarded-uri'] !== undefined || h['x-forwarded-host'] !== undefined || h['x-forwarded-proto'] !== undefined;
  const original = h['x-original-url'] !== undefined || h['x-original-method'] !== undefined;
  if (forwarded && original) return 'The original request is described by both X-Forwarded-* and X-Original-* headers.';
  const method = (forwarded ? one(h['x-forwarded-method']) : one(h['x-original-method']))?.toUpperCase();
  if (method === undefined || !/^[A-Z]+$/.test(method) || REFUSED_METHODS.has(method)) return NOT_DESCRIBED;
  if (forwarded) {
    const uri = one(h['x-forwarded-uri']);
    const host = one(h['x-forwarded-host']);
    if (uri === undefined || host === undefined) return NOT_DESCRIBED;
    return { method, uri, host, proto: one(h['x-forwarded-proto']) };
  }
  const url = one(h['x-original-url']);
  if (url === undefined) return NOT_DESCRIBED;
  if (!/^https?:\/\//i.test(url)) return { method, uri: url, host: undefined, proto: undefined };
  try { new URL(url); } catch { return 'X-Original-URL is malformed.'; }
  // Host and path come from the same reading: a plain authority only (no userinfo, no '?'/'#' before the path).
  const start = url.indexOf('//') + 2;
  const slash = url.indexOf('/', start);
  const authority = slash === -1 ? url.slice(start) : url.slice(start, slash);
  if (!/^([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?$/.test(authority)) return 'X-Original-URL is malformed.';
  return { method, uri: slash === -1 ? '/' : url.slice(slash), host: authority, proto: url.slice(0, url.indexOf(':')).toLowerCase() };
}

export interface VerifyOutcome {
  ip?: string | undefined;
  /** Route name for the request log and metrics ('-' when none matched). */
  route: string;
  authenticator: string | undefined;
  user: string | undefined;
}

/** Answers one GET/HEAD {prefix}/verify on the raw response; synchronously when the chain is warm. */
export function answerVerify(deps: FastPathDeps, req: IncomingMessage, res: ServerResponse): VerifyOutcome | Promise<VerifyOutcome> {
  const out: VerifyOutcome = { route: '-', authenticator: undefined, user: undefined };
  res.setHeader('cache-control', 'no-store');
  const client = clientInfo(deps.trust, req);
  out.ip = client.ip;
  // Only a configured proxy may describe the original request (THREATS 81).
  if (!client.trusted) { writeProblem(res, 'forbidden', 'Forward-auth is only answered to trusted proxies.'); return out; }
  const h = req.headers;
  const described = describedRequest(h);
  if (typeof described === 'string') { writeProblem(res, 'bad_request', described); return out; }
  const { method, uri, proto } = described;
  const host = normalizeHost(described.host ?? h.host ?? '');
  if (host === '') { writeProblem(res, 'bad_request', NOT_DESCRIBED); return out; }
  const target = deps.decider.normalize(uri);
  if (!target.ok) { writeProblem(res, 'bad_path'); return out; }
  const route = deps.decider.match(host, target.path, method);
  if (route === undefined) { writeProblem(res, 'no_route'); return out; }
  out.route = route.name;
  if (!route.data.anonymous && hasAmbiguousCredentials(req.rawHeaders, h, target.query)) { writeProblem(res, 'bad_request', 'The request carries more than one credential.'); return out; }
  const authReq = rawAuthRequest(req, res, { method, path: target.path, query: target.query, host, client, peer: client.ip }, deps.log);
  const originalUrl = isPublicHost(host, deps.ctx.publicUrl.host.toLowerCase()) ? uri : `${proto === 'https' ? 'https' : 'http'}://${host}${uri}`;
  const decision = deps.decider.decide(route, authReq, originalUrl);
  if (decision instanceof Promise) return decision.then((d) => answerDecision(deps, res, route, d, out));
  return answerDecision(deps, res, route, decision, out);
}

function answerDecision(deps: FastPathDeps, res: ServerResponse, route: Route, decision: Decision, out: VerifyOutcome): VerifyOutcome {
  out.authenticator = decision.authenticator;
  out.user = decision.identity?.user;
  if (decision.kind === 'deny') {
    deps.metrics.authOutcomes.inc(decision.authenticator ?? 'none', decision.code);
    if (decision.redirect) writeRedirect(res, decision.redirect);
    else writeProblem(res, decision.code, decision.detail, decision.headers);
    return out;
  }
  deps.metrics.authOutcomes.inc(decision.authenticator, 'ok');
  if (decision.identity) {
    const headers: Record<string, string> = {};
    deps.identityHeaders.apply(headers, decision.identity);
    if (deps.assertion) headers[deps.identityHeaders.assertionHeader as string] = deps.assertion.assertionFor(decision.identity, route.name);
    for (const k in headers) res.setHeader(k, headers[k] as string);
  }
  res.statusCode = 200;
  res.setHeader('content-length', 0);
  res.end();
  return out;
}
