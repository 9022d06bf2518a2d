#!/usr/bin/env python3
"""Writes core/trace/rules.h and python/specstate_trace/_rules.py from core/trace/rules.json,
the one source of the trace format's bounds; --check only compares (exit 1 when stale).

    tools/gen_trace_rules.py           # after editing rules.json
    tools/gen_trace_rules.py --check   # CTest trace_rules_generated
"""

import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE = os.path.join(ROOT, "core", "trace", "rules.json")
NOTICE = "generated from core/trace/rules.json by tools/gen_trace_rules.py; do not edit"

CPP_NAMES = [("format_version", "kFormatVersion", "int"),
             ("oldest_format_version", "kOldestFormatVersion", "int"),
             ("max_rows", "kMaxRows", "int64_t"),
             ("max_tokens", "kMaxTokens", "int64_t"),
             ("max_length", "kMaxLength", "int64_t"),
             ("max_tokens_per_verify", "kMaxTokensPerVerify", "int32_t"),
             ("max_tree_nodes", "kMaxTreeNodesPerVerify", "int32_t"),
             ("max_tp", "kMaxTp", "int32_t"),
             ("max_overlap_depth", "kMaxOverlapDepth", "int32_t"),
             ("max_line_bytes", "kMaxLineBytes", "int64_t"),
             ("max_echoed", "kMaxEchoed", "size_t")]
COMMENTS = {"format_version": "the newest version, read and written",
            "oldest_format_version": "the oldest version read",
            "max_rows": "pool_rows, max_requests, page_size",
            "max_tokens": "tokens of one extend, padding",
            "max_length": "tokens of one request",
            "max_tokens_per_verify": "T = draft_tokens + 1",
            "max_tree_nodes": "nodes of one draft tree (header tree_nodes, version 2)",
            "max_tp": "tensor-parallel degree",
            "max_overlap_depth": "steps in flight of an overlap trace (header overlap, version 2)",
            "max_line_bytes": "bytes of one line without its newline",
            "max_echoed": "characters of a value quoted in a message"}


def cpp(rules):
    # One entry a line and each bound's comment beside it: clang-format would re-wrap both.
    out = ["// clang-format off", f"// The trace format's bounds, {NOTICE}.",
           "// Every bound is inclusive.", "#pragma once", "", "#include <cstddef>",
           "#include <cstdint>", "", "namespace specstate::trace {", ""]
    for key, name, ctype in CPP_NAMES:
        comment = f"  // {COMMENTS[key]}" if key in COMMENTS else ""
        out.append(f"inline constexpr {ctype} {name} = {rules[key]};{comment}")
    out += ["", "// A custom geometry's fields in the header's order (version 2), each with its bounds.",
            "struct GeometryField {", "  const char* name;", "  int64_t min, max;", "};",
            "inline constexpr GeometryField kGeometryFields[] = {"]
    for g in rules["custom_geometry"]:
        out.append(f'    {{"{g["field"]}", {g["min"]}, {g["max"]}}},')
    out += ["};"]
    out += ["", "// The recurrences a custom geometry may name (its optional field 'recurrence'; the",
            "// first is the default), in core/recurrence.cpp's order; a test checks that it agrees.",
            "inline constexpr const char* kRecurrenceNames[] = {"]
    for name in rules["recurrences"]:
        out.append(f'    "{name}",')
    out += ["};"]
    out += ["", "// The presets' head counts (H, HV), in core/geometry.cpp's order; a test checks that",
            "// presets() agrees.",
            "struct PresetHeads {", "  const char* name;", "  int32_t num_k_heads, num_v_heads;",
            "};", "inline constexpr PresetHeads kPresetHeads[] = {"]
    for p in rules["presets"]:
        out.append(f'    {{"{p["name"]}", {p["H"]}, {p["HV"]}}},')
    out += ["};", "", "}  // namespace specstate::trace", "// clang-format on", ""]
    return "\n".join(out)


def python(rules):
    out = [f'"""The trace format\'s bounds, {NOTICE}. Every bound is inclusive."""', ""]
    for key, _, _ in CPP_NAMES:
        comment = f"  # {COMMENTS[key]}" if key in COMMENTS else ""
        out.append(f"{key.upper()} = {rules[key]}{comment}")
    out += ["", "# a custom geometry's fields in the header's order (version 2): (name, min, max)",
            "GEOMETRY_FIELDS = ("]
    for g in rules["custom_geometry"]:
        out.append(f'    ("{g["field"]}", {g["min"]}, {g["max"]}),')
    out += [")"]
    out += ["", "# the recurrences a custom geometry may name (optional field 'recurrence'; the first",
            "# is the default)", "RECURRENCES = ("]
    for name in rules["recurrences"]:
        out.append(f'    "{name}",')
    out += [")"]
    out += ["", "# name -> (H, HV), in core/geometry.cpp's order", "PRESET_HEADS = {"]
    for p in rules["presets"]:
        out.append(f'    "{p["name"]}": ({p["H"]}, {p["HV"]}),')
    out += ["}", ""]
    return "\n".join(out)


def main():
    with open(SOURCE) as f:
        rules = json.load(f)
    targets = {os.path.join(ROOT, "core", "trace", "rules.h"): cpp(rules),
               os.path.join(ROOT, "python", "specstate_trace", "_rules.py"): python(rules)}
    stale = []
    for path, text in targets.items():
        current = open(path).read() if os.path.exists(path) else None
        if current == text:
            continue
        if "--check" in sys.argv[1:]:
            stale.append(os.path.relpath(path, ROOT))
        else:
            with open(path, "w") as f:
                f.write(text)
            print(f"wrote {os.path.relpath(path, ROOT)}")
    if stale:
        print(f"stale (run tools/gen_trace_rules.py): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
