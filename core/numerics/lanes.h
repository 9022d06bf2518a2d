// A group of N independent columns that run one canonical sequence side by side: lane l of every
// operation is exactly the scalar operation on lane l's operands. The canonical step
// (gdn_step.h) is written over a lane type L, so the same source runs one column per call
// (L = float), the columns a device thread owns (L = Lanes<2>), or, with the same operations on
// Eigen packets, a SIMD group of columns on the host (backends/cpu/packet_lanes.h).
#pragma once

#include "core/numerics/hd.h"

namespace specstate::num {

template <int N>
struct Lanes {
  float v[N];
};

template <int N>
SPECSTATE_HD inline Lanes<N> fmul(float a, Lanes<N> b) {
  Lanes<N> r;
  SPECSTATE_UNROLL
  for (int l = 0; l < N; ++l)
    r.v[l] = fmul(a, b.v[l]);
  return r;
}

template <int N>
SPECSTATE_HD inline Lanes<N> fadd(Lanes<N> a, Lanes<N> b) {
  Lanes<N> r;
  SPECSTATE_UNROLL
  for (int l = 0; l < N; ++l)
    r.v[l] = fadd(a.v[l], b.v[l]);
  return r;
}

template <int N>
SPECSTATE_HD inline Lanes<N> fsub(Lanes<N> a, Lanes<N> b) {
  Lanes<N> r;
  SPECSTATE_UNROLL
  for (int l = 0; l < N; ++l)
    r.v[l] = fsub(a.v[l], b.v[l]);
  return r;
}

// a_l * b + c_l, one rounding per lane.
template <int N>
SPECSTATE_HD inline Lanes<N> ffma(Lanes<N> a, float b, Lanes<N> c) {
  Lanes<N> r;
  SPECSTATE_UNROLL
  for (int l = 0; l < N; ++l)
    r.v[l] = ffma(a.v[l], b, c.v[l]);
  return r;
}

// a * b_l + c_l, one rounding per lane.
template <int N>
SPECSTATE_HD inline Lanes<N> ffma(float a, Lanes<N> b, Lanes<N> c) {
  Lanes<N> r;
  SPECSTATE_UNROLL
  for (int l = 0; l < N; ++l)
    r.v[l] = ffma(a, b.v[l], c.v[l]);
  return r;
}

}  // namespace specstate::num
