// The configuration schema (SPEC section 3). The TypeScript types and the published
// config/authgate.schema.json both come from here, so they cannot drift apart.
import { Type, type Static, type TObject, type TProperties } from '@sinclair/typebox';

/** `30s`, `5m`, `12h`, `30d`, `250ms` or a number of seconds. Parse with util/duration.ts. */
export const Duration = Type.Union(
  [Type.String({ pattern: '^[0-9]+(\\.[0-9]+)?(ms|s|m|h|d)$' }), Type.Number({ minimum: 0 })],
  { description: 'A duration: 30s, 5m, 12h, 30d, 250ms, or a number of seconds', 'x-duration': true },
);
export type Duration = Static<typeof Duration>;

/** A secret: a literal string (may use ${VAR}) or `{ file: PATH }`, read and trimmed at load. */
export const Secret = Type.Union([Type.String({ minLength: 1 }), Type.Object({ file: Type.String({ minLength: 1 }) }, { additionalProperties: false })], {
  description: 'A secret value, or { file: PATH } to read it from a file',
  'x-secret': true,
});
export type Secret = Static<typeof Secret>;

const Strict = <T extends TProperties>(props: T, opts: Record<string, unknown> = {}): TObject<T> =>
  Type.Object(props, { additionalProperties: false, ...opts });

const HostPort = (host: string, port: number) =>
  Strict({ host: Type.String({ default: host }), port: Type.Integer({ minimum: 0, maximum: 65535, default: port }) });

const OriginPattern = Type.String({ pattern: '^https?://(\\*\\.)?[A-Za-z0-9.-]+(:[0-9]+)?$', description: 'scheme://host[:port]; the host may start with *.' });

export const ServerSchema = Strict({
  listen: Type.Optional(HostPort('127.0.0.1', 8080)),
  admin: Type.Optional(HostPort('127.0.0.1', 9090)),
  publicUrl: Type.Optional(Type.String({ pattern: '^https?://[^/?#]+/?$', description: 'Origin the gateway is reached at' })),
  prefix: Type.Optional(Type.String({ pattern: '^/[A-Za-z0-9._~-]+(/[A-Za-z0-9._~-]+)*$', default: '/.auth' })),
  trustedProxies: Type.Optional(Type.Array(Type.String({ description: 'IP address or CIDR' }))),
  allowedOrigins: Type.Optional(Type.Array(OriginPattern)),
  drainTimeout: Type.Optional(Duration),
  timeouts: Type.Optional(Strict({ connect: Type.Optional(Duration), upstream: Type.Optional(Duration) })),
  workers: Type.Optional(Type.Union([Type.Integer({ minimum: 1, maximum: 64 }), Type.Literal('auto')])),
  bodyLimit: Type.Optional(Type.Integer({ minimum: 1024, description: 'Bytes accepted in bodies the gateway reads itself' })),
  maxHeaderSize: Type.Optional(Type.Integer({ minimum: 4096, maximum: 1048576 })),
  logLevel: Type.Optional(Type.String({ enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] })),
  // How route matching reads paths, for upstreams that read them differently from Node/nginx.
  paths: Type.Optional(Strict({
    caseInsensitive: Type.Optional(Type.Boolean({ default: false, description: 'Match route paths ignoring case (upstreams that fold case: IIS, Spring, case-insensitive Express)' })),
    refuseMatrixParams: Type.Optional(Type.Boolean({ default: false, description: "Refuse paths containing ';' with 400 (upstreams that read ;params: Tomcat, Spring)" })),
  })),
});

/** A Redis Sentinel or Cluster node as host:port. */
const RedisNode = Type.String({ pattern: '^[^\\s:]+:[0-9]{1,5}$', description: 'host:port' });

export const StoreSchema = Strict({
  driver: Type.String({ enum: ['memory', 'sqlite', 'redis'], default: 'sqlite' }),
  sqlite: Type.Optional(Strict({ path: Type.String({ default: './data/authgate.db' }) })),
  redis: Type.Optional(
    Strict({
      url: Type.Optional(Secret),
      keyPrefix: Type.Optional(Type.String({ default: 'authgate:' })),
      // Redis Sentinel / Cluster (SPEC 8): exactly one of url, sentinels (+ name) or cluster.
      sentinels: Type.Optional(Type.Array(RedisNode, { minItems: 1, description: 'Sentinel addresses; the primary is looked up by `name`' })),
      name: Type.Optional(Type.String({ minLength: 1, description: 'The Sentinel master group name' })),
      cluster: Type.Optional(Type.Array(RedisNode, { minItems: 1, description: 'Redis Cluster seed nodes' })),
      password: Type.Optional(Secret),
    }),
  ),
  memory: Type.Optional(Strict({ maxEntries: Type.Optional(Type.Integer({ minimum: 100 })) })),
});

