// The gateway's own endpoints (SPEC 6), each a Fastify plugin registered under `server.prefix`.
import type { FastifyInstance } from 'fastify';
import type { Runtime } from '../runtime.js';
import jwtEndpoints from './jwt.js';
import jwksEndpoints from './jwks.js';
import tokenEndpoints from './tokens.js';
import oauthEndpoints from './oauth.js';
import loginEndpoints from './login.js';
import meEndpoints from './me.js';
import sessionEndpoints from './sessions.js';
import accountEndpoints from './account.js';
import oidcEndpoints from './oidc.js';
import mfaEndpoints from './mfa.js';

export type EndpointPlugin = (app: FastifyInstance, rt: Runtime) => Promise<void>;

export const ENDPOINT_PLUGINS: EndpointPlugin[] = [
  jwtEndpoints,
  jwksEndpoints,
  tokenEndpoints,
  oauthEndpoints,
  loginEndpoints,
  meEndpoints,
  sessionEndpoints,
  accountEndpoints,
  oidcEndpoints,
  mfaEndpoints,
];
