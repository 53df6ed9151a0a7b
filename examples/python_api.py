"""The Python API in a few lines: a profile, a run, the RAGE flow. Runs offline with the fake profile."""

from imagerag_sdk.pipeline import ImageRAG

pipeline = ImageRAG.from_profile("fake")            # or "sdxl-gpt", or a path to your YAML

# The ImageRAG loop: generate → critique → retrieve → regenerate; writes a run folder.
result = pipeline.run("an oil painting of a sheep and a car", seed=0, out="runs")
print("run folder:", result.run_dir)
for ref in result.references:
    print(f"  used {ref.path} for '{ref.concept}' (score {ref.score:.3f})")

# The RAGE flow: retrieve candidates, let a person pick, generate with the picks.
hits = pipeline.retrieve("a red sports car", k=4)
picked = hits[:1]
ad = pipeline.generate_with("a poster of our car at sunset", picked, seed=1, out="runs")
print("picked-reference run:", ad.run_dir)
