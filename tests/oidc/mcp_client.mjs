// The official MCP TypeScript SDK as a client of an MCP server guarded by
// tower-authx: it knows only the server's URL and its client credentials.
//
//   node tests/oidc/mcp_client.mjs SERVER_URL CLIENT_ID CLIENT_SECRET ISSUER SCOPE [dpop|stream]
//
// It connects (401 -> protected resource metadata -> authorization server
// discovery -> token for the resource -> initialize), lists the tools, calls
// `whoami`, then `admin_reset`, then (without `dpop`) a tool nobody listed. SCOPE is what the client asks tokens for:
// the SDK's ClientCredentialsProvider (1.32) requests its configured scope
// only, also when it retries after a 403 scope challenge. With `dpop`, a fetch wrapper binds every
// token to a key with panva's `dpop` (proofs at the token endpoint and on
// every MCP request, `Authorization: DPoP`); the SDK is unchanged.
// Prints one JSON line per HTTP exchange with the server ({"http": ...}) and
// one per step ({"step": ...}); exits 0 when it ran to the end, whatever the
// answers (the caller judges them).
// With `stream`, it connects and then watches the SDK's standalone GET stream
// (server-sent events): one line per event ({"sse": ...}, with the `exp` of
// the token that opened the stream) and one when the stream ends; it stays
// 4 s after the first stream ended (to see the SDK reconnect), then exits.

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ClientCredentialsProvider } from '@modelcontextprotocol/sdk/client/auth-extensions.js';
import * as DPoP from 'dpop';

const [serverUrl, clientId, clientSecret, issuer, scope, mode] = process.argv.slice(2);
const useDpop = mode === 'dpop';
const watchStream = mode === 'stream';
let streamEnded;
const firstStreamEnded = new Promise((resolve) => { streamEnded = resolve; });
const keypair = useDpop ? await DPoP.generateKeyPair('ES256') : undefined;
const say = (line) => console.log(JSON.stringify(line));

// Every request the SDK makes goes through here: recorded when it is to the
// MCP server, and given DPoP proofs in `dpop` mode.
async function fetchWithProofs(url, init = {}) {
  const target = new URL(url instanceof Request ? url.url : url);
  const method = (init.method || 'GET').toUpperCase();
  const headers = new Headers(init.headers);
  const toServer = target.origin === new URL(serverUrl).origin;
  if (useDpop && method === 'POST' && target.pathname.endsWith('/token')) {
    headers.set('DPoP', await DPoP.generateProof(keypair, target.href, method));
  }
  const authorization = headers.get('authorization');
  if (useDpop && toServer && authorization?.startsWith('Bearer ')) {
    const token = authorization.slice('Bearer '.length);
    headers.set('Authorization', `DPoP ${token}`);
    const htu = `${target.origin}${target.pathname}`;
    headers.set('DPoP', await DPoP.generateProof(keypair, htu, method, undefined, token));
  }
  let response = await fetch(target, { ...init, headers });
  const eventStream = response.headers.get('content-type')?.startsWith('text/event-stream');
  if (watchStream && toServer && method === 'GET' && response.ok && eventStream && response.body) {
    const [mine, theirs] = response.body.tee();
    const exp = JSON.parse(Buffer.from(authorization.split(' ')[1].split('.')[1], 'base64url')).exp;
    watch(mine, exp);
    response = new Response(theirs, { status: response.status, headers: response.headers });
  }
  if (toServer) {
    say({
      http: {
        method,
        path: target.pathname,
        status: response.status,
        scheme: headers.get('authorization')?.split(' ')[0] ?? null,
        challenge: response.headers.get('www-authenticate'),
      },
    });
  }
  if (target.pathname.endsWith('/token')) {
    const body = await response.clone().json().catch(() => ({}));
    say({ token: { status: response.status, token_type: body.token_type ?? null, error: body.error ?? null } });
  }
  return response;
}

// Reads one copy of a GET stream: each event's name and data, and its end.
async function watch(body, exp) {
  const decoder = new TextDecoder();
  let buffer = '';
  try {
    for await (const chunk of body) {
      buffer += decoder.decode(chunk, { stream: true });
      let cut;
      while ((cut = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const field = (name) => block.split('\n').find((l) => l.startsWith(name))?.slice(name.length).trim();
        say({ sse: { event: field('event:') ?? 'message', data: field('data:') ?? null, exp, at: Date.now() / 1000 } });
      }
    }
  } catch (error) {
    say({ sse_error: String(error) });
  }
  say({ sse_end: { exp, at: Date.now() / 1000 } });
  streamEnded();
}

const provider = new ClientCredentialsProvider({ clientId, clientSecret, expectedIssuer: issuer, scope });
const transport = new StreamableHTTPClientTransport(new URL(serverUrl), {
  authProvider: provider,
  fetch: fetchWithProofs,
});
const client = new Client({ name: 'tower-authx-interop', version: '1.0.0' });

async function step(name, run) {
  try {
    say({ step: name, ok: true, result: await run() });
  } catch (error) {
    say({ step: name, ok: false, error: String(error?.message ?? error), cause: error?.cause ? String(error.cause) : undefined });
  }
}

await step('connect', async () => {
  await client.connect(transport);
  return 'connected';
});
if (watchStream) {
  await Promise.race([firstStreamEnded, new Promise((r) => setTimeout(r, 20000))]);
  await new Promise((r) => setTimeout(r, 4000));
  await client.close().catch(() => {});
  process.exit(0);
}
await step('list_tools', async () => (await client.listTools()).tools.map((t) => t.name).sort());
await step('whoami', async () => JSON.parse((await client.callTool({ name: 'whoami', arguments: {} })).content[0].text));
await step('admin_reset', async () => {
  const result = await client.callTool({ name: 'admin_reset', arguments: {} });
  if (result.isError) throw new Error(`tool error: ${JSON.stringify(result.content)}`);
  return result.content[0].text;
});
await step('whoami_after', async () => JSON.parse((await client.callTool({ name: 'whoami', arguments: {} })).content[0].text));
// A tool the guard does not list (a typo): refused before the server runs it.
if (!useDpop) {
  await step('unlisted_tool', async () => {
    const result = await client.callTool({ name: 'admin_rest', arguments: {} });
    if (result.isError) throw new Error(`tool error: ${JSON.stringify(result.content)}`);
    return result.content;
  });
}
await client.close().catch(() => {});
process.exit(0);
