"""A stand-in serving engine in NumPy, for docs/engine-testing.md.

It is what an engine's own code looks like to the harness: its own pool, its own bookkeeping,
its own kernels. None of it is specstate's; only the token inputs and parameters come from
specstate (Setup.inputs), as an engine under test takes them in place of its model's.

The pool is inline, in the style of tokenspeed #159: every request has a working row and T-1
draft rows; a verify reads the request's *current input index* and writes the state after
token j to *output state index* j, [working, draft 0 .. draft T-2]; the accepted length a makes
output index a-1 the next input index, with no copy. Retract and finish flush the live draft
row into the working row first. Offload and restore move a cache row's state to and from a
host tier (a dict of slots); a handoff lands a request's state from a prefill instance, as the
engine's PD connector puts it together (pd_connector.py).

Two known bugs can be planted: `plant_stale_flush` (the reviewer comment on tokenspeed #159):
the flush is left for the next step, which runs it with the rows it was computed for, after the
row was freed and handed to another request; `plant_conv_one_block` (SGLang #30997): the PD
connector cuts the conv window as one block of [q | k | v].

The kernels are float32 NumPy, written from the Gated DeltaNet equations without regard to
specstate's operation order, so the engine agrees with the reference only within a tolerance.
"""

import numpy as np

import pd_connector
from specstate import bf16_to_float, float_to_bf16, sent_states

EPS = 1e-6


def _bf16(values):
    """Values rounded to bf16 (as float32), as an engine stores bf16 activations."""
    return bf16_to_float(float_to_bf16(values))


