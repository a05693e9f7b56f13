// An independent client of tower-authx's MockIssuer (feature test-util):
// panva's openid-client discovers it and runs the client credentials grant
// as test-client; jose verifies that token and the one given (argv) with
// the discovered JWKS, issuer and audience, typ at+jwt.
//
// Usage: node mock_issuer_client.mjs ISSUER AUDIENCE TOKEN
// Prints one JSON line: {"grant_sub": ..., "given_sub": ..., "given_scope": ...}.

import * as client from 'openid-client';
import { createRemoteJWKSet, jwtVerify } from 'jose';

const [issuer, audience, given] = process.argv.slice(2);
const config = await client.discovery(new URL(issuer), 'test-client', 'test-secret', undefined, {
  execute: [client.allowInsecureRequests],
});
const metadata = config.serverMetadata();
const jwks = createRemoteJWKSet(new URL(metadata.jwks_uri));
const verify = async (token) => (await jwtVerify(token, jwks, { issuer, audience, typ: 'at+jwt' })).payload;
const grant = await client.clientCredentialsGrant(config, { scope: 'read' });
const fromGrant = await verify(grant.access_token);
const fromTest = await verify(given);
console.log(JSON.stringify({
  grant_sub: fromGrant.sub, grant_scope: fromGrant.scope, given_sub: fromTest.sub, given_scope: fromTest.scope,
}));
