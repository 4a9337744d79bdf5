// The configuration schema (SPEC section 3). The TypeScript types and the published
// config/authgate.schema.json both come from here, so they cannot drift apart.
import { Type, type Static, type TSchema, type TObject, type TProperties } from '@sinclair/typebox';

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
});

export const StoreSchema = Strict({
  driver: Type.String({ enum: ['memory', 'sqlite', 'redis'], default: 'sqlite' }),
  sqlite: Type.Optional(Strict({ path: Type.String({ default: './data/authgate.db' }) })),
  redis: Type.Optional(Strict({ url: Secret, keyPrefix: Type.Optional(Type.String({ default: 'authgate:' })) })),
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
  token: authn('token', {}),
  jwt: authn('jwt', {
    issuer: Type.String({ minLength: 1, description: "'self' for the gateway's own tokens, else the issuer URL" }),
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
    clientSecret: Secret,
    scopes: Type.Optional(Type.Array(Type.String())),
    allowedDomains: Type.Optional(Type.Array(Type.String())),
    allowedOrgs: Type.Optional(Type.Array(Type.String())),
    label: Type.Optional(Type.String({ maxLength: 60 })),
  }),
  plugin: authn('plugin', {
    module: Type.String({ minLength: 1, description: 'Path relative to the config file' }),
    options: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  }),
};

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
    tokens: Type.Optional(Strict({ prefix: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_]{2,16}$' })), defaultTtl: Type.Optional(Duration) })),
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
    routes: Type.Array(RouteSchema),
  },
  { $id: 'https://authgate.dev/schema/authgate.schema.json', title: 'authgate configuration' },
);

export type Config = Static<typeof ConfigSchema>;
export type RouteConfig = Static<typeof RouteSchema>;
export type ServerConfig = Static<typeof ServerSchema>;
export type StoreConfig = Static<typeof StoreSchema>;
export type UsersConfig = Static<typeof UsersSchema>;
export type SigningKeyConfig = Static<typeof SigningKeySchema>;
export type LoginConfig = Static<typeof LoginSchema>;
export type IdentityConfig = Static<typeof IdentitySchema>;
export type AnySchema = TSchema;
