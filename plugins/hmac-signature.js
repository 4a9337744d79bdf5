// @ts-check
// HMAC request signatures for webhooks (GitHub style), as an authgate plugin authenticator.
//
//   X-Signature-Timestamp: <unix seconds>
//   X-Hub-Signature-256:   sha256=<hex HMAC-SHA256(secret, `${timestamp}.${raw body}`)>
//
// Mine: a request carrying the signature header. The signature must match (constant-time), the
// timestamp must be within `toleranceSeconds` of now, and each signature is accepted once:
// it is recorded in the gateway's store until it could no longer pass the timestamp check, so
// a replay is refused on every gateway instance that shares the store (redis).
//
// Config:
//   hook: { type: plugin, module: ./plugins/hmac-signature,
//           options: { secret: ${HOOK_SECRET}, user: github, groups: [webhooks] } }
//
// Sender side (e.g. a shell script):
//   ts=$(date +%s); sig=$(printf '%s.%s' "$ts" "$body" | openssl dgst -sha256 -hmac "$SECRET" -r | cut -d' ' -f1)
//   curl -H "X-Signature-Timestamp: $ts" -H "X-Hub-Signature-256: sha256=$sig" --data-binary "$body" ...
import { createHmac, timingSafeEqual } from 'node:crypto';

const SIGNATURE = /^sha256=([0-9a-fA-F]{64})$/;
const TIMESTAMP = /^[0-9]{1,12}$/;

/**
 * @typedef {import('../src/pipeline/authenticators/plugin.js').PluginDefinition} PluginDefinition
 * @typedef {import('../src/pipeline/authenticators/plugin.js').PluginContext} PluginContext
 * @typedef {import('../src/pipeline/types.js').AuthRequest} AuthRequest
 * @typedef {{ secret: string, user: string, email?: string, groups: string[], scopes: string[],
 *   signatureHeader: string, timestampHeader: string, toleranceSeconds: number }} HmacOptions
 */

/** @param {string | string[] | undefined} value @returns {string | undefined | 'duplicate'} */
function single(value) {
  if (value === undefined) return undefined;
  if (Array.isArray(value)) return value.length === 1 ? value[0] : 'duplicate';
  // Node joins repeated unknown headers with ", "; neither value ever contains a comma.
  return value.includes(',') ? 'duplicate' : value;
}

/** @type {PluginDefinition} */
const plugin = {
  type: 'hmac-signature',
  needsBody: true,
  optionsSchema: {
    type: 'object',
    additionalProperties: false,
    required: ['secret'],
    properties: {
      secret: { type: 'string', minLength: 16, description: 'Shared HMAC key (at least 16 characters)' },
      user: { type: 'string', minLength: 1, default: 'webhook' },
      email: { type: 'string' },
      groups: { type: 'array', items: { type: 'string', minLength: 1 }, default: [] },
      scopes: { type: 'array', items: { type: 'string', minLength: 1 }, default: [] },
      signatureHeader: { type: 'string', pattern: '^[A-Za-z0-9-]+$', default: 'X-Hub-Signature-256' },
      timestampHeader: { type: 'string', pattern: '^[A-Za-z0-9-]+$', default: 'X-Signature-Timestamp' },
      toleranceSeconds: { type: 'integer', minimum: 1, maximum: 3600, default: 300 },
    },
  },

  create(rawOptions, ctx) {
    const options = /** @type {HmacOptions} */ (/** @type {unknown} */ (rawOptions));
    const { NOT_MINE, authenticated, rejected } = ctx.results;
    const key = Buffer.from(options.secret, 'utf8');
    const signatureHeader = options.signatureHeader.toLowerCase();
    const timestampHeader = options.timestampHeader.toLowerCase();
    const tolerance = options.toleranceSeconds;
    const seenPrefix = `plugin:hmac:${ctx.name}:seen:`;

    return {
      needsBody: true,
      /** @param {AuthRequest} request */
      async authenticate(request) {
        const signature = single(request.headers[signatureHeader]);
        if (signature === undefined) return NOT_MINE;
        if (signature === 'duplicate') return rejected('bad_request', 'Duplicate signature headers.');
        const match = SIGNATURE.exec(signature);
        if (!match) return rejected('invalid_credentials', 'Malformed request signature.');
        const timestamp = single(request.headers[timestampHeader]);
        if (timestamp === undefined || timestamp === 'duplicate' || !TIMESTAMP.test(timestamp)) {
          return rejected('invalid_credentials', 'Missing or malformed signature timestamp.');
        }
        const ts = Number(timestamp);
        const now = Math.floor(Date.now() / 1000);
        if (Math.abs(now - ts) > tolerance) return rejected('invalid_credentials', 'The signature timestamp is too old or in the future.');

        const presented = Buffer.from(/** @type {string} */ (match[1]), 'hex');
        const expected = createHmac('sha256', key).update(`${timestamp}.`).update(request.body ?? Buffer.alloc(0)).digest();
        if (presented.length !== expected.length || !timingSafeEqual(presented, expected)) {
          return rejected('invalid_credentials', 'The request signature does not match.');
        }
        // Single use: remembered until the timestamp check alone would refuse it. A store
        // failure throws, and the gateway fails closed (503).
        const ttlMs = (ts + tolerance - now + 1) * 1000;
        const first = await ctx.store.setIfAbsent(seenPrefix + expected.toString('hex'), String(ts), ttlMs);
        if (!first) return rejected('invalid_credentials', 'This signature was already used.');
        return authenticated({
          user: options.user,
          email: options.email,
          groups: options.groups,
          scopes: options.scopes,
          amr: ['key'],
          authTime: now,
        });
      },
    };
  },
};

export default plugin;
