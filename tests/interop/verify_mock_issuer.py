"""Verifies a token of tower-authx's MockIssuer (feature test-util) with PyJWT,
independently: the key from the issuer's JWKS by the token's kid, ES256 only,
the issuer and the audience required. Prints the verified claims as JSON.

Usage: python verify_mock_issuer.py ISSUER AUDIENCE TOKEN
"""

import json
import sys

import jwt

issuer, audience, token = sys.argv[1:4]
key = jwt.PyJWKClient(f"{issuer}/jwks").get_signing_key_from_jwt(token)
claims = jwt.decode(token, key.key, algorithms=["ES256"], audience=audience, issuer=issuer,
                    options={"require": ["exp", "iat", "iss", "aud", "sub"]})
print(json.dumps(claims))
