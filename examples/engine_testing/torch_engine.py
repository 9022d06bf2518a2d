"""An engine written in torch, for docs/engine-testing.md's second worked example.

Its pool lives on a torch device (cpu by default, cuda on a GPU machine) as torch tensors, and
its kernels are torch operations written from the Gated DeltaNet equations in the arithmetic of
tokenspeed #159's Triton kernels (fla's fused recurrent kernel, sglang's gating and causal conv
kernels), so it drifts from the reference as those kernels do:

- the conv output (after SiLU) is rounded to bf16, as the conv kernel stores q, k and v;
- beta = sigmoid(b) is rounded to bf16, as the gating kernel stores it in b's dtype;
- every exp is exp2(x * log2 e) in float32, the form Triton's tl.exp lowers to (ex2.approx);
- the state stays float32 across the tokens of one call and is stored in the pool dtype.

The pool is inline, as the NumPy stand-in's (standin_engine.py): each request has a working row
and T-1 draft rows; a verify writes the state after token j to output index j, [working,
draft 0 .. draft T-2], and the accepted length a makes output index a-1 the next input index;
retract and finish flush the live draft row into the working row first. Offload and restore
move a cache row to and from host slots (CPU tensors); a handoff lands the prefill instance's
state as the NumPy stand-in's PD connector puts it together (pd_connector.py).

`plant` plants a known bug:
- "stale-flush": the flush owed by finish or retract is left for the next step (the reviewer
  comment on tokenspeed #159); a retract then saves the working row, which holds the state after
  the first token of the last verify: stale by a-1 tokens.
- "off-by-one": a verify takes output index a-2 as the next input index when a >= 2 (the bonus
  token forgotten): the live state is one token stale.

`state(request)` hands the harness torch tensors on the engine's device; specstate.check_engine
copies them to the host (one device-to-host copy per state compared) and reads them through
DLPack.
"""

import math

import torch

import pd_connector
from specstate import sent_states

PLANTS = (None, "stale-flush", "off-by-one")
EPS = 1e-6
CHUNK = 64  # tokens per chunk of the chunked prefill, as fla's chunk kernels
LOG2E = 1.4426950408889634


def fast_exp(x):
    """exp as Triton's tl.exp computes it: exp2 of the float32 product x * log2(e)."""
    return torch.exp2(x * LOG2E)


def to_bf16(x):
    """Values rounded to bf16 and widened back, as a kernel that stores bf16 activations."""
    return x.to(torch.bfloat16).to(torch.float32)


