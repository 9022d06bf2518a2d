"""Divergence forensics and the calibrated tolerance, on engines built from the reference itself:
an exact engine whose state() hands back a planted wrong state, so each bug's true answer is
known. (The torch engine's drift and planted bugs: test_engine_torch.py.)"""

import json

import numpy as np
import pytest

import specstate
from specstate import forensics
from specstate.forensics import History


def write(path, header, events):
    with open(path, "w") as f:
        for obj in [header] + events:
            f.write(json.dumps(obj) + "\n")
    return str(path)


HEADER = {"specstate_trace": 1, "preset": "tiny", "tp": 1, "ssm_dtype": "f32",
          "draft_tokens": 3, "pool_rows": 4, "max_requests": 3, "page_size": 0, "seed": 3}


@pytest.fixture
def trace(tmp_path):
    """Request 1 prefills 9 tokens, verifies (a=2, a=1, a=4), decodes; request 2 runs beside it,
    finishes, and request 3 takes its row (1)."""
    return write(tmp_path / "t.jsonl", HEADER, [
        {"event": "extend", "request": 1, "req_row": 0, "working_row": 0, "tokens": 9},
        {"event": "extend", "request": 2, "req_row": 1, "working_row": 1, "tokens": 5},
        {"event": "verify", "batch": [{"request": 1, "accepted": 2},
                                      {"request": 2, "accepted": 3}]},
        {"event": "finish", "request": 2},
        {"event": "extend", "request": 3, "req_row": 1, "working_row": 1, "tokens": 4},
        {"event": "verify", "batch": [{"request": 1, "accepted": 1}]},
        {"event": "verify", "batch": [{"request": 1, "accepted": 4}]},
        {"event": "decode", "batch": [{"request": 1}, {"request": 3}]},
    ])


class ExactEngine:
    """An engine with no pool whose kernel is the reference's step (Inputs.advance): each
    request's state is kept apart and advanced by its tokens, so it agrees bit for bit."""

    def __init__(self, setup):
        self.inputs, self.T = setup.inputs, setup.header["draft_tokens"] + 1
        g, L = setup.geometry, len(setup.layer_ids)
        dtype = np.uint16 if setup.ssm_dtype == "bf16" else np.float32
        self.zeros = (np.zeros((L, g.HV, g.K, g.V), dtype),
                      np.zeros((L, g.conv_dim, g.W - 1), np.uint16))
        self.states, self.lengths = {}, {}
        self.seen = {}        # (request, length) -> every state held after an event
        self.event = None

    def run(self, request, count, keep):
        start = self.lengths.get(request, 0)
        state = self.states.get(request, self.zeros)
        self.states[request] = self.inputs.advance(state, request, start, count)[keep - 1]
        self.lengths[request] = start + keep

    def apply(self, event):
        self.event, f = event, event.fields
        if event.kind == "extend":
            self.run(f["request"], f["tokens"], f["tokens"])
        elif event.kind in ("verify", "decode"):
            for e in f["batch"]:
                count = self.T if event.kind == "verify" else 1
                self.run(e["request"], count, e.get("accepted", 1))
        elif event.kind == "finish":
            del self.states[f["request"]]
        for r, state in self.states.items():
            self.seen[(r, self.lengths[r])] = state

    def state(self, request):
        return self.states[request]


class PlantedEngine(ExactEngine):
    """After the event on line `line`, state(`request`) returns plant(engine, request)."""

    def __init__(self, setup, line, request, plant):
        super().__init__(setup)
        self.line, self.request, self.plant = line, request, plant

    def state(self, request):
        if self.event.line == self.line and request == self.request:
            return self.plant(self, request)
        return self.states[request]


def check(trace, line, request, plant, **options):
    return specstate.check_engine(
        trace, lambda setup: PlantedEngine(setup, line, request, plant), **options)


def earlier(k):
    """The request's true state k tokens back, run from the last state an event ended at."""
    def plant(e, r):
        target = e.lengths[r] - k
        start = max(n for (q, n) in e.seen if q == r and n <= target)
        state = e.seen[(r, start)]
        return state if start == target else e.inputs.advance(state, r, start,
                                                              target - start)[-1]
    return plant


