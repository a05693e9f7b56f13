"""Mints asymmetric tokens with the real AuthX and flask-jwt-extended, for tower-authx
to verify with the public key. Usage: mint_asymmetric.py ALGORITHM PRIVATE_KEY_PEM_FILE;
prints {"authx": {"fresh": ..., "refresh": ...}, "flask": {...}} as JSON.
"""

import json
import sys

from authx import AuthX, AuthXConfig
from flask import Flask
from flask_jwt_extended import JWTManager, create_access_token, create_refresh_token

algorithm, key_file = sys.argv[1], sys.argv[2]
private_key = open(key_file).read()

ax = AuthX(
    config=AuthXConfig(
        JWT_ALGORITHM=algorithm,
        JWT_PRIVATE_KEY=private_key,
        JWT_TOKEN_LOCATION=["headers"],
    )
)

app = Flask(__name__)
app.config["JWT_ALGORITHM"] = algorithm
app.config["JWT_PRIVATE_KEY"] = private_key
app.config["JWT_SECRET_KEY"] = "unused-for-asymmetric-algorithms"
JWTManager(app)
with app.app_context():
    flask = {
        "fresh": create_access_token(identity="user1", fresh=True),
        "refresh": create_refresh_token(identity="user1"),
    }

print(
    json.dumps(
        {
            "authx": {
                "fresh": ax.create_access_token(uid="user1", fresh=True),
                "refresh": ax.create_refresh_token(uid="user1"),
            },
            "flask": flask,
        }
    )
)
