// Walking a draft tree (core/primitives.h: VerifyTask::parents) inside one sequence job, the
// same way on the host and on the device. A job's sequence is its pending tokens 0..P-1 (a
// chain), then its new tokens; new token n is sequence token P + n. Without parents the new
// tokens are a chain too.
#pragma once

#include <cstdint>

#include "core/numerics/hd.h"
#include "core/numerics/inputs.h"

namespace specstate::tree {

// Parents above `node` (the root has depth 0).
SPECSTATE_HD inline int depth(const int8_t* parents, int node) {
  int d = 0;
  while (parents[node] >= 0) {
    node = parents[node];
    ++d;
  }
  return d;
}

// The sequence token whose state sequence token j continues from: j - 1 along a chain, the
// parent's sequence token in a tree, the last pending token (or -1, the job's source) for the
// root. `parents` may be null (a chain).
SPECSTATE_HD inline int predecessor(const int8_t* parents, int pending, int j) {
  if (j < pending || parents == nullptr) return j - 1;
  const int p = parents[j - pending];
  return p < 0 ? pending - 1 : pending + p;
}

// The position coordinate of new token `node`'s generated inputs in a verify whose first token
// is at `first_position`: its depth's position in branch node - depth (core/numerics/inputs.h);
// along a chain (parents null) the token's own position.
SPECSTATE_HD inline uint64_t node_position(const int8_t* parents, int64_t first_position,
                                           int node) {
  if (parents == nullptr) return uint64_t(first_position + node);
  const int d = depth(parents, node);
  return num::tree_coordinate(uint64_t(first_position + d), uint32_t(node - d));
}

// The conv history of a job is the source window's W-1 columns (0 .. W-2), then one column per
// sequence token (W-1 + j). The column before `col` on its token's path: col - 1 along a chain
// and inside the source window, the predecessor's column in a tree. Tap t of token j's conv is
// column c_t with c_{W-1} = W-1 + j and c_{t-1} = previous_column(c_t); the window after token
// j is c_1 .. c_{W-1}.
SPECSTATE_HD inline int previous_column(const int8_t* parents, int pending, int wc, int col) {
  if (col < wc) return col - 1;
  return wc + predecessor(parents, pending, col - wc);
}

}  // namespace specstate::tree

#if !defined(__CUDACC__)
#include <string>
#include <vector>

namespace specstate {

// One verify's draft tree as a scheduler records it (trace format version 2): the parent of
// each node (core/primitives.h: VerifyTask::parents) and the accepted path, root first, each
// node a child of the one before.
struct DraftTree {
  std::vector<int8_t> parents;
  std::vector<int8_t> path;

  int32_t nodes() const { return int32_t(parents.size()); }
  bool operator==(const DraftTree&) const = default;
};

// What is wrong with `tree` for a pool of `max_nodes` tree nodes and T tokens per verify
// (nodes 1..max_nodes, node 0 the root, parents before children, no node deeper than T-1, a
// path from the root of 1..T nodes that follows the parents, `accepted` its length); empty
// when nothing is.
std::string tree_error(const DraftTree& tree, int32_t accepted, int32_t max_nodes, int32_t T);

// A static tree shape as EAGLE's top-k drafting builds it: topk[d] children under every node of
// depth d (e.g. {2, 2, 2}: 1 + 2 + 4 + 8 nodes), in breadth-first order, cut after max_nodes
// nodes when max_nodes > 0 (a dynamic tree's node budget). The path is the root alone.
DraftTree tree_of_shape(const std::vector<int32_t>& topk, int32_t max_nodes = 0);
// "2,2,2" -> {2, 2, 2}: 1..15 levels of 1..64 children each, at most kMaxTreeNodes nodes in
// all (after the cut at max_nodes); InputError naming `option` otherwise.
std::vector<int32_t> parse_tree_shape(const std::string& text, const char* option,
                                      int32_t max_nodes = 0);

// The children of `node`, in node order.
std::vector<int8_t> children(const DraftTree& tree, int32_t node);

// The accepted path's k-th node of a verify: path[k] of a tree, k along a chain.
inline int32_t path_node(const DraftTree* tree, int32_t k) {
  return tree ? tree->path[size_t(k)] : k;
}

}  // namespace specstate
#endif
