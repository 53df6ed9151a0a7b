"""Fused (one structured call) versus the paper's three calls, with the real openai client.

The critic talks to the SDK's local fake API server, which adds a fixed latency to every request
(default 300 ms, about what a small GPT-4o vision call costs in network and queueing time), so the
wall time is dominated by round trips, as with a real provider. Each critique is a "does not
match" case, the one that needs all three questions in three-step mode.

    python benchmarks/critic.py [--provider openai|gemini|anthropic] [--latency 0.3] [--runs 5]

Needs the provider's plugin installed (bash scripts/setup-env.sh installs all); no network, no key.
"""

from __future__ import annotations

import argparse
import json
import time

from imagerag_sdk.testing.fake_server import FakeAPIServer
from imagerag_sdk.testing.provider_contract import CAPTIONS_REPLY, FUSED_NO, PROMPT, sample_image


def make_critic(provider: str, url: str, mode: str):
    """The provider's real critic and client, pointed at the fake server."""
    if provider == "openai":
        from imagerag_openai import OpenAICritic

        return OpenAICritic(base_url=url + "/v1", api_key="sk-bench", protocol=mode, max_retries=0)
    if provider == "gemini":
        from imagerag_gemini import GeminiCritic

        return GeminiCritic(base_url=url, api_key="bench", protocol=mode, max_retries=0)
    from imagerag_anthropic import AnthropicCritic

    return AnthropicCritic(base_url=url, api_key="bench", protocol=mode, max_retries=0)


def run(mode: str, latency: float, runs: int, side: int = 1024, provider: str = "openai") -> dict:
    with FakeAPIServer(latency=latency) as server:
        critic = make_critic(provider, server.url, mode).load()
        image = sample_image((side, side))

        def once() -> int:
            if mode == "fused":
                server.reply(json_data=FUSED_NO)
            else:
                server.reply("No").reply("- a sheep\n- oil painting style").reply(CAPTIONS_REPLY)
            got = critic.critique(PROMPT, image)
            assert not got.matches and len(got.missing) == 2, got
            return len(got.missing)

        once()  # warm-up: connection set-up, lazy imports
        server.requests.clear()
        start = time.perf_counter()
        missing = sum(once() for _ in range(runs))
        wall = time.perf_counter() - start
        return {"mode": mode, "runs": runs, "requests": len(server.requests),
                "requests_per_critique": len(server.requests) / runs,
                "wall_s": round(wall, 3), "per_critique_s": round(wall / runs, 3),
                "concepts_found": missing}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--provider", choices=["openai", "gemini", "anthropic"], default="openai")
    ap.add_argument("--latency", type=float, default=0.3, help="seconds added to every request")
    ap.add_argument("--runs", type=int, default=5, help="critiques per mode")
    ap.add_argument("--image-side", type=int, default=1024, help="side of the square test image")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    fused = run("fused", args.latency, args.runs, args.image_side, args.provider)
    three = run("three_step", args.latency, args.runs, args.image_side, args.provider)
    # the same critiques with no injected latency: the local cost (resize, encode, HTTP, parse)
    local = {m: run(m, 0.0, args.runs, args.image_side, args.provider)["per_critique_s"]
             for m in ("fused", "three_step")}
    ratio = fused["wall_s"] / three["wall_s"]
    if args.json:
        print(json.dumps({"provider": args.provider, "latency_s": args.latency, "image_side": args.image_side, "fused": fused,
                          "three_step": three, "local_s_per_critique": local,
                          "ratio": round(ratio, 3)}))
        return
    print(f"{args.provider} critic vs fake server, {args.latency * 1000:.0f} ms per request, "
          f"{args.runs} non-matching critiques per mode, {args.image_side}² image")
    for r in (fused, three):
        print(f"  {r['mode']:<10} requests {r['requests']:>3} ({r['requests_per_critique']:.0f}/critique)"
              f"  wall {r['wall_s']:.2f} s  ({r['per_critique_s']:.3f} s/critique, "
              f"{local[r['mode']]:.3f} s of it local work)")
    verdict = "meets" if ratio <= 0.4 else "misses"
    print(f"  wall-time ratio fused / three-step = {ratio:.3f} ({verdict} the ≤ 0.40 target)")


if __name__ == "__main__":
    main()
