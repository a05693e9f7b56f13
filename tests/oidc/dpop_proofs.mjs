// A DPoP client made of panva's `dpop` package: generates a key pair (ALG:
// ES256, Ed25519, RS256 or PS256), prints {"jkt": <its RFC 7638 thumbprint>},
// then reads one JSON request per line on stdin ({"htm", "htu", "token"?,
// "nonce"?}) and prints one proof per line.

import { createInterface } from 'node:readline';
import * as DPoP from 'dpop';

const keypair = await DPoP.generateKeyPair(process.env.ALG || 'ES256');
console.log(JSON.stringify({ jkt: await DPoP.calculateThumbprint(keypair.publicKey) }));
for await (const line of createInterface({ input: process.stdin })) {
  const { htm, htu, token, nonce } = JSON.parse(line);
  console.log(await DPoP.generateProof(keypair, htu, htm, nonce ?? undefined, token ?? undefined));
}
