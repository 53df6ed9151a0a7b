"""The Python API in a few lines: a profile, a run, the RAGE flow. Runs offline with the fake profile.

    python examples/python_api.py                 # the loop retrieves its references
    python examples/python_api.py me.png          # with a user (personalization) image

See docs/python-api.md for every call and field used here.
"""

import sys

from imagerag_sdk.pipeline import ImageRAG

pipeline = ImageRAG.from_profile("fake")            # or "sdxl-gpt", or a path to your YAML

# The ImageRAG loop: generate → critique → retrieve → regenerate; writes a run folder.
result = pipeline.run("an oil painting of a sheep and a car", seed=0, user_images=sys.argv[1:], out="runs")
print("run folder:", result.run_dir, "| critic satisfied:", result.matched)
for ref in result.references:
    # user images have no retrieval score (None); retrieved and picked ones have one
    score = "no score" if ref.score is None else f"score {ref.score:.3f}"
    print(f"  used {ref.path} ({ref.origin}) for '{ref.concept or ref.caption}' ({score})")

# The RAGE flow: retrieve candidates, let a person pick, generate with the picks.
hits = pipeline.retrieve("a red sports car", k=4)
picked = hits[:1]
ad = pipeline.generate_with("a poster of our car at sunset", picked, seed=1, out="runs")
print("picked-reference run:", ad.run_dir)
