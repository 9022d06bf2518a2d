"""The code in docs/recording.md runs: the quick-start snippet, and both engine adapters driven
by stand-ins that carry only the engine fields the page says it assumes. This keeps the page
from rotting; it says nothing about the real engines."""

import os
import re
from types import SimpleNamespace as NS

import pytest

from specstate_trace import read_trace

DOC = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "recording.md")


def python_blocks():
    text = open(DOC, encoding="utf-8").read()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def block_defining(name):
    for code in python_blocks():
        if f"class {name}" in code:
            return code
    raise AssertionError(f"docs/recording.md has no python block defining {name}")


def test_every_python_block_compiles():
    blocks = python_blocks()
    assert len(blocks) >= 3
    for code in blocks:
        compile(code, DOC, "exec")


def test_quick_start_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = python_blocks()[0].replace('sys.path.insert(0, "/path/to/specstate/python")', "pass")
    exec(compile(code, DOC, "exec"), {})
    read_trace(tmp_path / "run.trace")


class _Op(NS):
    def num_extends(self):
        return self.n_ext


def _op(n_ext, rows, page_tracks=None):
    """rows: (rid, req_row, working, tokens, prefix, cow, track_row, track_len)."""
    cols = list(zip(*rows))
    return _Op(n_ext=n_ext, request_ids=list(cols[0]), request_pool_indices=list(cols[1]),
               mamba_pool_indices=list(cols[2]), input_lengths=list(cols[3]),
               extend_prefix_lens=list(cols[4]), mamba_cow_src_indices=list(cols[5]),
               mamba_checkpoint_dst_indices=list(cols[6]), mamba_branching_seqlens=list(cols[7]))


def test_tokenspeed_adapter_with_stand_ins(tmp_path):
    ns = {}
    exec(compile(block_defining("TokenspeedRecorder"), DOC, "exec"), ns)
    path = tmp_path / "ts.trace"
    rec = ns["TokenspeedRecorder"](path, preset="tiny", tp=1, ssm_dtype="f32", draft_tokens=3,
                                   mamba_rows=16, max_requests=4, page_size=16)
    plan = lambda *ops: NS(forward=list(ops), cache=[])
    # Round 1: "a" prefills 32 tokens with a snapshot at 32 into row 10.
    rec.on_plan(plan(_op(1, [("a", 0, 1, 32, 0, -1, 10, 32)])))
    rec.on_results([])
    # Round 2: "b" hits a's 32-token prefix (COW from row 10); "a" verifies.
    rec.on_plan(plan(_op(1, [("b", 1, 2, 5, 32, 10, -1, 0), ("a", 0, 1, 4, 0, -1, 11, 0)])),
                padding=2)
    rec.on_results([3])                  # a: 3 drafts + bonus = 4 -> 36
    # Round 3: a retract-only plan; then "a" comes back into other rows and verifies.
    rec.on_plan(plan(), retracted_ids=["a"])
    rec.on_plan(plan(_op(0, [("a", 2, 3, 4, 0, -1, 12, 0), ("b", 1, 2, 4, 0, -1, -1, 0)])))
    rec.on_results([2, 0], finished_ids=["b"])
    rec.on_plan(plan(_op(0, [("a", 2, 3, 4, 0, -1, 12, 0)])))
    rec.on_results([3], finished_ids=["a"])
    rec.close()
    _, events = read_trace(path)
    kinds = [e["event"] for _, e in events]
    assert kinds == ["extend", "extend", "verify", "retract", "resume", "verify", "finish",
                     "verify", "finish"]
    assert events[1][1]["prefix_len"] == 32 and events[1][1]["cow_src_row"] == 10
    assert events[5][1]["batch"][0] == {"request": 0, "accepted": 3}
    # a: 36 -> 39 -> 43: the last verify crosses no boundary; 48 would need 12 more.
    assert "track" not in events[7][1]["batch"][0]


def test_sglang_adapter_with_stand_ins(tmp_path):
    ns = {}
    exec(compile(block_defining("SGLangRecorder"), DOC, "exec"), ns)
    path = tmp_path / "sgl.trace"
    args = NS(speculative_algorithm="EAGLE", speculative_num_draft_tokens=4)
    rec = ns["SGLangRecorder"](path, args, None, mamba_pool_size=16, max_requests=4,
                               page_size=16, preset="tiny")

    def req(rid, req_row, mamba, cow=None):
        return NS(rid=rid, req_pool_idx=req_row, mamba_pool_idx=mamba,
                  last_node=NS(mamba_value=[cow]), mamba_ping_pong_track_buffer=[12, 13],
                  mamba_next_track_idx=0, finished=lambda: False)

    def extend_batch(reqs, extend_lens, prefix_lens, track=None):
        n = len(reqs)
        mask = [i in (track or {}) for i in range(n)]
        return NS(reqs=reqs, extend_lens=extend_lens, prefix_lens=prefix_lens,
                  mamba_track_mask=NS(tolist=lambda: mask),
                  mamba_track_indices=[(track or {}).get(i, (0, -1))[1] for i in range(n)],
                  mamba_track_seqlens=[(track or {}).get(i, (0, -1))[0] for i in range(n)])

    x, y = req("x", 0, 1), req("y", 1, 2, cow=10)
    rec.on_extend_batch(extend_batch([x], [30], [0], track={0: (16, 10)}))
    rec.on_extend_batch(extend_batch([y], [3], [16]))
    rec.on_verify_result(NS(reqs=[x, y]), NS(accept_length_per_req_cpu=[1, 3]), padding=1)
    rec.on_retract([x])
    x.req_pool_idx, x.mamba_pool_idx = 2, 3
    rec.on_extend_batch(extend_batch([x], [33], [0]))   # re-prefill of 30 + 2 + 1 tokens
    y.finished = lambda: True
    rec.on_verify_result(NS(reqs=[x, y]), NS(accept_length_per_req_cpu=[0, 3]))
    rec.on_finish(x)
    rec.w.close()
    _, events = read_trace(path)
    kinds = [e["event"] for _, e in events]
    assert kinds == ["extend", "extend", "verify", "retract", "resume", "extend", "verify",
                     "finish", "finish"]
    # x: 30 -> 32 crosses the page boundary 32: snapshot into its ping-pong track row.
    assert events[2][1]["batch"] == [{"request": 0, "accepted": 2,
                                      "track": {"length": 32, "row": 12}},
                                     {"request": 1, "accepted": 4}]
    assert events[5][1]["tokens"] == 1
    # The re-prefill absorbs the one token x had not yet (32 -> 33); then x 33 -> 34 and
    # y 23 -> 27 cross no boundary.
    assert all("track" not in b for b in events[6][1]["batch"])
