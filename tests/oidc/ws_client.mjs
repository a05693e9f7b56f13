// npm `ws` as a client of a WebSocket guarded by tower-authx (issue 41):
//
//   node tests/oidc/ws_client.mjs URL TOKEN [RENEW_TOKEN]
//
// Opens URL with `Authorization: Bearer TOKEN`, sends "hello" and reads its
// echo, sends an in-band renewal with RENEW_TOKEN when given, then waits (at
// most 30 s) for the server to close. Prints one JSON line per event, with
// the Unix time it happened ("at").

import WebSocket from 'ws';

const [url, token, renewToken] = process.argv.slice(2);
const say = (line) => console.log(JSON.stringify({ ...line, at: Date.now() / 1000 }));
const socket = new WebSocket(url, { headers: { Authorization: `Bearer ${token}` } });
const timer = setTimeout(() => { say({ timeout: true }); process.exit(1); }, 30000);

socket.on('unexpected-response', (_request, response) => {
  say({ refused: response.statusCode });
  clearTimeout(timer);
  process.exit(0);
});
socket.on('open', () => {
  say({ opened: true });
  socket.send('hello');
});
let renewed = false;
socket.on('message', (data) => {
  const text = data.toString();
  if (text === 'hello') {
    say({ echo: text });
    if (renewToken && !renewed) {
      renewed = true;
      socket.send(JSON.stringify({ type: 'authx.renew', access_token: renewToken }));
    }
  } else {
    say({ renewal: JSON.parse(text) });
  }
});
socket.on('close', (code, reason) => {
  say({ closed: code, reason: reason.toString() });
  clearTimeout(timer);
  process.exit(0);
});
socket.on('error', (error) => say({ error: String(error) }));