class TorchEngine:
    def __init__(self, setup, device="cpu", plant=None):
        if plant not in PLANTS:
            raise ValueError(f"plant must be one of {PLANTS}, got {plant!r}")
        h, g = setup.header, setup.geometry
        self.header, self.ssm_dtype = h, setup.ssm_dtype
        if g.recurrence != "gated-deltanet":  # its kernels keep one decay per value head
            raise ValueError(f"this example engine runs gated-deltanet layers, not {g.recurrence}")
        self.g, self.inputs, self.layer_ids = g, setup.inputs, setup.layer_ids
        self.device, self.plant = torch.device(device), plant
        self.T = h["draft_tokens"] + 1
        self.pool_rows = h["pool_rows"]
        rows = h["pool_rows"] + (h["max_requests"] + 1) * (self.T - 1)
        L = len(self.layer_ids)
        dtype = torch.bfloat16 if setup.ssm_dtype == "bf16" else torch.float32
        # [rows, layers, HV, K, V] pool dtype; [rows, layers, conv_dim, W-1] bf16 (raw inputs)
        self.ssm = torch.zeros((rows, L, g.HV, g.K, g.V), dtype=dtype, device=self.device)
        self.conv = torch.zeros((rows, L, g.conv_dim, g.W - 1), dtype=torch.bfloat16,
                                device=self.device)
        self.requests = {}         # id -> {"req_row", "working_row", "input_index", "length"}
        self.swapped = {}          # id -> (ssm, conv, length): a retracted request, on the device
        self.pending_flushes = []  # "stale-flush" only: (src, dst) owed by finish/retract
        self.host = {}             # slot -> (ssm, conv) saved by an offload, in host memory
        self.params = [self._parameters(l) for l in self.layer_ids]

    def _parameters(self, layer):
        p = self.inputs.parameters(layer)
        return {k: torch.from_numpy(v).to(self.device) for k, v in p.items()}

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
        if self.plant == "stale-flush":
            self.pending_flushes.append((r["input_index"], r["working_row"]))  # BUG: left for later
        else:
            self.copy_row(r["input_index"], r["working_row"])
        r["input_index"] = r["working_row"]

    def run_pending_flushes(self):
        for src, dst in self.pending_flushes:
            self.copy_row(src, dst)
        self.pending_flushes = []

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
        rows = [[] for _ in range(tokens)]
        for t in track:
            rows[t["length"] - r["length"] - 1].append(t["row"])
        rows[-1].append(r["working_row"])
        self.run(request, r["length"], tokens, r["input_index"], rows, chunked=True)
        r["input_index"] = r["working_row"]
        r["length"] += tokens

    def on_verify(self, batch, padding=0):
        self.run_pending_flushes()
        for e in batch:
            r = self.requests[e["request"]]
            out = self.output_indices(r)
            self.run(e["request"], r["length"], self.T, r["input_index"], [[o] for o in out])
            a = e["accepted"]
            if "track" in e:
                self.copy_row(out[e["track"]["length"] - r["length"] - 1], e["track"]["row"])
            live = a - 2 if self.plant == "off-by-one" and a >= 2 else a - 1  # BUG when planted
            r["input_index"] = out[live]
            r["length"] += a

    def on_decode(self, batch, padding=0):
        self.run_pending_flushes()
        for e in batch:
            r = self.requests[e["request"]]
            self.run(e["request"], r["length"], 1, r["input_index"], [[r["working_row"]]])
            if "track" in e:
                self.copy_row(r["working_row"], e["track"]["row"])
            r["input_index"] = r["working_row"]
            r["length"] += 1

    def on_retract(self, request):
        r = self.requests.pop(request)
        self.flush(r)
        w = r["working_row"]
        self.swapped[request] = (self.ssm[w].clone(), self.conv[w].clone(), r["length"])

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
        # a copy even where the pool is on the cpu device (.cpu() would alias the row)
        self.host[slot] = (self.ssm[row].to("cpu", copy=True), self.conv[row].to("cpu", copy=True))

    def on_restore(self, slot, row):
        ssm, conv = self.host[slot]
        self.ssm[row], self.conv[row] = ssm.to(self.device), conv.to(self.device)

    def on_handoff(self, request, length, row):
        sent = sent_states(self.g, self.ssm_dtype, self.header["seed"], request, length,
                           self.header["prefill_tp"])
        ssm, conv = pd_connector.receive(self.g, sent)
        self.ssm[row] = torch.from_numpy(ssm).to(self.ssm.dtype).to(self.device)
        self.conv[row] = torch.from_numpy(conv).to(torch.bfloat16).to(self.device)

    # --- what the harness reads ----------------------------------------------------------

    def state(self, request):
        """(ssm, conv) as torch tensors on the engine's device."""
        if request in self.swapped:
            ssm, conv, _ = self.swapped[request]
            return ssm, conv
        row = self.requests[request]["input_index"]
        return self.ssm[row], self.conv[row]

    # --- kernels -------------------------------------------------------------------------

    def run(self, request, position, count, row, out_rows, chunked=False):
        """Runs `count` tokens from position `position` on the state in `row`, and stores the
        state after token j in the rows out_rows[j] (a list, maybe empty), as one kernel call:
        float32 from token to token, stored in the pool dtype. `chunked` runs them as a chunked
        prefill (chunk_update) that yields the states at chunk ends and where one is stored."""
        for i, layer in enumerate(self.layer_ids):
            x, a, b = (torch.from_numpy(t).to(self.device)
                       for t in self.inputs.tokens(request, position, layer, count))
            S = self.ssm[row, i].to(torch.float32)           # [HV, K, V]
            window = self.conv[row, i].to(torch.float32)     # [C, W-1]
            chunk = []                                       # activations since the last state
            for j in range(count):
                act, window = self.activations(i, window, x[j], a[j], b[j])
                if chunked:
                    chunk.append(act)
                    if not out_rows[j] and len(chunk) < CHUNK and j + 1 < count:
                        continue
                    S = self.chunk_update(S, [torch.stack(t) for t in zip(*chunk)])
                    chunk = []
                else:
                    S = self.recurrent_update(S, *act)
                for out in out_rows[j]:
                    self.ssm[out, i] = S.to(self.ssm.dtype)
                    self.conv[out, i] = window.to(torch.bfloat16)

    def activations(self, i, window, x, a, b):
        """What the recurrence of layer i takes from one token: (k_hat [HV, K], v [HV, V],
        log decay g [HV], beta [HV]), and the conv window [C, W-1] after the token."""
        g, p = self.g, self.params[i]
        hk, ratio = g.H * g.K, g.HV // g.H
        full = torch.cat([window, x[:, None]], dim=1)                    # [C, W]
        y = (full * p["conv_weight"]).sum(dim=1)
        y = to_bf16(y / (1 + fast_exp(-y)))                              # SiLU, stored bf16
        k, v = y[hk:2 * hk].view(g.H, g.K), y[2 * hk:].view(g.HV, g.V)
        k = k / torch.sqrt((k * k).sum(1, keepdim=True) + EPS)
        u = a + p["dt_bias"]
        softplus = torch.where(u > 20, u, torch.log(1 + fast_exp(u)))
        log_decay = -fast_exp(p["A_log"]) * softplus
        beta = to_bf16(1 / (1 + fast_exp(-b)))                           # stored bf16
        return (k.repeat_interleave(ratio, 0), v, log_decay, beta), full[:, 1:]

    def recurrent_update(self, S, k, v, log_decay, beta):
        """One token of fla's fused recurrent kernel: decay, delta rule, update, in float32."""
        S = S * fast_exp(log_decay)[:, None, None]
        delta = (v - torch.einsum("hkv,hk->hv", S, k)) * beta[:, None]
        return S + k[:, :, None] * delta[:, None, :]

    def chunk_update(self, S, act):
        """n tokens at once in the WY form of fla's chunk_gated_delta_rule, with its roundings:
        k after the norm, the inverted (I + A), w, u, v_new and the state in the w S product
        are bf16 (k [n, HV, K], v [n, HV, V], log decay and beta [n, HV])."""
        k, v, log_decay, beta = (t.transpose(0, 1) for t in act)  # heads first
        k = to_bf16(k)
        G = torch.cumsum(log_decay, dim=1)                              # [HV, n]
        n = G.shape[1]
        below = torch.ones(n, n, dtype=torch.bool, device=S.device).tril(-1)
        gap = torch.where(below, G[:, :, None] - G[:, None, :], -math.inf)
        A = beta[:, :, None] * fast_exp(gap) * torch.einsum("hik,hjk->hij", k, k)
        eye = torch.eye(n, device=S.device)
        Tm = to_bf16(torch.linalg.solve_triangular(eye + A, eye.expand_as(A), upper=False))
        w = to_bf16(Tm @ ((beta * fast_exp(G))[:, :, None] * k))        # [HV, n, K]
        u = to_bf16(Tm @ (beta[:, :, None] * v))                         # [HV, n, V]
        v_new = to_bf16(u - w @ to_bf16(S))
        last = G[:, -1:]
        S = S * fast_exp(last)[:, :, None]
        return S + torch.einsum("hik,hiv->hkv", k * fast_exp(last - G)[:, :, None], v_new)
