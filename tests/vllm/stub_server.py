"""A stand-in for vLLM's OpenAI-compatible server, for tests of the backend's own logic
(balancing, retries, restarts, start-up failures): same command-line flags, same endpoints.

Extra flags: ``--delay S`` (per request), ``--die-after N`` (exit abruptly when the Nth request
arrives), ``--exit-at-start CODE``, ``--never-healthy``, ``--state-file PATH`` (a JSON line per
start: pid, port, VLLM_PORT, host), ``--engine`` (start a child that, like vLLM's engine core,
outlives the server's abrupt death), ``--drop-reused`` (drop, unanswered, every request that comes
on a connection that already carried one: a kept-alive connection the server gave up on).
Answers echo the prompt so that order can be checked.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys

from aiohttp import web


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model")
    p.add_argument("--served-model-name")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--api-key")
    p.add_argument("--max-model-len", type=int, default=64)
    p.add_argument("--delay", type=float, default=0.0)
    p.add_argument("--die-after", type=int, default=0)
    p.add_argument("--exit-at-start", type=int, default=None)
    p.add_argument("--never-healthy", action="store_true")
    p.add_argument("--state-file")
    p.add_argument("--engine", action="store_true")
    p.add_argument("--drop-reused", action="store_true")
    args, _ = p.parse_known_args()
    print(f"stub server starting for {args.model} on {args.host}:{args.port}", flush=True)
    if args.exit_at_start is not None:
        print("ValueError: model not found (stub)", flush=True)
        sys.exit(args.exit_at_start)
    if args.engine:
        import subprocess

        subprocess.Popen(["sleep", "300"])
    if args.state_file:
        with open(args.state_file, "a") as f:
            state = {"pid": os.getpid(), "port": args.port, "host": args.host}
            state["vllm_port"] = os.environ.get("VLLM_PORT")
            state["dragon"] = "DRAGON_MY_PUID" in os.environ
            f.write(json.dumps(state) + "\n")
    served = args.served_model_name or args.model
    counters = {"requests": 0, "outstanding": 0, "max_outstanding": 0}

    used: list[object] = []  # connections that carried a request (kept: ids would be reused)

    def dropped(request: web.Request) -> bool:
        transport = request.transport
        if not args.drop_reused or transport is None:
            return False
        if transport in used:
            transport.abort()
            return True
        used.append(transport)
        return False

    def authorized(request: web.Request) -> bool:
        return not args.api_key or request.headers.get("Authorization") == f"Bearer {args.api_key}"

    async def health(request: web.Request) -> web.Response:
        if dropped(request):
            return web.Response(status=500)  # written nowhere: the connection is gone
        return web.Response(status=503 if args.never_healthy else 200)

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"data": [{"id": served}]})

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(counters)

    async def answer(request: web.Request, chat: bool) -> web.Response:
        if dropped(request):
            return web.Response(status=500)
        if not authorized(request):
            return web.json_response({"error": {"message": "invalid api key"}}, status=401)
        counters["requests"] += 1
        if args.die_after and counters["requests"] >= args.die_after:
            os._exit(9)
        body = await request.json()
        if body.get("model") != served:
            msg = f"The model `{body.get('model')}` does not exist."
            return web.json_response({"error": {"message": msg}}, status=404)
        counters["outstanding"] += 1
        counters["max_outstanding"] = max(counters["max_outstanding"], counters["outstanding"])
        try:
            await asyncio.sleep(body.get("extra_delay", args.delay))
        finally:
            counters["outstanding"] -= 1
        if chat:
            prompts = [body["messages"][-1]["content"]]
        else:
            prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
        if any(len(p) > args.max_model_len for p in prompts):
            msg = f"This model's maximum context length is {args.max_model_len} tokens."
            return web.json_response({"error": {"message": msg}}, status=400)
        params = {
            k: body[k]
            for k in ("temperature", "max_tokens", "top_p", "top_k", "stop", "seed")
            if k in body
        }
        texts = [
            f"echo:{p}|{json.dumps(params, sort_keys=True)}|pid={os.getpid()}" for p in prompts
        ]
        usage = {"prompt_tokens": len(prompts), "completion_tokens": 2 * len(prompts)}
        usage["total_tokens"] = 3 * len(prompts)
        if chat:
            choices = [{"index": 0, "message": {"role": "assistant", "content": texts[0]}}]
        else:
            choices = [{"index": i, "text": t} for i, t in reversed(list(enumerate(texts)))]
        return web.json_response({"choices": choices, "usage": usage})

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/stats", stats)
    app.router.add_post("/v1/completions", lambda r: answer(r, False))
    app.router.add_post("/v1/chat/completions", lambda r: answer(r, True))
    web.run_app(app, host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