class StandinEngine:
    def __init__(self, setup, plant_stale_flush=False, plant_conv_one_block=False):
        h = setup.header
        g = setup.geometry
        self.g, self.inputs, self.layer_ids = g, setup.inputs, setup.layer_ids
        self.header, self.ssm_dtype = h, setup.ssm_dtype
        self.T = h["draft_tokens"] + 1
        self.bf16_pool = setup.ssm_dtype == "bf16"
        self.plant_stale_flush = plant_stale_flush
        self.plant_conv_one_block = plant_conv_one_block
        self.pool_rows = h["pool_rows"]
        rows = h["pool_rows"] + (h["max_requests"] + 1) * (self.T - 1)
        L = len(self.layer_ids)
        self.ssm = np.zeros((rows, L, g.HV, g.K, g.V), np.float32)
        self.conv = np.zeros((rows, L, g.conv_dim, g.W - 1), np.float32)
        self.requests = {}       # id -> {"req_row", "working_row", "input_index", "length"}
        self.swapped = {}        # id -> (ssm, conv, length) of a retracted request
        self.pending_flushes = []  # planted bug only: (src, dst) flushes owed by finish/retract
        self.host = {}           # slot -> (ssm, conv) saved by an offload
        self.params = [setup.inputs.parameters(l) for l in self.layer_ids]

    # --- bookkeeping ---------------------------------------------------------------------

    def draft_row(self, req_row, j):
        return self.pool_rows + req_row * (self.T - 1) + j

    def output_indices(self, r):
        return [r["working_row"]] + [self.draft_row(r["req_row"], j) for j in range(self.T - 1)]

    def copy_row(self, src, dst):
        self.ssm[dst] = self.ssm[src]
        self.conv[dst] = self.conv[src]

    def flush(self, r):
        """Draft -> working: the live state moves into the working row."""
        if r["input_index"] == r["working_row"]:
            return
        if self.plant_stale_flush:
            self.pending_flushes.append((r["input_index"], r["working_row"]))  # BUG: left for later
        else:
            self.copy_row(r["input_index"], r["working_row"])
        r["input_index"] = r["working_row"]

    def apply(self, event):
        getattr(self, "on_" + event.kind)(**event.fields)

    def on_extend(self, request, tokens, req_row=-1, working_row=-1, prefix_len=0,
                  cow_src_row=-1, track=()):
        r = self.requests.get(request)
        if r is None:
            r = {"req_row": req_row, "working_row": working_row, "input_index": working_row,
                 "length": prefix_len}
            self.requests[request] = r
            if prefix_len > 0:
                self.copy_row(cow_src_row, working_row)
            else:
                self.ssm[working_row] = 0
                self.conv[working_row] = 0
        else:
            self.flush(r)
        states = self.run(request, r["length"], tokens, r["input_index"])
        for t in track:
            self.store(states[t["length"] - r["length"] - 1], t["row"])
        self.store(states[-1], r["working_row"])
        r["input_index"] = r["working_row"]
        r["length"] += tokens

    def on_verify(self, batch, padding=0):
        self.run_pending_flushes()
        for e in batch:
            r = self.requests[e["request"]]
            states = self.run(e["request"], r["length"], self.T, r["input_index"])
            out = self.output_indices(r)
            for j, s in enumerate(states):
                self.store(s, out[j])
            a = e["accepted"]
            if "track" in e:
                self.copy_row(out[e["track"]["length"] - r["length"] - 1], e["track"]["row"])
            r["input_index"] = out[a - 1]
            r["length"] += a

    def on_decode(self, batch, padding=0):
        self.run_pending_flushes()
        for e in batch:
            r = self.requests[e["request"]]
            (state,) = self.run(e["request"], r["length"], 1, r["input_index"])
            self.store(state, r["working_row"])
            if "track" in e:
                self.store(state, e["track"]["row"])
            r["input_index"] = r["working_row"]
            r["length"] += 1

    def on_retract(self, request):
        r = self.requests.pop(request)
        self.flush(r)
        w = r["working_row"]
        self.swapped[request] = (self.ssm[w].copy(), self.conv[w].copy(), r["length"])

    def on_resume(self, request, req_row, working_row):
        ssm, conv, length = self.swapped.pop(request)
        self.ssm[working_row], self.conv[working_row] = ssm, conv
        self.requests[request] = {"req_row": req_row, "working_row": working_row,
                                  "input_index": working_row, "length": length}

    def on_finish(self, request):
        if self.swapped.pop(request, None) is None:
            self.flush(self.requests.pop(request))

    def on_check(self):
        pass

    def on_offload(self, row, slot):
        self.host[slot] = (self.ssm[row].copy(), self.conv[row].copy())

    def on_restore(self, slot, row):
        self.ssm[row], self.conv[row] = self.host[slot]

    def on_handoff(self, request, length, row):
        sent = sent_states(self.g, self.ssm_dtype, self.header["seed"], request, length,
                           self.header["prefill_tp"])
        self.ssm[row], self.conv[row] = pd_connector.receive(self.g, sent,
                                                             self.plant_conv_one_block)

    def run_pending_flushes(self):
        for src, dst in self.pending_flushes:
            self.copy_row(src, dst)
        self.pending_flushes = []

    # --- what the harness reads ----------------------------------------------------------

    def state(self, request):
        if request in self.swapped:
            ssm, conv, _ = self.swapped[request]
        else:
            row = self.requests[request]["input_index"]
            ssm, conv = self.ssm[row], self.conv[row]
        return (float_to_bf16(ssm) if self.bf16_pool else ssm), float_to_bf16(conv)

    def store(self, state, row):
        ssm, conv = state
        self.ssm[row] = _bf16(ssm) if self.bf16_pool else ssm
        self.conv[row] = conv

    # --- kernels -------------------------------------------------------------------------

    def run(self, request, position, count, row):
        """The states after each of `count` tokens from position `position`, starting from the
        state in `row`: a list of (ssm [L, HV, K, V], conv [L, conv_dim, W-1])."""
        ssm, conv = self.ssm[row].copy(), self.conv[row].copy()
        per_layer = [self.layer(i, request, position, count, ssm[i], conv[i])
                     for i in range(len(self.layer_ids))]
        return [(np.stack([p[j][0] for p in per_layer]), np.stack([p[j][1] for p in per_layer]))
                for j in range(count)]

    def layer(self, i, request, position, count, S, window):
        g, p = self.g, self.params[i]
        x, a, b = self.inputs.tokens(request, position, self.layer_ids[i], count)
        hk, ratio = g.H * g.K, g.HV // g.H
        A = np.exp(p["A_log"])
        out = []
        for j in range(count):
            full = np.concatenate([window, x[j][:, None]], axis=1)       # [C, W]
            y = (full * p["conv_weight"]).sum(axis=1)
            y = _bf16(y / (1 + np.exp(-y)))                               # SiLU, bf16 activations
            window = full[:, 1:]
            q, k, v = y[:hk].reshape(g.H, g.K), y[hk:2 * hk].reshape(g.H, g.K), y[2 * hk:]
            q = q / np.sqrt((q * q).sum(1, keepdims=True) + EPS) / np.sqrt(g.K)
            k = k / np.sqrt((k * k).sum(1, keepdims=True) + EPS)
            q, k, v = np.repeat(q, ratio, 0), np.repeat(k, ratio, 0), v.reshape(g.HV, g.V)
            # a decay per value head [HV], or per key channel [HV, K] (kimi-delta-attention)
            head_a = A.reshape(A.shape + (1,) * (a[j].ndim - 1))
            alpha = np.exp(-head_a * np.logaddexp(0, a[j] + p["dt_bias"]))
            beta = 1 / (1 + np.exp(-b[j]))
            S = alpha.reshape(g.HV, -1, 1) * S
            delta = beta[:, None] * (v - np.einsum("hkv,hk->hv", S, k))
            S = (S + k[:, :, None] * delta[:, None, :]).astype(np.float32)
            out.append((S.copy(), window.copy()))
        return out
