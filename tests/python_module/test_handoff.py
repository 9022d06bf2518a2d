"""Both sides of a prefill/decode handoff from Python: the prefill instance's states
(specstate.sent_states) resliced to a rank (specstate.reslice) are what that rank computes, and
what the Reference's handoff event lands in the row."""

from pathlib import Path

import numpy as np
import pytest

import specstate

# tiny, TP 2 rank 1, prefill_tp 1, seed 29
SCENARIO = str(Path(__file__).resolve().parents[1] / "scenarios" / "handoff-conv-one-block.jsonl")


@pytest.mark.parametrize("dtype", ["f32", "bf16"])
def test_resliced_states_are_each_ranks_own(dtype):
    whole = specstate.geometry("qwen3-next-80b-a3b", layers="0,17")
    sent = specstate.sent_states(whole, dtype, 7, 3, 20, 1)
    assert len(sent) == 1 and sent[0].ssm.shape == (2, 32, 128, 128)
    halves = [specstate.geometry("qwen3-next-80b-a3b", tp=2, layers="0,17", rank=r)
              for r in range(2)]
    from_halves = specstate.sent_states(whole, dtype, 7, 3, 20, 2)
    for rank, half in enumerate(halves):
        got = specstate.reslice(sent, half)
        own = specstate.sent_states(half, dtype, 7, 3, 20, 2)[rank]  # the TP 2 instance's rank
        assert got.digest() == own.digest()
        assert np.array_equal(got.ssm, own.ssm) and np.array_equal(got.conv, own.conv)
    back = specstate.reslice(from_halves, whole)
    assert back.digest() == sent[0].digest()


def test_the_reference_continues_from_the_handed_over_state():
    ref = specstate.Reference(SCENARIO, backend="cpu", strategy="inline")
    event = ref.step()
    assert event.kind == "handoff" and event.fields == {"request": 1, "length": 23, "row": 2}
    ref.step()  # the extend that hits row 2 and runs the last prompt token
    rank = specstate.geometry("tiny", tp=2, rank=1)
    sent = specstate.sent_states(rank, "f32", 29, 1, 23, 1)
    assert len(sent) == 1 and sent[0].geometry.tp == 1
    # 23 tokens at TP 1 resliced to rank 1, then one more there, are the 24 tokens that rank 1 of
    # a TP 2 instance computes itself (an f32 pool stores the state without rounding).
    assert ref.state(1).digest() == specstate.sent_states(rank, "f32", 29, 1, 24, 2)[1].digest()
    assert specstate.reslice(sent, rank).digest() == \
        specstate.sent_states(rank, "f32", 29, 1, 23, 2)[1].digest()


def test_reslice_refuses_a_wrong_count_of_ranks():
    half = specstate.geometry("tiny", tp=2, rank=0)
    sent = specstate.sent_states(half, "f32", 1, 1, 5, 2)
    with pytest.raises(specstate.InputError, match="each of the 2 sending ranks, got 1"):
        specstate.reslice(sent[:1], half)
