// A real OpenID Provider for tower-authx's resource-server tests: panva's
// oidc-provider over HTTPS on loopback, issuing RFC 9068 JWT access tokens
// with the client credentials grant for the resource a request names (RFC
// 8707); DPoP-bound (cnf.jkt) when the token request carries a DPoP proof.
//
// With CLIENT_CA (a PEM file), it asks token requests for an optional client
// certificate from that CA, and the client mtls-client gets certificate-bound
// tokens (RFC 8705, cnf.x5t#S256).
//
// Opaque access tokens (RFC 7662): the client opaque-client gets opaque
// tokens, which the resource server introspects as resource-server
// (client_secret_basic) or, when RS_JWKS_FILE names its public keys, as
// resource-server-jwt (private_key_jwt); revocation (RFC 7009) is on.
// Answers to resource-server are signed (RFC 9701) when asked for.
// GET /test/introspections counts the introspection requests answered.
// GET /test/id_token and /test/logout_token issue, as the provider issues
// them at a login and a back-channel logout, an ID token and a logout token
// for the client whose id is the resource itself (a client that is also the
// API): their `aud` is the resource's, and they must never pass as access
// tokens.
//
// Token exchange (RFC 8693) is registered through oidc-provider's
// registerGrantType: the client gateway exchanges an access token of this
// provider (subject_token) for one whose `aud` is the `audience` (or
// `resource`) asked for, with the subject's `sub`, the scope asked for (at
// most the subject token's) and, when an actor_token (an access token of this
// provider) comes too, `act: { sub: <its client_id> }` (nested over the
// subject token's own `act`). Its tokens live EXCHANGE_TTL seconds (default
// 300), at most as long as the subject token. GET /test/exchanges answers how
// many exchanges were asked for and the form parameters of the last one, as
// received. With a DPoP proof (RFC 9449: typ dpop+jwt, htm POST, htu the
// token endpoint, at most a minute old, and the nonce EXCHANGE_DPOP_NONCE when
// set, else 400 use_dpop_nonce with it), the token is bound to the proof's
// key (cnf.jkt) and its token_type is DPoP.
//
// Environment: PORT, TLS_CERT and TLS_KEY (PEM files), ALG (ES256 or RS256),
// KEYS_FILE (where to keep its signing keys: reused when present, so a restart
// keeps them; delete it to rotate), AUDIENCE (the resource).
// Prints "listening on https://127.0.0.1:PORT" when ready.

import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { createServer } from 'node:https';
import { generateKeyPairSync, randomUUID, X509Certificate } from 'node:crypto';
import Provider, { errors } from 'oidc-provider';
import {
  createLocalJWKSet, jwtVerify, SignJWT, importJWK, EmbeddedJWK, calculateJwkThumbprint,
} from 'jose';

const port = Number(process.env.PORT);
const alg = process.env.ALG || 'ES256';
const audience = process.env.AUDIENCE || 'https://api.example';
const issuer = `https://127.0.0.1:${port}`;

function signingKey() {
  const pair = alg === 'RS256'
    ? generateKeyPairSync('rsa', { modulusLength: 2048 })
    : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { ...pair.privateKey.export({ format: 'jwk' }), alg, use: 'sig', kid: randomUUID() };
}

const keysFile = process.env.KEYS_FILE;
let keys;
if (keysFile && existsSync(keysFile)) {
  keys = JSON.parse(readFileSync(keysFile, 'utf8'));
} else {
  keys = [signingKey()];
  if (keysFile) writeFileSync(keysFile, JSON.stringify(keys));
}

// Where each identity provider puts roles: the client `layout-<name>` gets
// tokens laid out as <name> does, so that one provider plays them all.
const LAYOUTS = {
  keycloak: {
    realm_access: { roles: ['staff', 'offline_access'] },
    resource_access: { 'my-app': { roles: ['admin'] }, account: { roles: ['manage-account'] } },
  },
  auth0: { permissions: ['staff', 'read:messages'] },
  entra: { roles: ['staff'], ver: '2.0' },
  okta: { groups: ['Everyone', 'staff'] },
  cognito: { 'cognito:groups': ['staff'], token_use: 'access' },
  authx: { roles: ['staff'] },
  wrongly_typed: { roles: ['staff', 7] },
};

// The test reads stdout until "listening on", then closes it: later notices
// must not take the provider down with EPIPE.
process.stdout.on('error', () => {});

