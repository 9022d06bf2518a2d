"""Record specstate traces from a Python serving engine (standard library only, Python >= 3.9).

    from specstate_trace import TraceWriter
    with TraceWriter("run.trace", preset="qwen3-next-80b-a3b", draft_tokens=3,
                     pool_rows=256, max_requests=128, page_size=64) as w:
        w.extend(7, 512, req_row=0, working_row=5, track=[(512, 40)])
        w.verify([(7, 3)], padding=1)
        w.finish(7)

The format is docs/trace-format.md; how an engine maps its scheduler onto the events is
docs/recording.md.
"""

from ._rules import FORMAT_VERSION, PRESET_HEADS
from ._state import TraceState, make_header
from .reader import TraceError, read_trace
from .writer import TraceWriter

__all__ = ["FORMAT_VERSION", "PRESET_HEADS", "TraceError", "TraceState", "TraceWriter",
           "make_header", "read_trace"]