def test_a_state_k_tokens_stale_is_named_stale_by_k_tokens(trace):
    # Line 8: request 1's verify accepts 4 (12 -> 16 tokens); 1 to 3 tokens earlier are
    # states inside that verify, which no event ends at: forensics rebuilds them.
    for k in (1, 2, 3, 4):
        result = check(trace, 8, 1, earlier(k))
        assert not result and result.event.line == 8 and result.request == 1
        found = result.forensics
        assert found.matched and found.best.kind == "earlier" and found.best.tokens == k
        assert found.best.distance == 0.0
        assert found.verdict.startswith(("stale by one token: " if k == 1 else
                                         f"stale by {k} tokens: ") +
                                        f"request 1 at length {16 - k}")
        assert found.live.distance > 0.1


def test_a_rejected_draft_is_named_ahead_with_its_verify(trace):
    # Line 7: request 1 verifies T = 4 tokens from 11 and accepts 1; drafts 2..4 are rejected.
    def draft(j):
        def plant(e, r):
            return e.inputs.advance(e.seen[(r, 11)], r, 11, 4)[j - 1]
        return plant

    for j in (2, 3, 4):
        found = check(trace, 7, 1, draft(j)).forensics
        assert found.best.kind == "draft" and found.best.tokens == j - 1
        assert found.best.distance == 0.0
        assert f"draft token {j} of the verify at line 7, rejected" in found.verdict
        assert found.verdict.startswith("ahead by ")


def test_another_requests_state_and_zeros_are_named(trace):
    found = check(trace, 6, 1, lambda e, r: e.states[3]).forensics
    assert found.best.kind == "other" and found.best.request == 3
    assert found.verdict.startswith("another request's state: request 3 (running)")
    found = check(trace, 6, 1, lambda e, r: e.zeros).forensics
    assert found.best.kind == "zeros" and found.verdict.startswith("a zeroed state")


def test_the_rows_last_owner_is_named(trace):
    # Request 3 took row 1 from request 2, which finished at line 5 at length 8.
    found = check(trace, 6, 3, lambda e, r: e.seen[(2, 8)]).forensics
    assert found.best.kind == "owner" and found.best.request == 2
    assert found.verdict.startswith("the previous owner's state: request 2 at length 8, "
                                    "finished at line 5, the last owner of row 1")


def test_the_right_tokens_from_the_wrong_state_are_named(trace):
    # Request 3's prefill (line 6) run from request 2's final state: the stale flush after reuse.
    def leaked(e, r):
        return e.inputs.advance(e.seen[(2, 8)], r, 0, 4)[-1]

    found = check(trace, 6, 3, leaked).forensics
    assert found.best.kind == "from" and found.best.distance == 0.0
    assert found.verdict.startswith("the right tokens run from the wrong state: its extend at "
                                    "line 6 ran its 4 tokens from the state of request 2")


def test_drift_is_not_called_a_bug(trace):
    # The live state moved by a little everywhere: no candidate is nearer than the live state.
    def drifted(e, r):
        s = e.states[r]
        return s.ssm * np.float32(1.001), s.conv

    found = check(trace, 8, 1, drifted).forensics
    assert found.best.kind == "live" and not found.matched
    assert found.verdict.startswith("closest to its own live state")


def test_the_report_prints_the_verdict_and_the_candidates(trace):
    text = str(check(trace, 8, 1, earlier(1)))
    lines = text.splitlines()
    assert lines[0].endswith(":8: verify [request 1 a=4]")
    assert lines[2].startswith("  forensics: stale by one token: request 1 at length 15")
    assert "distance 0 vs " in lines[2] and " to the live state" in lines[2]
    assert "ssm       conv  candidate" in lines[3]
    assert "request 1 at length 16: the live state" in text


def test_forensics_off_and_the_passing_path_does_not_investigate(trace, monkeypatch):
    assert check(trace, 8, 1, earlier(1), forensics=False).forensics is None

    def fail(*args):
        raise AssertionError("investigate ran on a passing run")

    monkeypatch.setattr(specstate.harness, "investigate", fail)
    assert check(trace, 0, 1, earlier(1))  # line 0: nothing planted


def test_history_is_bounded(trace):
    ref = specstate.Reference(trace)
    history = History(ref.tokens_per_verify, depth=3, keep_finished=1)
    while (event := ref.step()) is not None:
        history.after(event)
        for r in ref.requests():
            history.record(r, ref.state(r), event.line)
    assert [n for n, _, _ in history.snapshots[1]] == [12, 16, 17]   # of 9, 11, 12, 16, 17
    assert list(history.finished) == [2] and 3 not in history.finished
    assert history.previous_owner[3] == (2, 1)


