"""Verifies tokens minted by tower-authx with the real AuthX and flask-jwt-extended.

Reads {"secret", "algorithm"?, "public_key"?, "issuer"?, "audience"?,
"tokens": [{name, token, sub, type, fresh, scopes?}]} on stdin (with "algorithm" and
"public_key", a PEM, the tokens are verified with that public key); prints one line per
check and a closing "N passed, N failed" line.
"""

import json
import sys

from authx import AuthX, AuthXConfig, RequestToken
from flask import Flask
from flask_jwt_extended import JWTManager, decode_token

spec = json.load(sys.stdin)
secret = spec.get("secret", "unused-for-asymmetric-algorithms")
algorithm = spec.get("algorithm", "HS256")
public_key = spec.get("public_key")
issuer = spec.get("issuer")
audience = spec.get("audience")

ax_config = dict(JWT_SECRET_KEY=secret, JWT_TOKEN_LOCATION=["headers"], JWT_ALGORITHM=algorithm)
if public_key:
    ax_config["JWT_PUBLIC_KEY"] = public_key
if issuer:
    ax_config["JWT_DECODE_ISSUER"] = issuer
if audience:
    ax_config["JWT_DECODE_AUDIENCE"] = audience
ax = AuthX(config=AuthXConfig(**ax_config))

app = Flask(__name__)
app.config["JWT_SECRET_KEY"] = secret
app.config["JWT_ALGORITHM"] = algorithm
if public_key:
    app.config["JWT_PUBLIC_KEY"] = public_key
if issuer:
    app.config["JWT_DECODE_ISSUER"] = issuer
if audience:
    app.config["JWT_DECODE_AUDIENCE"] = audience
JWTManager(app)

passed = failed = 0


def check(name, library, ok, why=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok   {library:18} {name}")
    else:
        failed += 1
        print(f"FAIL {library:18} {name}: {why}")


for t in spec["tokens"]:
    name, token = t["name"], t["token"]
    try:
        payload = ax.verify_token(
            RequestToken(token=token, location="headers", type=t["type"]),
            verify_type=True,
            verify_fresh=t["fresh"],
        )
        ok = payload.sub == t["sub"] and payload.type == t["type"]
        if t["type"] == "access":
            ok = ok and payload.fresh == t["fresh"]
        if "scopes" in t:
            ok = ok and payload.has_scopes(*t["scopes"])
        check(name, "authx", ok, f"payload {payload!r}")
    except Exception as e:  # noqa: BLE001 - any refusal is a failure to report
        check(name, "authx", False, f"{type(e).__name__}: {e}")

    try:
        with app.app_context():
            decoded = decode_token(token)
        ok = decoded["sub"] == t["sub"] and decoded["type"] == t["type"]
        if t["type"] == "access":
            ok = ok and decoded["fresh"] == t["fresh"]
        check(name, "flask-jwt-extended", ok, f"decoded {decoded!r}")
    except Exception as e:  # noqa: BLE001
        check(name, "flask-jwt-extended", False, f"{type(e).__name__}: {e}")

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed or not passed else 0)