export const UsersSchema = Strict({
  file: Type.Optional(Type.String({ description: 'Users file (SPEC 3.1), reloaded on change' })),
  postgres: Type.Optional(
    Strict({
      url: Secret,
      preset: Type.String({ enum: ['django'], default: 'django' }),
      cacheTtl: Type.Optional(Duration),
    }),
  ),
});

/** Like Secret, but a `{ file }` that does not exist yet is kept (absolute) for the gateway to generate. */
export const GeneratedSecret = Type.Union([Type.String({ minLength: 1 }), Type.Object({ file: Type.String({ minLength: 1 }) }, { additionalProperties: false })], {
  description: 'A secret value, or { file: PATH } to read it from (generated there when the file is absent)',
  'x-secret': true,
  'x-generated-if-missing': true,
});

export const SigningKeySchema = Strict({
  kid: Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9._-]+$' }),
  alg: Type.String({ enum: ['EdDSA', 'ES256', 'RS256'] }),
  privateKey: GeneratedSecret,
});

export const IdentitySchema = Strict({
  headers: Type.Optional(
    Strict({
      user: Type.Optional(Type.String()),
      email: Type.Optional(Type.String()),
      groups: Type.Optional(Type.String()),
      scopes: Type.Optional(Type.String()),
      method: Type.Optional(Type.String()),
      mfa: Type.Optional(Type.String()),
    }),
  ),
  strip: Type.Optional(Type.Array(Type.String({ minLength: 1 }))),
  assertion: Type.Optional(Strict({ header: Type.Optional(Type.String()), ttl: Type.Optional(Duration) })),
});

export const LoginSchema = Strict({
  identifiers: Type.Optional(Type.Array(Type.String({ enum: ['username', 'email'] }), { minItems: 1 })),
  session: Type.Optional(
    Strict({
      cookie: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_.-]+$' })),
      idleTimeout: Type.Optional(Duration),
      absoluteTimeout: Type.Optional(Duration),
    }),
  ),
  allowedRedirects: Type.Optional(Type.Array(OriginPattern)),
  lockout: Type.Optional(
    Strict({
      maxFailures: Type.Optional(Type.Integer({ minimum: 1 })),
      maxFailuresPerAddress: Type.Optional(Type.Integer({ minimum: 1 })),
      window: Type.Optional(Duration),
      duration: Type.Optional(Duration),
    }),
  ),
  branding: Type.Optional(
    Strict({
      name: Type.Optional(Type.String({ maxLength: 80 })),
      logo: Type.Optional(Type.String({ description: 'Path to an SVG/PNG file (inlined) or a data: URL' })),
      color: Type.Optional(Type.String({ pattern: '^#[0-9A-Fa-f]{3}([0-9A-Fa-f]{3})?$' })),
    }),
  ),
});

const Algorithms = Type.Array(Type.String({ enum: ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] }), { minItems: 1 });

const authn = <K extends string, T extends TProperties>(type: K, props: T) => Strict({ type: Type.Literal(type), ...props });