const provider = new Provider(issuer, {
  jwks: { keys },
  // Every client's signed introspection answers in the provider's algorithm
  // (the default, RS256, is no algorithm of an EC provider).
  clientDefaults: {
    grant_types: ['authorization_code'],
    id_token_signed_response_alg: alg,
    introspection_signed_response_alg: alg,
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  },
  ttl: { ClientCredentials: Number(process.env.CLIENT_CREDENTIALS_TTL || 600) },
  clients: [{
    client_id: 'api-client',
    client_secret: 'api-secret',
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    scope: 'read admin:users mcp:tools mcp:admin orders:write',
    id_token_signed_response_alg: alg,
  }, {
    // A client that is also the API: its ID tokens name the resource in `aud`.
    client_id: audience,
    client_secret: 'api-self-secret',
    grant_types: [],
    redirect_uris: [],
    response_types: [],
    id_token_signed_response_alg: alg,
  }, {
    // A client whose id is a user's name (dynamic registration lets a
    // client choose its id): its tokens speak for a client, not the user.
    client_id: 'user1',
    client_secret: 'user1-secret',
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    scope: 'read',
    id_token_signed_response_alg: alg,
  }, {
    client_id: 'mtls-client',
    client_secret: 'mtls-secret',
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    scope: 'read',
    tls_client_certificate_bound_access_tokens: true,
    id_token_signed_response_alg: alg,
  }, {
    client_id: 'opaque-client',
    client_secret: 'opaque-secret',
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    scope: 'read admin:users',
    id_token_signed_response_alg: alg,
  }, {
    client_id: 'resource-server',
    client_secret: 'rs-secret',
    grant_types: [],
    redirect_uris: [],
    response_types: [],
    id_token_signed_response_alg: alg,
  }, {
    client_id: 'gateway',
    client_secret: 'gateway-secret',
    grant_types: ['client_credentials', 'urn:ietf:params:oauth:grant-type:token-exchange'],
    redirect_uris: [],
    response_types: [],
    scope: 'read orders:write',
    id_token_signed_response_alg: alg,
  }, ...(process.env.RS_JWKS_FILE ? [{
    client_id: 'resource-server-jwt',
    token_endpoint_auth_method: 'private_key_jwt',
    token_endpoint_auth_signing_alg: 'ES256',
    jwks: JSON.parse(readFileSync(process.env.RS_JWKS_FILE, 'utf8')),
    grant_types: [],
    redirect_uris: [],
    response_types: [],
    id_token_signed_response_alg: alg,
  }] : []), ...Object.keys(LAYOUTS).map((layout) => ({
    client_id: `layout-${layout}`,
    client_secret: 'layout-secret',
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    scope: 'read orders:write',
    id_token_signed_response_alg: alg,
  }))],
  scopes: ['read', 'admin:users', 'mcp:tools', 'mcp:admin', 'orders:write'],
  extraTokenClaims: (ctx, token) => LAYOUTS[token.clientId?.replace(/^layout-/, '')],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    // Any authenticated client may introspect (the resource servers here).
    introspection: { enabled: true, allowedPolicy: () => true },
    revocation: { enabled: true },
    jwtIntrospection: { enabled: true },
    dPoP: { enabled: true },
    mTLS: {
      enabled: true,
      certificateBoundAccessTokens: true,
      getCertificate(ctx) {
        const peer = ctx.socket.getPeerCertificate?.();
        return peer?.raw ? new X509Certificate(peer.raw) : undefined;
      },
    },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => audience,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resource, client) => ({
        scope: 'read admin:users mcp:tools mcp:admin orders:write',
        audience: resource,
        accessTokenFormat: client.clientId === 'opaque-client' ? 'opaque' : 'jwt',
        jwt: { sign: { alg } },
      }),
    },
  },
});
// Loopback only, over HTTPS made by the test.
provider.proxy = false;

const EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';
const exchangeTtl = Number(process.env.EXCHANGE_TTL || 300);
const publicKeys = createLocalJWKSet({
  keys: keys.map(({ d, p, q, dp, dq, qi, ...pub }) => pub),
});
const exchanges = { count: 0, last: null };
async function ourAccessToken(token, what) {
  try {
    const { payload } = await jwtVerify(token, publicKeys, { issuer });
    return payload;
  } catch (e) {
    throw new errors.InvalidGrant(`${what} is not a valid access token of this provider`);
  }
}
const exchangeNonce = process.env.EXCHANGE_DPOP_NONCE;
// The key a token request's DPoP proof proves, or undefined without one;
// false when the answer is already set (a nonce asked for).
async function dpopKey(ctx) {
  const proof = ctx.get('DPoP');
  if (!proof) return undefined;
  let verified;
  try {
    verified = await jwtVerify(proof, EmbeddedJWK, { typ: 'dpop+jwt', maxTokenAge: '60s' });
  } catch (e) {
    throw new errors.InvalidDpopProof(`invalid DPoP proof: ${e.message}`);
  }
  const { payload, protectedHeader } = verified;
  if (payload.htm !== 'POST' || payload.htu !== `${issuer}/token` || !payload.jti) {
    throw new errors.InvalidDpopProof('the DPoP proof is not for this request');
  }
  if (exchangeNonce && payload.nonce !== exchangeNonce) {
    ctx.set('DPoP-Nonce', exchangeNonce);
    ctx.status = 400;
    ctx.body = { error: 'use_dpop_nonce', error_description: 'a nonce is required' };
    return false;
  }
  return calculateJwkThumbprint(protectedHeader.jwk);
}
provider.registerGrantType(EXCHANGE, async (ctx) => {
  const params = ctx.oidc.params;
  exchanges.count += 1;
  exchanges.last = Object.fromEntries(
    Object.entries(params).filter(([, v]) => v !== undefined),
  );
  if (params.subject_token_type !== ACCESS_TOKEN) {
    throw new errors.InvalidRequest('subject_token_type must be an access token');
  }
  const subject = await ourAccessToken(params.subject_token, 'subject_token');
  let act;
  if (params.actor_token) {
    if (params.actor_token_type !== ACCESS_TOKEN) {
      throw new errors.InvalidRequest('actor_token_type must be an access token');
    }
    const actor = await ourAccessToken(params.actor_token, 'actor_token');
    act = { sub: actor.client_id ?? actor.sub, ...(subject.act ? { act: subject.act } : {}) };
  }
  const jkt = await dpopKey(ctx);
  if (jkt === false) return;
  const audience = params.audience ?? params.resource;
  if (!audience) throw new errors.InvalidTarget('name the audience or the resource');
  const held = String(subject.scope ?? '').split(' ');
  const scope = String(params.scope ?? subject.scope ?? '').split(' ')
    .filter((s) => s && held.includes(s)).join(' ');
  const now = Math.floor(Date.now() / 1000);
  const exp = Math.min(now + exchangeTtl, subject.exp);
  const [signing] = keys;
  const token = await new SignJWT({
    sub: subject.sub,
    client_id: ctx.oidc.client.clientId,
    scope,
    ...(act ? { act } : {}),
    ...(jkt ? { cnf: { jkt } } : {}),
  })
    .setProtectedHeader({ alg, kid: signing.kid, typ: 'at+jwt' })
    .setIssuer(issuer).setAudience(audience).setIssuedAt(now).setExpirationTime(exp)
    .setJti(randomUUID())
    .sign(await importJWK(signing, alg));
  ctx.body = {
    access_token: token,
    issued_token_type: ACCESS_TOKEN,
    token_type: jkt ? 'DPoP' : 'Bearer',
    expires_in: exp - now,
    scope,
  };
}, new Set(['subject_token', 'subject_token_type', 'actor_token', 'actor_token_type',
  'audience', 'resource', 'scope', 'requested_token_type']), new Set(['audience', 'resource']));

let introspections = 0;
provider.use(async (ctx, next) => {
  if (ctx.path === '/test/exchanges') {
    ctx.body = exchanges;
    return;
  }
  if (ctx.path === '/test/introspections') {
    ctx.body = { count: introspections };
    return;
  }
  if (ctx.path === '/test/id_token' || ctx.path === '/test/logout_token') {
    const client = await provider.Client.find(audience);
    const token = new provider.IdToken({ sub: 'alice' }, { client, ctx });
    token.scope = 'openid';
    const logout = ctx.path === '/test/logout_token';
    if (logout) {
      token.set('events', { 'http://schemas.openid.net/event/backchannel-logout': {} });
      token.set('sid', randomUUID());
      token.set('jti', randomUUID());
    } else {
      token.set('nonce', randomUUID());
      token.set('at_hash', randomUUID());
      token.set('auth_time', Math.floor(Date.now() / 1000));
      // As the red team did: a scope copied in does not make it an access token.
      token.set('scope', 'read');
    }
    ctx.body = { token: await token.issue({ use: logout ? 'logout' : 'idtoken' }) };
    return;
  }
  if (ctx.path === '/token/introspection') introspections += 1;
  await next();
});

const clientCa = process.env.CLIENT_CA;
const server = createServer({
  cert: readFileSync(process.env.TLS_CERT),
  key: readFileSync(process.env.TLS_KEY),
  ...(clientCa ? { requestCert: true, rejectUnauthorized: false, ca: readFileSync(clientCa) } : {}),
}, provider.callback());
server.listen(port, '127.0.0.1', () => {
  console.log(`listening on ${issuer}`);
});
