// A second, independent RFC 8693 authorization server for tower-authx's
// token-exchange tests: @jmondi/oauth2-server's own TokenExchangeGrant (and
// its client credentials grant, for actor tokens), over plain HTTP on
// loopback, signing HS256 JWTs with SECRET (its JwtService).
//
// The subject token is an HS256 token signed with SECRET whose `iss` is
// ISSUER (tower-authx issues them in the test). An actor token is one of this
// server's own client-credentials tokens: the exchanged token then says
// `act: { sub: <its cid> }`. The exchanged token's `aud` is the `audience`
// asked for (the library's own handling), its `sub` the subject's.
// GET /test/exchanges answers how many exchanges were asked for and the form
// of the last one, as received.
//
// Environment: PORT, SECRET, ISSUER. Prints "listening on http://127.0.0.1:PORT".

import { createServer } from 'node:http';
import { randomUUID } from 'node:crypto';
import jwt from 'jsonwebtoken';
import {
  AuthorizationServer, JwtService, OAuthException, OAuthRequest, DateInterval,
} from '@jmondi/oauth2-server';

const port = Number(process.env.PORT);
const secret = process.env.SECRET;
const issuer = process.env.ISSUER;

const scopes = [{ name: 'read' }, { name: 'orders:write' }];
const clients = [{
  id: 'gateway',
  name: 'gateway',
  secret: 'gateway-secret',
  redirectUris: [],
  allowedGrants: ['client_credentials', 'urn:ietf:params:oauth:grant-type:token-exchange'],
  scopes,
}];
const tokens = new Map();

const clientRepository = {
  async getByIdentifier(id) {
    const client = clients.find((c) => c.id === id);
    if (!client) throw OAuthException.invalidClient();
    return client;
  },
  async isClientValid(grantType, client, clientSecret) {
    return client.secret === clientSecret && client.allowedGrants.includes(grantType);
  },
};
const scopeRepository = {
  async getAllByIdentifiers(names) { return scopes.filter((s) => names.includes(s.name)); },
  async finalize(requested) { return requested; },
};
const tokenRepository = {
  async issueToken(client, tokenScopes, user) {
    return {
      accessToken: randomUUID(),
      accessTokenExpiresAt: new DateInterval('5m').getEndDate(),
      client, user, scopes: tokenScopes,
    };
  },
  async issueRefreshToken(token) { return token; },
  async persist(token) { tokens.set(token.accessToken, token); },
  async revoke(token) { tokens.delete(token.accessToken); },
  async isRefreshTokenRevoked() { return true; },
  async getByRefreshToken() { throw OAuthException.invalidGrant(); },
};

// `act` travels from the exchange to the token through the user it returns.
class Signer extends JwtService {
  extraTokenFields({ user }) { return user?.act ? { act: user.act } : {}; }
}

function verified(token, what, options) {
  try {
    return jwt.verify(token, secret, { algorithms: ['HS256'], ...options });
  } catch (e) {
    throw OAuthException.invalidGrant(`${what} is not valid here: ${e.message}`);
  }
}

const server = new AuthorizationServer(clientRepository, tokenRepository, scopeRepository,
  new Signer(secret), { issuer });
server.enableGrantTypes('client_credentials', {
  grant: 'urn:ietf:params:oauth:grant-type:token-exchange',
  async processTokenExchange({ subjectToken, subjectTokenType, actorToken }) {
    if (subjectTokenType !== 'urn:ietf:params:oauth:token-type:access_token') {
      throw OAuthException.badRequest('subject_token_type must be an access token');
    }
    const subject = verified(subjectToken, 'subject_token', { issuer });
    const user = { id: subject.sub };
    if (actorToken) user.act = { sub: verified(actorToken, 'actor_token', { issuer }).cid };
    return user;
  },
});

const exchanges = { count: 0, last: null };
createServer(async (req, res) => {
  const answer = (status, body) => {
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(JSON.stringify(body));
  };
  if (req.url === '/test/exchanges') return answer(200, exchanges);
  if (req.method !== 'POST' || req.url !== '/token') return answer(404, {});
  let raw = '';
  for await (const chunk of req) raw += chunk;
  const form = Object.fromEntries(new URLSearchParams(raw));
  if (form.grant_type === 'urn:ietf:params:oauth:grant-type:token-exchange') {
    exchanges.count += 1;
    exchanges.last = form;
  }
  try {
    const response = await server.respondToAccessTokenRequest(new OAuthRequest({
      headers: req.headers, body: form, query: {},
    }));
    answer(response.status, response.body);
  } catch (e) {
    if (!(e instanceof OAuthException)) throw e;
    answer(e.status, { error: e.errorType, error_description: e.errorDescription ?? e.message });
  }
}).listen(port, '127.0.0.1', () => console.log(`listening on http://127.0.0.1:${port}`));
