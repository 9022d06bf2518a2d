#include "core/draft_tree.h"

#include "core/errors.h"
#include "core/primitives.h"

namespace specstate {

std::vector<int8_t> children(const DraftTree& tree, int32_t node) {
  std::vector<int8_t> out;
  for (int32_t i = node + 1; i < tree.nodes(); ++i) {
    if (tree.parents[size_t(i)] == node) out.push_back(int8_t(i));
  }
  return out;
}

DraftTree tree_of_shape(const std::vector<int32_t>& topk, int32_t max_nodes) {
  DraftTree t{{-1}, {0}};
  // Without a budget the tree stops one node past kMaxTreeNodes, for callers to refuse.
  const int32_t budget = max_nodes > 0 ? max_nodes : kMaxTreeNodes + 1;
  auto full = [&] { return t.nodes() >= budget; };
  int32_t level_begin = 0, level_end = 1;
  for (int32_t k : topk) {
    for (int32_t parent = level_begin; parent < level_end && !full(); ++parent) {
      for (int32_t c = 0; c < k && !full(); ++c)
        t.parents.push_back(int8_t(parent));
    }
    level_begin = level_end;
    level_end = t.nodes();
  }
  return t;
}

std::vector<int32_t> parse_tree_shape(const std::string& text, const char* option,
                                      int32_t max_nodes) {
  auto bad = [&](const std::string& why) -> InputError {
    return InputError(std::string(option) + " '" + text + "': " + why +
                      " (top-k per level, e.g. 2,2,2)");
  };
  std::vector<int32_t> topk;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = std::min(text.find(',', start), text.size());
    const std::string part = text.substr(start, comma - start);
    if (part.empty() || part.size() > 2 ||
        part.find_first_not_of("0123456789") != std::string::npos)
      throw bad("'" + part + "' is not a count of 1..64");
    const int32_t k = std::stoi(part);
    if (k < 1 || k > kMaxTreeNodes) throw bad("'" + part + "' is not a count of 1..64");
    topk.push_back(k);
    start = comma + 1;
  }
  if (topk.size() > size_t(kMaxVerifyTokens - 1)) throw bad("more than 15 levels");
  int64_t nodes = 1, level = 1;
  for (int32_t k : topk) {
    level *= k;
    nodes += level;
    if (nodes > 1 << 20) break;
  }
  if (max_nodes > 0) nodes = std::min<int64_t>(nodes, max_nodes);
  if (nodes > kMaxTreeNodes) {
    throw bad(std::to_string(nodes) + " nodes, more than " + std::to_string(kMaxTreeNodes) +
              " (cut it with a node budget)");
  }
  return topk;
}

std::string tree_error(const DraftTree& tree, int32_t accepted, int32_t max_nodes, int32_t T) {
  const int32_t n = tree.nodes();
  auto num = [](int64_t v) { return std::to_string(v); };
  if (n < 1 || n > max_nodes) {
    return "a tree of " + num(n) + " nodes; this trace's trees have 1.." + num(max_nodes) +
           " (header tree_nodes)";
  }
  if (tree.parents[0] != -1)
    return "node 0 is the root: its parent is -1, not " + num(tree.parents[0]);
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
  if (tree.path[0] != 0)
    return "the accepted path starts at the root, node 0, not " + num(tree.path[0]);
  for (int32_t k = 1; k < a; ++k) {
    const int node = tree.path[size_t(k)];
    if (node < 0 || node >= n || tree.parents[size_t(node)] != tree.path[size_t(k - 1)]) {
      return "path[" + num(k) + "] = " + num(node) + " is not a child of node " +
             num(tree.path[size_t(k - 1)]) +
             ": the accepted path runs from the root along the parents";
    }
  }
  if (accepted != a)
    return "accepted length " + num(accepted) + " but the path has " + num(a) + " nodes";
  return {};
}

}  // namespace specstate
