// The memory check of the commands that allocate pools (replay, dump): a trace whose pools
// would not fit is refused before anything is allocated, at the header line that sets the
// sizes, with exit code 2 (a bad_alloc half-way would be exit 3 and tell the user nothing).
#pragma once

#include <cstdint>
#include <vector>

#include "core/trace/events.h"
#include "sim/simulator.h"

namespace specstate::cli {

// Adds up the bytes each lane's backend allocates (`shapes[i]`: lane i's stored shape,
// backends/compact_backend.h) per backend, plus what each backend allocates beside them
// (`extra_bytes_per_backend`, e.g. the dump's recorder), and throws
// InputError("FILE:HEADER_LINE: ...") when that exceeds backend_memory_limit(): physical
// memory, the address space left under `ulimit -v`, free device memory.
void check_pool_memory(const trace::Trace& trace, const std::vector<sim::LaneSpec>& lanes,
                       const std::vector<PoolShape>& shapes, int64_t extra_bytes_per_backend = 0);

}  // namespace specstate::cli
