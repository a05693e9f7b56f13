// The README's DPoP walkthrough, as a client would run it against the
// fresh_token example: node tests/oidc/dpop_walkthrough.mjs [BASE_URL]
// (default http://127.0.0.1:8000; it must be the server's PUBLIC_URL).
// Uses panva's `dpop` (npm ci --prefix tests/oidc). Exits 1 on any surprise.

import * as DPoP from 'dpop';

const base = process.argv[2] || 'http://127.0.0.1:8000';
const keypair = await DPoP.generateKeyPair('ES256');
let failed = false;

async function call(method, path, { token, body, proof } = {}) {
  const url = `${base}${path}`;
  const headers = { DPoP: proof ?? await DPoP.generateProof(keypair, url, method, undefined, token) };
  if (token) headers.Authorization = `DPoP ${token}`;
  if (body) headers['Content-Type'] = 'application/json';
  const res = await fetch(url, { method, headers, body: body && JSON.stringify(body) });
  return { status: res.status, json: await res.json(), headers: res.headers, proof: headers.DPoP };
}

function step(what, res, status) {
  const ok = res.status === status;
  failed ||= !ok;
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}: ${res.status} ${JSON.stringify(res.json)}`);
}

// Login with a proof: the tokens are bound to this client's key.
const login = await call('POST', '/login', { body: { username: 'user1', password: 'password1' } });
step('login (token_type DPoP)', login, 200);
const fresh = login.json.fresh_token;
const refresh = login.json.refresh_token;

const protectedRes = await call('GET', '/protected', { token: fresh });
step('protected with a proof', protectedRes, 200);
step('the same proof again', await call('GET', '/protected', { token: fresh, proof: protectedRes.proof }), 401);
const bearer = await fetch(`${base}/protected`, { headers: { Authorization: `Bearer ${fresh}` } });
step('the token alone, as Bearer', { status: bearer.status, json: await bearer.json() }, 401);
step('fresh-required with the login token', await call('GET', '/fresh-required', { token: fresh }), 200);

// Rotation keeps the binding.
const rotated = await call('POST', '/refresh', { token: refresh });
step('refresh (rotated, still DPoP)', rotated, 200);
const nonFresh = rotated.json.access_token;
step('protected with the non-fresh token', await call('GET', '/protected', { token: nonFresh }), 200);
step('fresh-required with the non-fresh token', await call('GET', '/fresh-required', { token: nonFresh }), 401);
step('the spent refresh token again', await call('POST', '/refresh', { token: refresh }), 401);

process.exit(failed || login.json.token_type !== 'DPoP' || rotated.json.token_type !== 'DPoP' ? 1 : 0);
