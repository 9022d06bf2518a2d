"""A geometry a backend refuses, or one too large for the memory, is refused before anything
is allocated, with the trace's FILE:LINE of the header that sets it (as `specstate replay`
refuses it) and what the pools would need; never a bare MemoryError (or, as before, a process
the kernel kills for mapping terabytes)."""

import re

import pytest

import specstate
from conftest import source_path

RETRACT = source_path("examples", "retract-resume.jsonl")
RETRACT_HEADER_LINE = 6  # comment lines come before the header


def write_trace(path, geometry):
    conv_dim = 2 * geometry["H"] * geometry["K"] + geometry["HV"] * geometry["V"]
    g = dict(geometry, conv_dim=conv_dim)
    header = ('{"specstate_trace": 2, "geometry": {' +
              ", ".join(f'"{k}": {g[k]}' for k in ("layers", "H", "HV", "K", "V", "conv_dim",
                                                    "W")) +
              '}, "tp": 1, "ssm_dtype": "f32", "draft_tokens": 1, "pool_rows": 4, '
              '"max_requests": 2, "page_size": 0, "seed": 1}')
    path.write_text(header + "\n" + '{"event": "extend", "request": 1, "req_row": 0, '
                    '"working_row": 0, "tokens": 4}\n')
    return str(path)


def test_a_header_geometry_the_backend_refuses_names_the_header_line(tmp_path):
    trace = write_trace(tmp_path / "odd.jsonl", dict(layers=1, H=1, HV=1, K=8, V=12, W=4))
    with pytest.raises(specstate.InputError,
                       match=rf"^{re.escape(trace)}:1: backend 'cpu': unsupported geometry"):
        specstate.Reference(trace)


def test_a_given_geometry_the_backend_refuses_names_the_header_line_and_the_argument():
    odd = specstate.custom_geometry(layers=1, H=1, HV=1, K=8, V=12, W=4)
    with pytest.raises(specstate.InputError,
                       match=rf"^{re.escape(RETRACT)}:{RETRACT_HEADER_LINE}: backend 'cpu': "
                             rf"unsupported geometry .*\(with the geometry given in place of the "
                             rf"header's\)$"):
        specstate.Reference(RETRACT, geometry=odd)


HUGE = dict(layers=1024, H=8, HV=4096, K=1024, V=1024, W=4)  # 16 TiB per state row


def test_a_huge_header_geometry_says_what_the_pools_would_need(tmp_path):
    trace = write_trace(tmp_path / "huge.jsonl", HUGE)
    with pytest.raises(specstate.InputError,
                       match=rf"^{re.escape(trace)}:1: the pools need [0-9.]+ GiB for 1 lane\(s\) "
                             rf"on the cpu backend, more than its [0-9.]+ GiB of .* \(hold fewer "
                             rf"layers: layers=\)$"):
        specstate.Reference(trace)


def test_a_huge_given_geometry_says_what_the_pools_would_need():
    huge = specstate.custom_geometry(**HUGE)
    with pytest.raises(specstate.InputError, match=r"the pools need [0-9.]+ GiB"):
        specstate.Reference(RETRACT, geometry=huge)


def test_inputs_of_a_huge_geometry_say_what_they_would_need():
    inputs = specstate.Inputs(specstate.custom_geometry(**HUGE), seed=1)
    with pytest.raises(specstate.InputError,
                       match=r"count 16777216: the inputs of 16777216 tokens .* need [0-9.]+ GiB, "
                             r"more than the [0-9.]+ GiB of "):
        inputs.tokens(1, 0, 0, count=1 << 24)
    x, a, b = inputs.tokens(1, 0, 0, count=2)
    assert x.shape == (2, inputs.geometry.conv_dim)
