# A browser session with the real AuthX (1.7): cookie login, a guarded page,
# and AuthX's implicit refresh middleware, for the axum example to be compared
# with. JWT_SECRET_KEY, PORT, ACCESS_TOKEN_LIFETIME_SECS and
# IMPLICIT_REFRESH_SECS as the axum example reads them.
import os
from datetime import timedelta

from fastapi import Depends, FastAPI, Request, Response
from pydantic import BaseModel

from authx import AuthX, AuthXConfig, TokenPayload

config = AuthXConfig(
    JWT_ALGORITHM="HS256",
    JWT_SECRET_KEY=os.environ["JWT_SECRET_KEY"],
    JWT_TOKEN_LOCATION=["headers", "cookies"],
    JWT_COOKIE_SECURE=False,
    JWT_ACCESS_TOKEN_EXPIRES=timedelta(seconds=float(os.environ.get("ACCESS_TOKEN_LIFETIME_SECS", "900"))),
    JWT_IMPLICIT_REFRESH_DELTATIME=timedelta(seconds=float(os.environ.get("IMPLICIT_REFRESH_SECS", "600"))),
)
auth = AuthX(config=config)
app = FastAPI()
auth.handle_errors(app)
app.middleware("http")(auth.implicit_refresh_middleware)


class User(BaseModel):
    username: str
    password: str


@app.post("/login/cookie")
def login(user: User, response: Response):
    access = auth.create_access_token(uid=user.username, fresh=True)
    refresh = auth.create_refresh_token(uid=user.username)
    auth.set_access_cookies(access, response)
    auth.set_refresh_cookies(refresh, response)
    return {"message": "Login successful"}


@app.get("/protected")
def protected(payload: TokenPayload = Depends(auth.access_token_required)):
    return {"username": payload.sub}


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["PORT"]), log_level="warning")
