"""A small, realistic trace written through TraceWriter (`python3 -m specstate_trace demo`)."""

from .writer import TraceWriter

PAGE = 16


def _crossed(old, new):
    """The last page boundary in old+1..new, or None."""
    b = new // PAGE * PAGE
    return b if b > old else None


def write_demo(file, seed=1):
    """Four requests on the tiny preset, T = 4: a prefix hit, chunked prefill, verify steps
    with prefix-cache snapshots and CUDA-graph padding, a decode step, a retract whose rows
    another request takes at once, a resume, and finishes."""
    with TraceWriter(file, preset="tiny", draft_tokens=3, pool_rows=32, max_requests=8,
                     page_size=PAGE, seed=seed) as w:
        free_cache_rows = list(range(16, 32))  # rows 0..15 are working rows in this demo
        s = w.state

        def step(accepted, padding=0):
            batch = []
            for request, a in accepted.items():
                old = s.length(request)
                b = _crossed(old, old + a)
                batch.append((request, a, (b, free_cache_rows.pop(0)) if b else None))
            w.verify(batch, padding=padding)

        w.comment("two new requests; request 1 snapshots its prefix at 16 and 32 tokens")
        w.extend(1, 40, req_row=0, working_row=0, track=[(16, 16), (32, 17)])
        w.extend(2, 37, req_row=1, working_row=1, track=[(32, 18)])
        del free_cache_rows[:3]
        w.comment("verify T = 4 tokens per request, two CUDA-graph padding rows")
        step({1: 3, 2: 4}, padding=2)
        w.comment("request 3 hits request 1's 32-token prefix (copy-on-write from row 17)")
        w.extend(3, 9, req_row=2, working_row=2, prefix_len=32, cow_src_row=17)
        step({1: 4, 2: 1, 3: 2}, padding=1)
        step({1: 2, 2: 3, 3: 4}, padding=1)
        w.check()
        w.comment("request 2 is retracted; request 4 takes its rows at once (chunked prefill)")
        w.retract(2)
        w.extend(4, 20, req_row=1, working_row=1)
        w.extend(4, 14, track=[(32, free_cache_rows.pop(0))])
        step({1: 1, 3: 3, 4: 4}, padding=1)
        w.comment("request 2 resumes into other rows; a decode step without drafts")
        w.resume(2, req_row=3, working_row=3)
        w.decode([1, 2, 3, 4], padding=0)
        step({1: 4, 2: 2, 3: 1, 4: 3})
        w.check()
        w.finish(1)
        w.comment("request 5 reuses request 1's rows at once, starting from a 48-token snapshot")
        w.extend(5, 5, req_row=0, working_row=0, prefix_len=48,
                 cow_src_row=_cache_row_with(s, 48))
        step({2: 4, 3: 4, 4: 2, 5: 3}, padding=4)
        for request in (2, 3, 4, 5):
            w.finish(request)
        w.check()
    return w


def _cache_row_with(state, length):
    for row, held in sorted(state.cache_rows().items()):
        if held == length:
            return row
    raise AssertionError(f"demo: no snapshot of {length} tokens")
