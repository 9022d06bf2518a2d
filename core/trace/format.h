// Reading and writing traces in the on-disk format, JSON Lines (docs/trace-format.md).
//
// The reader checks syntax and field types and the header (version, preset, TP, sizes); it
// does not check the schedule (who owns which row, lengths, page boundaries): that is
// validate_trace() in core/trace/validate.h, which runs a ScheduleTracker over the events.
// Every error is an InputError "FILE:LINE: message"; no other exception escapes.
#pragma once

#include <iosfwd>
#include <string>
#include <string_view>

#include "core/geometry.h"
#include "core/trace/events.h"
#include "core/trace/rules.h"

namespace specstate::trace {

// Absurd sizes are refused up front so that a hostile file cannot make a reader or a
// simulator allocate without bound; the bounds are core/trace/rules.h, generated from
// core/trace/rules.json as the Python recorder's are (specstate_trace/_rules.py). A line of
// kMaxLineBytes is some 500 times a verify of a 1024-request batch with a track write per entry, so
// only a hostile or broken file reaches it.

// Checks the header fields (version, preset and TP through make_geometry, sizes). Throws
// InputError without a location; callers add it.
void check_header(const Header& header);

// The model geometry a header names: its preset at its TP, or its custom geometry. Throws
// InputError without a location as check_header does.
ModelGeometry header_geometry(const Header& header);

Trace read_trace(const std::string& path);  // "-": standard input
// `name` is the file name used in messages.
Trace read_trace(std::istream& in, const std::string& name);

// One event per line, the header first; read_trace(write_trace(t)) == t up to line numbers,
// which the writer does not keep (events go on lines 2, 3, ...).
void write_trace(std::ostream& out, const Trace& trace);
// Writes through io::OutputFile (core/io/output_file.h): `path` never holds half a trace and is
// never clobbered when it should not be. Throws InputError when the file cannot be written.
void write_trace_file(const std::string& path, const Trace& trace);

// The JSON text of one line, without the newline.
std::string header_to_json(const Header& header);
std::string event_to_json(const Event& event);

// "extend", "verify", ...
std::string_view event_name(const Event& event);

}  // namespace specstate::trace
