"""Runs the NumPy script of docs/interop.md on dumps that `specstate dump` writes, so the doc
cannot rot: the script must run and report the agreement the doc promises (it exits 1 when
not), on a prefill token, an accepted and a rejected verify token, the first and last layer,
for the tiny preset (fp32 and bf16 pools), a real head size (K = V = 128) and a Kimi Delta
Attention preset (a decay per key channel), and on a dump of
two layers and two tokens (--layers, --tokens). Also checks the CLI's input errors (exit 2,
nothing written).

usage: run_interop_doc.py docs/interop.md path/to/specstate
"""
import json
import os
import re
import subprocess
import sys
import tempfile

doc, specstate = sys.argv[1], sys.argv[2]
script = re.search(r"```python\n(.*?)```", open(doc).read(), re.S).group(1)


def run(*args, expect=0):
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != expect:
        sys.exit(f"{' '.join(args)}: exit {r.returncode}, expected {expect}\n{r.stdout}{r.stderr}")
    return r.stdout


def pick_tokens(meta):
    """A prefill token, the first verified token, a rejected draft, the last token."""
    events = meta["events"]
    kinds = [events[t["event"]]["kind"] for t in meta["tokens"]]
    picks = {1 if len(kinds) > 1 else 0, len(kinds) - 1}
    picks.add(next((i for i, k in enumerate(kinds) if k != "extend"), 0))
    picks.add(next((i for i, t in enumerate(meta["tokens"]) if not t["accepted"]), 0))
    return sorted(picks)


with tempfile.TemporaryDirectory() as tmp:
    check = os.path.join(tmp, "check.py")
    open(check, "w").write(script)
    cases = [("tiny", 1, "f32"), ("tiny", 1, "bf16"), ("qwen3.5-2b", 8, "f32"),
             ("kimi-linear-48b-a3b", 8, "f32")]  # Kimi Delta Attention: a decay per key channel
    for n, (preset, tp, dtype) in enumerate(cases):
        trace = os.path.join(tmp, f"t{n}.jsonl")
        run(specstate, "generate", "--preset", preset, "--tp", str(tp), "--ssm-dtype", dtype,
            "--requests", "2", "--steps", "4", "--seed", "11", "--prompt-min", "20",
            "--prompt-max", "20", "--accept-prob", "0.5", "-o", trace)
        out = os.path.join(tmp, f"d{n}")
        run(specstate, "dump", trace, "--request", "1000", "--out", out)
        meta = json.load(open(os.path.join(out, "meta.json")))
        for token in pick_tokens(meta):
            for layer in (0, meta["model"]["layers"] - 1):
                print(run(sys.executable, check, out, str(token), str(layer)), end="")

    # A subset: two layers of the real head size, and two tokens (the last one and the one it
    # continues from). The script finds them through layer_ids and the tokens' rows.
    trace, out = os.path.join(tmp, "t2.jsonl"), os.path.join(tmp, "subset")
    last = len(json.load(open(os.path.join(tmp, "d2", "meta.json")))["tokens"]) - 1
    prev = json.load(open(os.path.join(tmp, "d2", "meta.json")))["tokens"][last]["prev"]
    run(specstate, "dump", trace, "--request", "1000", "--out", out, "--layers", "3,17",
        "--tokens", f"{prev},{last}")
    meta = json.load(open(os.path.join(out, "meta.json")))
    assert meta["model"]["layer_ids"] == [3, 17] and meta["dumped_tokens"] == 2, meta["model"]
    for layer in (3, 17):
        print(run(sys.executable, check, out, str(last), str(layer)), end="")

    # Input errors: exit 2, nothing written.
    trace = os.path.join(tmp, "t0.jsonl")
    bad = os.path.join(tmp, "bad")
    run(specstate, "dump", trace, "--request", "4242", "--out", bad, expect=2)
    run(specstate, "dump", trace, "--request", "1000", "--out", bad, "--strategy", "all", expect=2)
    run(specstate, "dump", trace, "--request", "1000", "--out", bad, "--backend", "gpu", expect=2)
    run(specstate, "dump", trace, "--request", "1000", "--out", os.path.join(tmp, "d0"), expect=2)
    run(specstate, "dump", trace, "--request", "1000", "--out", os.path.join(trace, "x"), expect=2)
    left = sorted(f for f in os.listdir(tmp) if f.startswith(".") or f == "bad")
    if left:
        sys.exit(f"input errors left files behind: {left}")
print("docs/interop.md script: agreement as documented")
