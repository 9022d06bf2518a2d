// The checks of the commands that allocate pools (replay, dump) before anything is allocated: a
// trace whose geometry a lane's backend does not run, or whose pools would not fit, is refused
// at the header line that sets them, with exit code 2 (a bad_alloc or a backend's refusal
// half-way would be exit 3, or tell the user nothing of where).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/trace/events.h"
#include "sim/simulator.h"

namespace specstate::cli {

// Throws InputError("--backend: backend 'cuda': no CUDA device is visible") unless every one of
// `backends` can run here; commands call it before they print anything.
void check_backend_flag(const std::vector<std::string>& backends);

// Throws InputError("FILE:HEADER_LINE: ...") when a lane's backend does not run the shapes'
// geometry (BackendEntry::check_geometry). Then adds up the bytes each lane's backend allocates
// (`shapes[i]`: lane i's stored shape, backends/compact_backend.h) per backend, plus what each
// backend allocates beside them (`extra_bytes_per_backend`, e.g. the dump's recorder), and
// throws InputError("FILE:HEADER_LINE: ...") when that exceeds its memory_limit(): physical
// memory, the address space left under `ulimit -v`, free device memory; `remedy` ends that
// message (the Python module, which also runs these checks, names its own argument).
void check_lanes_can_run(const trace::Trace& trace, const std::vector<sim::LaneSpec>& lanes,
                         const std::vector<PoolShape>& shapes, int64_t extra_bytes_per_backend = 0,
                         const std::string& remedy = "choose fewer lanes, or --layers");

}  // namespace specstate::cli
