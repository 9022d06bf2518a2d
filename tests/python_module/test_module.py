"""The binding: geometry, inputs, the reference, states, digests, compare, tensors."""

import json
import subprocess

import numpy as np
import pytest

import specstate
from conftest import source_path

SCENARIO = source_path("tests", "scenarios", "stale-flush-after-reuse.jsonl")
RETRACT = source_path("examples", "retract-resume.jsonl")


def test_presets_and_geometry():
    names = [p["name"] for p in specstate.presets()]
    assert "qwen3-next-80b-a3b" in names and "tiny" in names
    g = specstate.geometry("qwen3-next-80b-a3b", tp=8)
    assert (g.layers, g.H, g.HV, g.K, g.V, g.W, g.conv_dim) == (36, 2, 4, 128, 128, 4, 1024)
    sub = specstate.geometry("qwen3-next-80b-a3b", tp=8, layers="0,17,35")
    assert sub.layers == 3 and sub.layer_ids == [0, 17, 35]
    assert specstate.geometry("tiny", layers=[1]).layer_ids == [1]
    with pytest.raises(specstate.InputError, match="does not divide"):
        specstate.geometry("tiny", tp=3)


def test_custom_geometry_is_checked_field_by_field():
    g = specstate.custom_geometry(layers=3, H=2, HV=6, K=32, V=24, W=3, conv_dim=2 * 2 * 32 + 6 * 24)
    assert (g.preset, g.layers, g.conv_dim, g.recurrence) == ("custom", 3, 272, "gated-deltanet")
    kinds = {p["name"]: p["recurrence"] for p in specstate.presets()}
    assert set(kinds.values()) == {"gated-deltanet", "kimi-delta-attention"}
    assert kinds["kimi-linear-48b-a3b"] == "kimi-delta-attention"
    with pytest.raises(specstate.InputError, match="unknown recurrence 'kda' \\(known: "
                       "gated-deltanet, kimi-delta-attention\\)"):
        specstate.custom_geometry(layers=3, H=2, HV=6, K=32, V=24, W=3, recurrence="kda")
    for kwargs, message in [
            (dict(layers=0), "layers 0 outside 1..1024"),
            (dict(HV=5), "HV 5 is not a multiple of H 2"),
            (dict(K=12), "K 12 is not a multiple of 8"),
            (dict(W=1), "W 1 outside 2..64"),
            (dict(conv_dim=100), "conv_dim 100 is not 2\\*H\\*K \\+ HV\\*V = 272")]:
        args = dict(layers=3, H=2, HV=6, K=32, V=24, W=3)
        args.update(kwargs)
        with pytest.raises(specstate.InputError, match=message):
            specstate.custom_geometry(**args)


def test_inputs_are_bf16_values_and_deterministic():
    g = specstate.geometry("tiny")
    inputs = specstate.Inputs(g, seed=12)
    x, a, b = inputs.tokens(7, 3, 1)
    assert x.shape == (g.conv_dim,) and a.shape == b.shape == (g.HV,) and x.dtype == np.float32
    bits = inputs.x(7, 3, 1, bits=True)
    assert bits.dtype == np.uint16 and np.array_equal(specstate.bf16_to_float(bits), x)
    assert np.array_equal(specstate.float_to_bf16(x), bits)
    block = inputs.x(7, 0, 1, count=5)
    assert block.shape == (5, g.conv_dim) and np.array_equal(block[3], x)
    assert not np.array_equal(inputs.x(7, 3, 0), x)  # the model layer enters the hash
    assert np.all((x >= -2) & (x < 2)) and np.all((a >= -4) & (a < 4))
    p = inputs.parameters(1)
    assert p["conv_weight"].shape == (g.conv_dim, g.W) and p["A_log"].shape == (g.HV,)
    with pytest.raises(specstate.InputError, match="layer 2 is not a layer"):
        inputs.x(7, 3, 2)


