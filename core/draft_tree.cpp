#include "core/draft_tree.h"

namespace specstate {

std::string tree_error(const DraftTree& tree, int32_t max_nodes, int32_t T) {
  const int32_t n = tree.nodes();
  auto num = [](int64_t v) { return std::to_string(v); };
  if (n < 1 || n > max_nodes) {
    return "a tree of " + num(n) + " nodes; this trace's trees have 1.." + num(max_nodes) +
           " (header tree_nodes)";
  }
  if (tree.parents[0] != -1) return "node 0 is the root: its parent is -1, not " + num(tree.parents[0]);
  for (int32_t i = 1; i < n; ++i) {
    const int p = tree.parents[size_t(i)];
    if (p < 0 || p >= i) {
      return "the parent of node " + num(i) + " is " + num(p) +
             "; a node's parent is an earlier node (0.." + num(i - 1) + ")";
    }
    if (tree::depth(tree.parents.data(), i) > T - 1) {
      return "node " + num(i) + " is at depth " + num(tree::depth(tree.parents.data(), i)) +
             ", deeper than the " + num(T - 1) + " draft tokens of a verify";
    }
  }
  const int32_t a = int32_t(tree.path.size());
  if (a < 1 || a > T) return "an accepted path of " + num(a) + " nodes, outside 1.." + num(T);
  if (tree.path[0] != 0) return "the accepted path starts at the root, node 0, not " + num(tree.path[0]);
  for (int32_t k = 1; k < a; ++k) {
    const int node = tree.path[size_t(k)];
    if (node < 0 || node >= n || tree.parents[size_t(node)] != tree.path[size_t(k - 1)]) {
      return "path[" + num(k) + "] = " + num(node) + " is not a child of node " +
             num(tree.path[size_t(k - 1)]) + ": the accepted path runs from the root along the parents";
    }
  }
  return {};
}

}  // namespace specstate
