"""docs/engine-testing.md's worked example: the NumPy stand-in engine follows the reference on
the scenario traces, the examples and generated traces (with retracts; with handoffs and a host
tier), and its planted bugs (the stale flush, the handoff's conv cut as one block) are reported
at the trace line and request where they first show."""

import json
import os
import subprocess
import sys

import pytest

from conftest import source_path

CHECK = source_path("examples", "engine_testing", "check_standin.py")
STALE = source_path("tests", "scenarios", "stale-flush-after-reuse.jsonl")


def run(trace, *options):
    return subprocess.run([sys.executable, CHECK, trace, *options], capture_output=True,
                          text=True, timeout=300)


# one-token-chunk-as-decode.jsonl runs Kimi Delta Attention (a decay per key channel).
@pytest.mark.parametrize("trace", [STALE, source_path("examples", "retract-resume.jsonl"),
                                   source_path("examples", "prefix-hit.jsonl"),
                                   source_path("tests", "scenarios",
                                               "one-token-chunk-as-decode.jsonl")])
def test_the_clean_engine_agrees_on_the_bundled_traces(trace):
    r = run(trace)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith(f"AGREE: the engine followed {trace}")


@pytest.mark.parametrize("dtype", ["f32", "bf16"])
def test_the_clean_engine_agrees_on_a_generated_trace_with_retracts(generated, dtype):
    trace = generated(f"retracts-{dtype}", "--requests", "16", "--steps", "300", "--seed", "1",
                      "--ssm-dtype", dtype, "--pool-rows", "10")
    assert '"retract"' in open(trace).read()
    r = run(trace)
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_planted_stale_flush_is_reported_at_its_line_and_request():
    r = run(STALE, "--plant-stale-flush")
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == f"DIVERGENCE at {STALE}:13: verify [request 2 a=2]"
    assert lines[1].startswith("  request 2 (running): ")
    assert "conv layer 0 [channel 0 (q head 0, i 0), col 0]: engine " in lines[1]


def test_the_planted_bug_is_reported_at_the_first_event_it_changes_a_state(generated):
    """On a generated trace with retracts and finishes, the harness reports exactly the first
    event after which the planted engine holds a state the clean engine does not."""
    sys.path.insert(0, os.path.dirname(CHECK))
    import specstate
    from standin_engine import StandinEngine

    trace = generated("retracts-f32", "--requests", "16", "--steps", "300", "--seed", "1",
                      "--ssm-dtype", "f32", "--pool-rows", "10")
    ref = specstate.Reference(trace)
    setup = specstate.Setup(ref.header, ref.geometry, tuple(ref.geometry.layer_ids), ref.inputs,
                            ref.ssm_dtype)
    clean, planted = StandinEngine(setup), StandinEngine(setup, plant_stale_flush=True)
    first = None
    while first is None and (event := ref.step()) is not None:
        clean.apply(event)
        planted.apply(event)
        for request in ref.requests():
            if not specstate.compare(planted.state(request), clean.state(request), atol=0.1):
                first = (event.line, request)
                break
    assert first is not None, "the planted bug never changes a state on this trace"
    r = run(trace, "--plant-stale-flush")
    assert r.returncode == 1
    head, detail = r.stdout.splitlines()[:2]
    assert head.startswith(f"DIVERGENCE at {trace}:{first[0]}: ")
    assert detail.startswith(f"  request {first[1]} (")


@pytest.mark.parametrize("dtype", ["f32", "bf16"])
def test_the_clean_engine_agrees_on_handoffs_and_a_host_tier(disaggregated, dtype):
    r = run(disaggregated(dtype))
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("AGREE: ")


def test_the_conv_cut_as_one_block_is_reported_where_the_handed_over_request_first_runs(
        disaggregated):
    trace = disaggregated("f32")
    lines = open(trace).read().splitlines()
    first = next(i for i, l in enumerate(lines) if '"handoff"' in l)
    request = json.loads(lines[first])["request"]
    # the request's first extend, the first event after which the harness reads its state
    extend = next(i for i in range(first + 1, len(lines))
                  if json.loads(lines[i]).get("request") == request)
    r = run(trace, "--plant-conv-one-block")
    assert r.returncode == 1, r.stdout + r.stderr
    head, detail = r.stdout.splitlines()[:2]
    assert head.startswith(f"DIVERGENCE at {trace}:{extend + 1}: extend [request {request} ")
    assert detail.startswith(f"  request {request} (running): ")
    assert "first: conv layer 0 [channel " in detail