def exact_engine(trace):
    return ExactEngine


def test_calibrating_an_exact_engine_measures_no_drift(trace):
    tolerance = specstate.calibrate(exact_engine(trace), trace, requests=2, tokens=40)
    assert tolerance.states > 0 and tolerance.lengths[0] == 1 and tolerance.lengths[-1] >= 40
    assert not tolerance.ssm_drift.any() and not tolerance.conv_drift.any()
    assert "relative drift per SSM head 0 after 1 token" in str(tolerance)


def test_the_calibrated_criterion_is_per_head_and_grows_with_tokens(trace):
    t = specstate.calibrate(exact_engine(trace), trace, requests=1, tokens=16, factor=2,
                            floor=0.0)
    lengths = np.array([1, 8, 16])
    ssm = np.zeros((3, 2, 4))
    ssm[:, 0, 1] = [1e-3, 2e-3, 3e-3]            # layer 0, head 1 drifts; the others are exact
    t = specstate.Tolerance(t.ssm_dtype, t.layer_ids, t.heads, 2.0, 0.0, lengths, ssm,
                            np.zeros((3, 2)), 3, 1, 16)
    assert t.drift(4)[0][0, 1] == 1e-3 and t.drift(8)[0][0, 1] == 2e-3
    assert t.drift(64)[0][0, 1] == pytest.approx(3e-3 * 2)     # sqrt(64 / 16) beyond
    ref = specstate.Reference(trace)
    ref.step()                                             # request 1 at 9 tokens
    live = ref.state(1)
    scale = np.abs(live.ssm[0, 1]).max()
    moved = live.ssm.copy()
    moved[0, 1, 0, 0] += np.float32(0.9 * 2 * 2e-3 * scale)   # inside head 1's allowance
    assert t.compare((moved, live.conv), live, 9)
    moved[0, 2, 0, 0] += np.float32(1e-6)                      # head 2 allows nothing
    c = t.compare((moved, live.conv), live, 9)
    assert not c and c.outside == 1 and c.first.where == "head 2, k 0, v 0"
    assert c.first.allowed == 0.0


def test_a_tolerance_for_other_layers_or_dtype_is_refused(trace, tmp_path):
    t = specstate.calibrate(exact_engine(trace), trace, requests=1, tokens=8)
    with pytest.raises(ValueError, match="calibrated for a f32 pool, layers \\[0, 1\\]"):
        specstate.check_engine(trace, exact_engine(trace), tolerance=t, layers="1")
    bf16 = write(tmp_path / "b.jsonl", dict(HEADER, ssm_dtype="bf16"),
                 [{"event": "extend", "request": 1, "req_row": 0, "working_row": 0,
                   "tokens": 3}])
    with pytest.raises(ValueError, match="the trace has a bf16 pool"):
        specstate.check_engine(bf16, exact_engine(bf16), tolerance=t)
    with pytest.raises(ValueError, match="either tolerance= .* or rtol, atol and ulp"):
        specstate.check_engine(trace, exact_engine(trace), tolerance=t, atol=1e-3)


def test_calibrate_reports_a_failing_adapter_as_engine_error(trace):
    class Broken:
        def __init__(self, setup):
            pass

        def apply(self, event):
            raise KeyError("no row")

    with pytest.raises(specstate.EngineError, match="calibration.jsonl:2: extend .* KeyError"):
        specstate.calibrate(Broken, trace)


def test_advance_gives_the_references_states(trace):
    ref = specstate.Reference(trace)
    ref.step()
    nine = ref.state(1)
    ref.run(until_line=4)        # request 1 verified: 11 tokens
    eleven = ref.state(1)
    got = ref.inputs.advance(nine, 1, 9, 4)
    assert np.array_equal(got[1].ssm, eleven.ssm) and np.array_equal(got[1].conv, eleven.conv)
    assert forensics.EARLIER >= 4


def test_calibrate_refuses_a_kernel_bug_as_drift(trace):
    class Scaled(ExactEngine):
        def state(self, request):
            s = self.states[request]
            return s.ssm * np.float32(1.1), s.conv      # a kernel 10% off: no rounding

    with pytest.raises(ValueError, match="the engine's SSM state of layer 0, head 0 is 0.1 away "
                                         ".* max_drift 0.05, so no rounding drift but a kernel"):
        specstate.calibrate(Scaled, trace)