export const AuthenticatorSchemas = {
  anonymous: authn('anonymous', {}),
  basic: authn('basic', { realm: Type.Optional(Type.String({ pattern: '^[^"\\\\\\r\\n]*$' })), cacheTtl: Type.Optional(Duration) }),
  session: authn('session', {}),
  token: authn('token', {
    // Django drop-in (SPEC 3.2): also DRF keys from authtoken_token; gateway tokens keep working.
    source: Type.Optional(Type.String({ enum: ['gateway', 'django'], default: 'gateway' })),
  }),
  jwt: authn('jwt', {
    // Required unless `preset: simplejwt` (config/checks.ts; SIMPLEJWT_SCHEMA_NOTE).
    issuer: Type.String({ minLength: 1, description: "'self' for the gateway's own tokens, else the issuer URL (simplejwt: its ISSUER setting, optional)" }),
    audience: Type.Optional(Type.Union([Type.String(), Type.Array(Type.String(), { minItems: 1 })])),
    jwksUri: Type.Optional(Type.String({ pattern: '^https?://' })),
    publicKeys: Type.Optional(Type.Array(Secret, { minItems: 1 })),
    algorithms: Type.Optional(Algorithms),
    claims: Type.Optional(
      Strict({
        username: Type.Optional(Type.String()),
        email: Type.Optional(Type.String()),
        groups: Type.Optional(Type.String()),
        scopes: Type.Optional(Type.String()),
      }),
    ),
    clockTolerance: Type.Optional(Duration),
    maxAge: Type.Optional(Duration),
    types: Type.Optional(Type.Array(Type.String(), { description: 'Accepted `typ` header values, e.g. at+jwt' })),
    jwksRefreshInterval: Type.Optional(Duration),
    // Django drop-in (SPEC 3.2): djangorestframework-simplejwt access tokens, HS256 only.
    preset: Type.Optional(Type.String({ enum: ['simplejwt'] })),
    secret: Type.Optional(Secret),
    userIdClaim: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: "simplejwt's USER_ID_CLAIM (default user_id)" })),
  }),
  apikey: authn('apikey', {
    header: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9-]+$' })),
    queryParam: Type.Optional(Type.String({ description: 'Also accept the key in this query parameter (off unless set)' })),
    keys: Type.Optional(
      Type.Array(
        Strict({
          id: Type.String({ minLength: 1 }),
          hash: Type.String({ pattern: '^sha256:[0-9a-fA-F]{64}$' }),
          user: Type.String({ minLength: 1 }),
          email: Type.Optional(Type.String()),
          groups: Type.Optional(Type.Array(Type.String())),
          scopes: Type.Optional(Type.Array(Type.String())),
        }),
      ),
    ),
  }),
  introspection: authn('introspection', {
    endpoint: Type.String({ pattern: '^https?://' }),
    clientId: Type.String({ minLength: 1 }),
    clientSecret: Secret,
    cacheTtl: Type.Optional(Duration),
    timeout: Type.Optional(Duration),
    audience: Type.Optional(Type.String()),
  }),
  oidc: authn('oidc', {
    provider: Type.String({ enum: ['oidc', 'github'], default: 'oidc' }),
    issuer: Type.Optional(Type.String({ pattern: '^https?://' })),
    clientId: Type.String({ minLength: 1 }),
    clientSecret: Type.Optional(Secret),
    scopes: Type.Optional(Type.Array(Type.String())),
    allowedDomains: Type.Optional(Type.Array(Type.String())),
    allowedOrgs: Type.Optional(Type.Array(Type.String())),
    label: Type.Optional(Type.String({ maxLength: 60 })),
    // OIDC / SSO (issue 10): presets, client auth, who may sign in, sessions and logout.
    preset: Type.Optional(Type.String({ enum: ['google', 'entra', 'keycloak', 'gitlab', 'auth0', 'okta'], description: 'Provider defaults (issuer, scopes, claims)' })),
    tenant: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9.-]+$', description: "entra: tenant id or domain, or 'common' / 'organizations' (multi-tenant)" })),
    authority: Type.Optional(Type.String({ pattern: '^https://[^/?#]+$', description: 'entra: authority host (sovereign clouds); default https://login.microsoftonline.com' })),
    allowedTenants: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { description: 'entra: tenant ids (tid) accepted by a multi-tenant app' })),
    clientAuth: Type.Optional(Type.String({ enum: ['client_secret_basic', 'client_secret_post', 'private_key_jwt'] })),
    privateKey: Type.Optional(Secret),
    claims: Type.Optional(
      Strict({
        username: Type.Optional(Type.String()),
        email: Type.Optional(Type.String()),
        groups: Type.Optional(Type.String()),
      }),
    ),
    allowedGroups: Type.Optional(Type.Array(Type.String())),
    allowedTeams: Type.Optional(Type.Array(Type.String({ pattern: '^[^/]+/[^/]+$', description: 'org/team-slug' }))),
    linkUsers: Type.Optional(Type.String({ enum: ['email'], description: 'Sign in as the local user with this verified email (off unless set)' })),
    trustProviderMfa: Type.Optional(Type.Boolean()),
    rpInitiatedLogout: Type.Optional(Type.Boolean()),
    icon: Type.Optional(Type.String({ pattern: '^data:image/(svg\\+xml|png);base64,[A-Za-z0-9+/=]+$', description: 'Button icon as a data: URL' })),
    baseUrl: Type.Optional(Type.String({ pattern: '^https?://' })),
    apiUrl: Type.Optional(Type.String({ pattern: '^https?://' })),
    timeout: Type.Optional(Duration),
    jwksRefreshInterval: Type.Optional(Duration),
  }),
  plugin: authn('plugin', {
    module: Type.String({ minLength: 1, description: 'Path relative to the config file' }),
    options: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  }),
  // Django drop-in (SPEC 3.2): a running Django site's session cookie.
  'django-session': authn('django-session', {
    cookie: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_.-]+$', description: "Django's SESSION_COOKIE_NAME (default sessionid)" })),
  }),
};

