"""The trace format's bounds, generated from core/trace/rules.json by tools/gen_trace_rules.py; do not edit. Every bound is inclusive."""

FORMAT_VERSION = 2  # the newest version, read and written
OLDEST_FORMAT_VERSION = 1  # the oldest version read
MAX_ROWS = 16777216  # pool_rows, max_requests, page_size
MAX_TOKENS = 16777216  # tokens of one extend, padding
MAX_LENGTH = 281474976710656  # tokens of one request
MAX_TOKENS_PER_VERIFY = 16  # T = draft_tokens + 1
MAX_TREE_NODES = 64  # nodes of one draft tree (header tree_nodes, version 2)
MAX_TP = 1024  # tensor-parallel degree
MAX_OVERLAP_DEPTH = 4  # steps in flight of an overlap trace (header overlap, version 2)
MAX_LINE_BYTES = 16777216  # bytes of one line without its newline
MAX_ECHOED = 64  # characters of a value quoted in a message

# a custom geometry's fields in the header's order (version 2): (name, min, max)
GEOMETRY_FIELDS = (
    ("layers", 1, 1024),
    ("H", 1, 1024),
    ("HV", 1, 4096),
    ("K", 1, 1024),
    ("V", 1, 1024),
    ("conv_dim", 1, 16777216),
    ("W", 2, 64),
)

# the recurrences a custom geometry may name (optional field 'recurrence'; the first
# is the default)
RECURRENCES = (
    "gated-deltanet",
    "kimi-delta-attention",
)

# name -> (H, HV), in core/geometry.cpp's order
PRESET_HEADS = {
    "qwen3-next-80b-a3b": (16, 32),
    "qwen3.5-397b-a17b": (16, 64),
    "qwen3.5-122b-a10b": (16, 64),
    "qwen3.5-35b-a3b": (16, 32),
    "qwen3.5-27b": (16, 48),
    "qwen3.5-9b": (16, 32),
    "qwen3.5-2b": (16, 16),
    "kimi-linear-48b-a3b": (32, 32),
    "tiny": (2, 4),
}
