"""Real clients of streams that end with the credential (issue 41).

    python stream_clients.py ws URL TOKEN [STEP ...]
    python stream_clients.py grpc HOST:PORT TOKEN

`ws` (the `websockets` package): opens URL with `Authorization: Bearer TOKEN`,
sends "hello" and reads its echo, then runs each STEP in turn:
`renew=<token>` sends an in-band renewal and reads the answer, `echo` sends
and reads another message; then waits (at most 30 s) for the server to close.
`grpc` (the `grpcio` package): calls grpc.health.v1.Health/Watch and reads
the stream until it ends.

Prints one JSON line per event, with the Unix time it happened ("at").
"""

import asyncio
import json
import sys
import time


def say(**line):
    line["at"] = time.time()
    print(json.dumps(line), flush=True)


async def ws(url, token, steps):
    import websockets

    try:
        async with websockets.connect(
            url, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=5
        ) as socket:
            say(opened=True)
            await socket.send("hello")
            say(echo=await socket.recv())
            for step in steps:
                if step.startswith("renew="):
                    message = {"type": "authx.renew", "access_token": step[len("renew="):]}
                    await socket.send(json.dumps(message))
                    say(renewal=json.loads(await socket.recv()))
                elif step == "echo":
                    await socket.send("again")
                    say(echo=await socket.recv())
            await asyncio.wait_for(socket.wait_closed(), 30)
            say(closed=socket.close_code, reason=socket.close_reason)
    except websockets.exceptions.ConnectionClosed as closed:
        frame = closed.rcvd
        say(closed=frame.code if frame else None, reason=frame.reason if frame else None)
    except websockets.exceptions.InvalidStatus as refused:
        say(refused=refused.response.status_code)


def grpc_watch(target, token):
    import grpc

    channel = grpc.insecure_channel(target)
    # HealthCheckRequest{service: ""} is the empty message; a response is
    # HealthCheckResponse{status}: field 1, a varint (1 = SERVING).
    watch = channel.unary_stream(
        "/grpc.health.v1.Health/Watch",
        request_serializer=lambda _: b"",
        response_deserializer=lambda data: data[1] if len(data) > 1 else 0,
    )
    try:
        for status in watch(None, metadata=[("authorization", f"Bearer {token}")], timeout=30):
            say(status=status)
        say(ended="OK")
    except grpc.RpcError as error:
        say(ended=error.code().name, details=error.details())


def main():
    kind, target, token, *steps = sys.argv[1:]
    if kind == "ws":
        asyncio.run(ws(target, token, steps))
    elif kind == "grpc":
        grpc_watch(target, token)
    else:
        sys.exit(f"unknown client {kind}")


if __name__ == "__main__":
    main()