// `issuer` stays in the TypeScript type (jwt.ts always gets one) but not in the JSON schema's
// `required`: a simplejwt preset has none, and the registry routes it to simplejwt.ts instead.
(AuthenticatorSchemas.jwt as { required?: string[] }).required = AuthenticatorSchemas.jwt.required?.filter((k) => k !== 'issuer');

export type AuthenticatorType = keyof typeof AuthenticatorSchemas;
export type AuthenticatorConfigOf<T extends AuthenticatorType> = Static<(typeof AuthenticatorSchemas)[T]>;
export type AuthenticatorConfig = { [K in AuthenticatorType]: AuthenticatorConfigOf<K> }[AuthenticatorType];

/** oneOf + discriminator on `type`, so ajv reports one clear error for a bad authenticator. */
const AuthenticatorSchema = Type.Unsafe<AuthenticatorConfig>({
  type: 'object',
  discriminator: { propertyName: 'type' },
  required: ['type'],
  // Declared here too (ajv strictRequired), and it turns an unknown type into one enum error.
  properties: { type: { type: 'string', enum: Object.keys(AuthenticatorSchemas) } },
  oneOf: Object.values(AuthenticatorSchemas),
});

/** A route's CORS policy (SPEC 3): preflights answered by the gateway, or `passthrough` to the upstream. */
export const CorsSchema = Type.Union([
  Type.Literal('passthrough', { description: 'Forward preflights to the upstream unauthenticated' }),
  Strict({
    origins: Type.Array(OriginPattern, { minItems: 1, description: 'Origins allowed to call this route (scheme://host[:port]; the host may start with *.)' }),
    methods: Type.Optional(Type.Array(Type.String({ pattern: '^[A-Z]+$' }), { minItems: 1, description: 'Default: the route\'s match.methods, else GET, HEAD, POST' })),
    headers: Type.Optional(Type.Array(Type.String({ pattern: "^[A-Za-z0-9!#$%&'*+.^_`|~-]+$" }), { description: 'Request headers a cross-origin caller may send' })),
    credentials: Type.Optional(Type.Boolean({ description: 'Allow cookies and Authorization (Access-Control-Allow-Credentials)' })),
    maxAge: Type.Optional(Duration),
  }),
]);

export const RouteSchema = Strict({
  name: Type.String({ minLength: 1, pattern: '^[A-Za-z0-9._-]+$' }),
  match: Strict({
    host: Type.Optional(Type.String({ pattern: '^(\\*\\.)?[A-Za-z0-9.-]+(:[0-9]+)?$' })),
    path: Type.String({ pattern: '^/' }),
    methods: Type.Optional(Type.Array(Type.String({ pattern: '^[A-Z]+$' }), { minItems: 1 })),
  }),
  upstream: Type.Union([Type.String({ pattern: '^https?://' }), Type.Array(Type.String({ pattern: '^https?://' }), { minItems: 1 })]),
  auth: Type.Union([Type.Literal('anonymous'), Type.Array(Type.String({ minLength: 1 }), { minItems: 1 })]),
  require: Type.Optional(
    Strict({
      groups: Type.Optional(Type.Array(Type.String())),
      scopes: Type.Optional(Type.Array(Type.String())),
      mfa: Type.Optional(Type.Boolean()),
      maxAge: Type.Optional(Duration),
    }),
  ),
  onUnauthenticated: Type.Optional(Type.String({ enum: ['challenge', 'login'] })),
  stripPath: Type.Optional(Type.String({ pattern: '^/' })),
  websocket: Type.Optional(Type.Boolean()),
  passCredentials: Type.Optional(Type.Boolean({ description: 'Forward the consumed credential (Authorization, API key, session cookie) upstream' })),
  timeout: Type.Optional(Duration),
  cors: Type.Optional(CorsSchema),
});

