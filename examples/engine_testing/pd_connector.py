"""The receiving side of a prefill/decode handoff, as the example engines' PD connector.

A decode instance at TP `tp` receives, for one request, the state every rank of the prefill
instance (TP `prefill_tp`) holds after the request's prompt: rank s holds value heads
s*HV_s .. and its key heads' slice of each conv channel group q | k, and its value heads' slice
of v. The connector puts the model's state back together from them and keeps its own rank's
part: the SSM by value heads, the conv window group by group. Written from that layout, not from
specstate's reslice, so that the harness checks it.

`one_block=True` plants SGLang #30997: the conv window cut as one contiguous 1/tp block of the
concatenated [q | k | v] channels, as if the three groups were one.
"""

import numpy as np


def receive(geometry, sent, one_block=False):
    """(ssm [layers, HV, K, V], conv [layers, conv_dim, W-1]) as float32 values for the rank of
    `geometry`, from `sent` (specstate.sent_states: a State per prefill rank, in rank order)."""
    g, s0 = geometry, sent[0].geometry
    ssm = np.concatenate([s.ssm_values for s in sent], axis=1)  # the model's value heads, in order
    key_s, value_s = s0.H * s0.K, s0.HV * s0.V  # a sending rank's channels of q (or k), and of v

    def group(lo, hi):  # the model's channels of one group: each rank's slice, in rank order
        return np.concatenate([s.conv_values[:, lo:hi] for s in sent], axis=1)

    q, k, v = group(0, key_s), group(key_s, 2 * key_s), group(2 * key_s, 2 * key_s + value_s)
    r, key, value = g.rank, g.H * g.K, g.HV * g.V  # this rank's channels of q (or k), and of v
    if one_block:  # BUG when planted: the groups sliced as one
        whole = np.concatenate([q, k, v], axis=1)
        conv = whole[:, r * g.conv_dim:(r + 1) * g.conv_dim]
    else:
        conv = np.concatenate([q[:, r * key:(r + 1) * key], k[:, r * key:(r + 1) * key],
                               v[:, r * value:(r + 1) * value]], axis=1)
    return ssm[:, r * g.HV:(r + 1) * g.HV], conv