def test_derived_values_are_normalised():
    g = specstate.geometry("tiny")
    d = specstate.Inputs(g, seed=3).derive(5, 10, 0)
    assert d["conv_out"].shape == (g.conv_dim,) and d["q_hat"].shape == (g.H, g.K)
    np.testing.assert_allclose(np.linalg.norm(d["k_hat"], axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(d["q_hat"], axis=1), g.K ** -0.5, rtol=1e-5)
    assert np.all((d["alpha"] > 0) & (d["alpha"] < 1) & (d["beta"] > 0) & (d["beta"] < 1))
    assert np.array_equal(specstate.bf16_to_float(specstate.float_to_bf16(d["conv_out"])),
                          d["conv_out"])  # bf16 values


def test_inputs_match_the_dump_bit_for_bit(specstate_bin, tmp_path):
    """The module's inputs, parameters and conv outputs are the dump's (the same host code),
    and the reference's state after the prefill is the dump's state of the last prompt token."""
    out = tmp_path / "dump"
    subprocess.run([specstate_bin, "dump", SCENARIO, "--request", "2", "--out", str(out)],
                   check=True, capture_output=True, timeout=120)
    meta = json.loads((out / "meta.json").read_text())
    g = specstate.geometry("tiny")
    inputs = specstate.Inputs(g, meta["seed"])
    ref = specstate.Reference(SCENARIO)
    ref.run(until_line=12)  # request 2's extend of 6 tokens
    state = ref.state(2)
    for layer in (0, 1):
        folder = out / f"layer{layer:02d}"
        x, a, b = inputs.tokens(2, 0, layer, count=6)
        assert np.array_equal(np.load(folder / "x.npy")[:6], x)
        assert np.array_equal(np.load(folder / "a.npy")[:6], a)
        assert np.array_equal(np.load(folder / "b.npy")[:6], b)
        p = inputs.parameters(layer)
        assert np.array_equal(np.load(folder / "conv_weight.npy"), p["conv_weight"])
        assert np.array_equal(np.load(folder / "A_log.npy"), p["A_log"])
        for t in range(6):
            d = inputs.derive(2, t, layer)
            assert np.array_equal(np.load(folder / "conv_out.npy")[t], d["conv_out"])
        assert np.array_equal(np.load(folder / "ssm_state.npy")[5], state.ssm[layer])
        assert np.array_equal(np.load(folder / "conv_state.npy")[5], state.conv_values[layer])


def test_a_float64_recurrence_on_the_derived_values_follows_the_reference():
    ref = specstate.Reference(SCENARIO)
    ref.step()  # request 1: extend of 8 tokens from the zero state
    g, inputs = ref.geometry, ref.inputs
    for layer in (0, 1):
        S = np.zeros((g.HV, g.K, g.V))
        for t in range(8):
            d = inputs.derive(1, t, layer)
            v = d["conv_out"][2 * g.H * g.K:].reshape(g.HV, g.V).astype(np.float64)
            k = np.repeat(d["k_hat"], g.HV // g.H, 0).astype(np.float64)
            S = d["alpha"][:, None, None] * S
            delta = d["beta"][:, None] * (v - np.einsum("hkv,hk->hv", S, k))
            S += k[:, :, None] * delta[:, None, :]
        np.testing.assert_allclose(ref.state(1).ssm[layer], S, atol=1e-6)


def test_kda_float64_recurrence_on_the_derived_values_follows_the_reference():
    """Kimi Delta Attention: alpha is [HV, K], one decay per key channel (S = Diag(alpha) S),
    and the CPU backend's state after a prefill follows a float64 recurrence on the derived
    values; the seven strategies agree on it."""
    g = specstate.custom_geometry(layers=2, H=2, HV=2, K=16, V=16, W=4,
                                  recurrence="kimi-delta-attention")
    refs = [specstate.Reference(SCENARIO, strategy=s, geometry=g)
            for s in ("scatter", "inline", "window", "replay", "deferred", "ring", "paged")]
    for r in refs:
        r.step()  # request 1: extend of 8 tokens from the zero state
    ref, inputs = refs[0], refs[0].inputs
    assert len({r.digest(1) for r in refs}) == 1
    params = inputs.parameters(0)
    assert params["dt_bias"].shape == (2, 16) and params["A_log"].shape == (2,)
    for layer in (0, 1):
        S = np.zeros((g.HV, g.K, g.V))
        for t in range(8):
            d = inputs.derive(1, t, layer)
            assert d["alpha"].shape == (2, 16) and d["beta"].shape == (2,)
            assert len(np.unique(d["alpha"])) > 2  # the channels' decays differ
            v = d["conv_out"][2 * g.H * g.K:].reshape(g.HV, g.V).astype(np.float64)
            k = d["k_hat"].astype(np.float64)
            S = d["alpha"][:, :, None] * S
            delta = d["beta"][:, None] * (v - np.einsum("hkv,hk->hv", S, k))
            S += k[:, :, None] * delta[:, None, :]
        np.testing.assert_allclose(ref.state(1).ssm[layer], S, atol=1e-6)


def test_every_strategy_gives_the_same_digests_after_every_event():
    refs = [specstate.Reference(RETRACT, strategy=s)
            for s in ("scatter", "inline", "window", "replay", "deferred", "ring", "paged")]
    while any(r.next_event is not None for r in refs):
        for r in refs:
            r.step()
        requests = refs[0].requests()
        assert all(r.requests() == requests for r in refs)
        for request in requests:
            digests = {r.digest(request) for r in refs}
            assert len(digests) == 1, (refs[0].events[refs[0]._core.next - 1], request)


def test_states_and_digests_agree_and_retracted_states_are_readable():
    ref = specstate.Reference(RETRACT)
    ref.run(until_line=20)  # after the retract of request 10
    assert ref.requests() == {10: "retracted", 11: "running", 12: "running"}
    for request in ref.requests():
        state = ref.state(request)
        assert state.ssm.dtype == np.uint16  # a bf16 pool: bf16 bits
        assert state.conv.shape == (2, ref.geometry.conv_dim, ref.geometry.W - 1)
        assert state.digest() == ref.digest(request)
        assert specstate.digest(ref.geometry, state.ssm, state.conv) == ref.digest(request)
    with pytest.raises(specstate.InputError, match="request 99 is not running or retracted"):
        ref.state(99)


def test_a_layer_subset_holds_exactly_those_layers():
    full, sub = specstate.Reference(RETRACT), specstate.Reference(RETRACT, layers="1")
    full.run()
    sub.run()
    for request in full.requests():
        a, b = full.state(request), sub.state(request)
        assert b.layer_ids == (1,)
        assert np.array_equal(a.ssm[1:], b.ssm) and np.array_equal(a.conv[1:], b.conv)


def test_outputs_of_the_last_verify():
    ref = specstate.Reference(RETRACT)
    ref.run(until_line=14)  # the first verify: requests 10, 11, 12 and one padding row
    values, requests = ref.outputs()
    assert requests == [10, 11, 12, None]
    assert values.shape == (4, 3, 2, 4, 16) and values.dtype == np.uint16
    assert np.any(values[0]) and not np.any(values[3])


def test_a_trace_the_validator_refuses_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    lines = open(SCENARIO).read().splitlines()
    lines.append('{"event": "verify", "batch": [{"request": 5, "accepted": 1}]}')
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(specstate.InputError, match=rf"{bad}:{len(lines)}: .*request 5"):
        specstate.Reference(bad)
    with pytest.raises(specstate.InputError, match="unknown backend|backend"):
        specstate.Reference(SCENARIO, backend="tpu")


def test_compare_names_layer_head_element_and_both_values():
    ref = specstate.Reference(SCENARIO)
    ref.run(until_line=10)
    state = ref.state(1)
    assert specstate.compare(state, state)
    ssm = state.ssm.copy()
    ssm[1, 2, 3, 4] += 0.25
    result = specstate.compare((ssm, state.conv), state)
    assert not result and result.outside == 1
    m = result.first
    assert (m.tensor, m.layer, m.index) == ("ssm", 1, (2, 3, 4))
    assert m.engine == pytest.approx(float(state.ssm[1, 2, 3, 4]) + 0.25)
    assert m.reference == float(state.ssm[1, 2, 3, 4])
    assert "ssm layer 1 [head 2, k 3, v 4]" in str(result)
    conv = state.conv.copy()
    conv[0, 40, 2] ^= 1  # one bf16 ulp in channel 40: k head 0, i 8 (H=2, K=16)
    one_ulp = specstate.compare((state.ssm, conv), state)
    assert not one_ulp and one_ulp.first.where == "channel 40 (k head 0, i 8), col 2"
    assert one_ulp.first.ulp == 1
    assert specstate.compare((state.ssm, conv), state, ulp=1)
    assert specstate.compare((ssm, state.conv), state, atol=0.2501)
    assert not specstate.compare((ssm, state.conv), state, atol=0.2499)
    r = abs(float(state.ssm[1, 2, 3, 4]))
    assert specstate.compare((ssm, state.conv), state, rtol=0.2501 / r)
    assert not specstate.compare((ssm, state.conv), state, rtol=0.2499 / r)
    with pytest.raises(ValueError, match="shape"):
        specstate.compare((ssm[:1], state.conv), state)


def test_compare_treats_nan_as_equal_only_to_nan():
    ref = specstate.Reference(SCENARIO)
    ref.step()
    state = ref.state(1)
    ssm = state.ssm.copy()
    ssm[0, 0, 0, 0] = np.nan
    assert not specstate.compare((ssm, state.conv), state, atol=1.0)
    assert specstate.compare((ssm, state.conv), (ssm, state.conv))


class _DLPackOnly:
    """An object that offers only DLPack (no buffer protocol, no __array__)."""

    def __init__(self, array):
        self._a = array

    def __dlpack__(self, stream=None):
        return self._a.__dlpack__()

    def __dlpack_device__(self):
        return self._a.__dlpack_device__()


def test_buffer_protocol_and_dlpack_tensors():
    ref = specstate.Reference(SCENARIO)
    ref.step()
    state = ref.state(1)
    as_memoryview = (memoryview(np.ascontiguousarray(state.ssm)), memoryview(state.conv))
    assert specstate.compare(as_memoryview, state)
    assert specstate.compare((_DLPackOnly(state.ssm), _DLPackOnly(state.conv)), state)
    assert np.array_equal(specstate.as_array(_DLPackOnly(state.ssm)), state.ssm)


def test_torch_tensors_float32_and_bfloat16():
    torch = pytest.importorskip("torch", reason="python3-torch is not installed")
    ref = specstate.Reference(RETRACT)  # a bf16 pool
    ref.run(until_line=13)
    state = ref.state(10)
    ssm_bf16 = torch.from_numpy(state.ssm.view(np.int16).copy()).view(torch.bfloat16)
    conv_f32 = torch.from_numpy(state.conv_values.copy())
    assert np.array_equal(specstate.as_array(ssm_bf16), state.ssm)
    assert specstate.compare({"ssm": ssm_bf16, "conv": conv_f32}, state)
    assert specstate.compare({"ssm": ssm_bf16.float(), "conv": conv_f32}, state)
    nudged = ssm_bf16.float().clone()
    nudged[1, 3, 2, 1] += 1.0
    result = specstate.compare({"ssm": nudged, "conv": conv_f32}, state)
    assert not result and result.first.index == (3, 2, 1) and result.first.layer == 1


def test_cuda_reference_agrees_with_cpu_when_a_device_is_present():
    if "cuda" not in specstate.backends():
        pytest.skip("no CUDA device (or not built with CUDA)")
    cpu, cuda = specstate.Reference(RETRACT), specstate.Reference(RETRACT, backend="cuda")
    while cpu.step() is not None:
        cuda.step()
        for request in cpu.requests():
            assert cpu.digest(request) == cuda.digest(request)


def test_a_custom_geometry_replaces_the_preset_of_the_trace():
    g = specstate.custom_geometry(layers=3, H=2, HV=4, K=32, V=16, W=3)
    refs = [specstate.Reference(RETRACT, strategy=s, geometry=g) for s in ("inline", "replay")]
    for r in refs:
        r.run(until_line=20)
    state = refs[0].state(10)  # retracted: its saved state
    assert state.ssm.shape == (3, 4, 32, 16) and state.conv.shape == (3, g.conv_dim, 2)
    assert refs[0].digest(11) == refs[1].digest(11) and refs[0].digest(10) == refs[1].digest(10)
    odd = specstate.custom_geometry(layers=1, H=1, HV=1, K=8, V=12, W=4)
    with pytest.raises(specstate.InputError, match="backend 'cpu': unsupported geometry"):
        specstate.Reference(RETRACT, geometry=odd)