export const ConfigSchema = Strict(
  {
    $schema: Type.Optional(Type.String()),
    server: Type.Optional(ServerSchema),
    secrets: Type.Optional(
      Strict({
        session: Type.Optional(Type.Union([Secret, Type.Array(Secret, { minItems: 1 })])),
        // MFA: key for TOTP secrets and WebAuthn credentials at rest (>= 32 bytes; generated and kept in the store when absent).
        mfa: Type.Optional(Secret),
      }),
    ),
    store: Type.Optional(StoreSchema),
    users: Type.Optional(UsersSchema),
    signing: Type.Optional(Strict({ keys: Type.Array(SigningKeySchema, { minItems: 1 }) })),
    identity: Type.Optional(IdentitySchema),
    login: Type.Optional(LoginSchema),
    authenticators: Type.Optional(Type.Record(Type.String({ pattern: '^[A-Za-z0-9._-]+$' }), AuthenticatorSchema, { additionalProperties: false })),
    mfa: Type.Optional(
      Strict({
        totp: Type.Optional(Strict({ issuer: Type.Optional(Type.String()), window: Type.Optional(Type.Integer({ minimum: 0, maximum: 1 })) })),
        email: Type.Optional(Strict({ smtp: Secret, from: Type.String(), codeTtl: Type.Optional(Duration), sendCooldown: Type.Optional(Duration) })),
        recoveryCodes: Type.Optional(Type.Integer({ minimum: 0, maximum: 50 })),
        // MFA: WebAuthn (passkeys, security keys); rpId and origin always derive from server.publicUrl.
        webauthn: Type.Optional(
          Strict({
            rpName: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
            userVerification: Type.Optional(Type.String({ enum: ['required', 'preferred', 'discouraged'] })),
          }),
        ),
        passkeyLogin: Type.Optional(Type.Boolean({ description: 'The login page also offers a password-less sign-in with a passkey' })),
      }),
    ),
    tokens: Type.Optional(
      Strict({
        prefix: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_]{2,16}$' })),
        defaultTtl: Type.Optional(Duration),
        // Scopes a user may put on their own tokens (POST /tokens), by group; default none. The admin CLI may grant any.
        grantableScopes: Type.Optional(
          Type.Record(Type.String({ minLength: 1 }), Type.Array(Type.String({ pattern: '^[\\x21\\x23-\\x5B\\x5D-\\x7E]{1,64}$' })), {
            description: 'scopes a user may put on their own API tokens, by group (default: none)',
          }),
        ),
      }),
    ),
    jwt: Type.Optional(
      Strict({
        accessTtl: Type.Optional(Duration),
        refreshTtl: Type.Optional(Duration),
        rotateRefresh: Type.Optional(Type.Boolean()),
        reuseGrace: Type.Optional(Duration),
      }),
    ),
    oauth: Type.Optional(
      Strict({
        clients: Type.Array(
          Strict({
            id: Type.String({ minLength: 1 }),
            secretHash: Type.String({ minLength: 1 }),
            scopes: Type.Optional(Type.Array(Type.String())),
            tokenTtl: Type.Optional(Duration),
          }),
        ),
      }),
    ),
    // Django drop-in (SPEC 3.2): settings.SECRET_KEY, or a list whose rest is SECRET_KEY_FALLBACKS.
    django: Type.Optional(Strict({ secretKey: Type.Union([Secret, Type.Array(Secret, { minItems: 1 })]) })),
    routes: Type.Array(RouteSchema),
    audit: Type.Optional(
      Strict({
        destination: Type.String({ minLength: 1, description: 'stdout, stderr, or a file path (relative to the config file); default: the main log' }),
      }),
    ),
  },
  { $id: 'https://authgate.dev/schema/authgate.schema.json', title: 'authgate configuration' },
);

export type Config = Static<typeof ConfigSchema>;
export type RouteConfig = Static<typeof RouteSchema>;
export type CorsConfig = Static<typeof CorsSchema>;
export type ServerConfig = Static<typeof ServerSchema>;
export type StoreConfig = Static<typeof StoreSchema>;
export type LoginConfig = Static<typeof LoginSchema>;
export type IdentityConfig = Static<typeof IdentitySchema>;
