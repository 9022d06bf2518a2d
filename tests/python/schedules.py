"""Random scheduler runs written through TraceWriter, for the round-trip tests.

The generator plays a scheduler: it admits requests (some on a prefix hit), prefills in
chunks, verifies and decodes batches with random accepted lengths and snapshots of crossed
page boundaries, retracts, resumes and finishes, with small pools so rows are reused at once.
It asks the writer's bookkeeping which rows are free, so every call is meant to be valid.
"""

import random

from specstate_trace import TraceWriter


def random_header(rng, preset=None):
    return dict(preset=preset or rng.choice(["tiny", "qwen3-next-80b-a3b", "qwen3.5-2b"]),
                draft_tokens=rng.choice([0, 1, 3, 3, 5, 15]),
                pool_rows=rng.randint(6, 24),
                max_requests=rng.randint(2, 8),
                page_size=rng.choice([0, 2, 4, 8, 16]),
                tp=1,
                ssm_dtype=rng.choice(["f32", "bf16"]),
                seed=rng.randrange(1 << 64))


def _boundaries(page, old, new):
    """Page boundaries in old+1..new."""
    if page == 0:
        return []
    first = (old // page + 1) * page
    return list(range(first, new + 1, page))


def write_random_schedule(file, seed, steps=60, preset=None):
    """Write one random schedule to `file` (a random preset unless given); returns the header."""
    rng = random.Random(seed)
    hdr = random_header(rng, preset)
    page = hdr["page_size"]
    with TraceWriter(file, **hdr) as w:
        s = w.state
        T = w.tokens_per_verify
        next_id = rng.randrange(0, 1000)

        def free_rows(exclude=()):
            return [r for r in range(hdr["pool_rows"])
                    if s.row_owner(r) is None and r not in exclude]

        def free_req_rows():
            return [r for r in range(hdr["max_requests"]) if s.req_row_owner(r) is None]

        def maybe_track(old, lo, hi, exclude=()):
            """A (length, row) snapshot of a boundary in lo..hi, sometimes."""
            bs = [b for b in _boundaries(page, old, hi) if b >= lo]
            rows = free_rows(exclude)
            if not bs or not rows or rng.random() < 0.3:
                return None
            return (rng.choice(bs), rng.choice(rows))

        for _ in range(steps):
            running, retracted = s.running(), s.retracted()
            action = rng.choices(
                ["new", "chunk", "verify", "decode", "retract", "resume", "finish", "check"],
                weights=[4, 1, 8, 2, 1, 2, 2, 1])[0]
            if action == "new":
                rows, req_rows = free_rows(), free_req_rows()
                if not rows or not req_rows:
                    continue
                working, req_row = rng.choice(rows), rng.choice(req_rows)
                tokens = rng.randint(1, 40)
                cache = [(row, n) for row, n in s.cache_rows().items() if row != working]
                prefix_len, cow = 0, None
                if cache and rng.random() < 0.5:
                    cow, prefix_len = rng.choice(cache)
                track = []
                used = {working} | ({cow} if cow is not None else set())
                for b in _boundaries(page, prefix_len, prefix_len + tokens):
                    rows = free_rows(used)
                    if rows and rng.random() < 0.6:
                        row = rng.choice(rows)
                        used.add(row)
                        track.append((b, row))
                w.extend(next_id, tokens, req_row=req_row, working_row=working,
                         prefix_len=prefix_len, cow_src_row=cow, track=track)
                next_id += rng.randint(1, 3)
            elif action == "chunk" and running:
                q = rng.choice(running)
                old, tokens = s.length(q), rng.randint(1, 20)
                t = maybe_track(old, old + 1, old + tokens)
                w.extend(q, tokens, track=[t] if t else [])
            elif action in ("verify", "decode") and running:
                batch, used = [], set()
                for q in rng.sample(running, rng.randint(1, len(running))):
                    old = s.length(q)
                    a = rng.randint(1, T) if action == "verify" else 1
                    t = maybe_track(old, old + 1, old + a, used)
                    if t:
                        used.add(t[1])
                    batch.append((q, a, t) if action == "verify" else (q, t))
                padding = rng.choice([0, 0, 1, 3])
                if action == "verify":
                    w.verify(batch, padding=padding)
                else:
                    w.decode(batch, padding=padding)
            elif action == "retract" and running:
                w.retract(rng.choice(running))
            elif action == "resume" and retracted:
                rows, req_rows = free_rows(), free_req_rows()
                if rows and req_rows:
                    w.resume(rng.choice(retracted), req_row=rng.choice(req_rows),
                             working_row=rng.choice(rows))
            elif action == "finish" and (running or retracted):
                w.finish(rng.choice(running + retracted))
            elif action == "check":
                w.check()
        for q in s.running() + s.retracted():
            w.finish(q)
        w.check()
    return hdr
