"""A DPoP client made of PyJWT and cryptography: generates an ES256 key pair,
prints {"jkt": <its RFC 7638 thumbprint>}, then reads one JSON request per line
on stdin ({"htm", "htu", "token"?, "nonce"?}) and prints one proof per line."""

import base64
import hashlib
import json
import sys
import time
import uuid

import jwt
from cryptography.hazmat.primitives.asymmetric import ec


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


key = ec.generate_private_key(ec.SECP256R1())
jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
jwk = {name: jwk[name] for name in ("kty", "crv", "x", "y")}
canonical = json.dumps(jwk, sort_keys=True, separators=(",", ":"))
print(json.dumps({"jkt": b64(hashlib.sha256(canonical.encode()).digest())}), flush=True)

for line in sys.stdin:
    request = json.loads(line)
    claims = {"jti": str(uuid.uuid4()), "htm": request["htm"], "htu": request["htu"], "iat": int(time.time())}
    if request.get("token"):
        claims["ath"] = b64(hashlib.sha256(request["token"].encode()).digest())
    if request.get("nonce"):
        claims["nonce"] = request["nonce"]
    proof = jwt.encode(claims, key, algorithm="ES256", headers={"typ": "dpop+jwt", "jwk": jwk})
    print(proof, flush=True)
