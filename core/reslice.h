// A request's state moved between tensor-parallel degrees (a prefill instance at one TP degree
// hands the request to a decode instance at another). Rank r of a TP-way split holds value heads
// r*HV .. and its slice of each conv channel group [q | k | v] (num::RankIndex), so the receiving
// rank's state is gathered from the sending ranks head by head: the SSM by value heads, the conv
// window by the channels of each group. Because every rank's inputs and parameters are its slice
// of the whole model's, the gathered state is bit-identical to what the receiving rank computes
// from the same tokens itself.
#pragma once

#include <cstdint>
#include <span>

#include "core/geometry.h"
#include "core/pool_shape.h"
#include "core/primitives.h"

namespace specstate {

// How the conv window is cut. kByHeads is the model's layout; kContiguous cuts the concatenated
// [q | k | v] channels into tp equal blocks, as SGLang #30997 did (the q block of rank 0 is
// right, every other channel is another group's), and is reached only through that fault.
enum class ConvSlicing : uint8_t { kByHeads, kContiguous };

// The state of rank `to.rank` of `to`, from the states of all `from.tp` ranks of `from` (the
// same model and layers at another TP degree; from_ranks[r] is rank r's, W-1 conv columns, SSM
// in `dtype`). Throws InputError when the two geometries are not one model's.
RowBytes reslice_state(const ModelGeometry& to, const ModelGeometry& from,
                       std::span<const RowBytes> from_ranks, SsmDtype dtype,
                       ConvSlicing conv = ConvSlicing::kByHeads);

}  // namespace specstate
