// The CPU backend's lane type: 8 independent fp32 columns run through the canonical step side by
// side on Eigen's packet operations, so one source vectorises on every ISA Eigen knows (SSE, AVX,
// AVX-512, NEON, ...) and keeps the scalar step's bits on each.
//
// Each operation is the IEEE operation per lane with one rounding: Eigen's pmul, padd, psub are
// the vector instructions, and a fused multiply-add is Eigen's pmadd only where it is one
// instruction with one rounding (x86 with FMA, AArch64); elsewhere each lane calls num::ffma
// (std::fma). So a compiler is never left to choose whether to contract, and the lanes give
// delta_rule_column's scalar bits whatever the host (tests/test_step.cpp, tests/test_cpu_math.cpp).
//
// Beside the arithmetic of delta_rule_column (fmul, fadd, fsub, ffma, found by argument-dependent
// lookup), the conv's SiLU and bf16 rounding per lane: num::exp_f32 and num::silu_f32
// (core/numerics/math.h, the definition) with their branches turned into selects, every lane
// running the scalar operations in the scalar order.
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <cstring>

#include "core/numerics/bf16.h"
#include "core/numerics/math.h"

namespace specstate::cpu {

namespace packet {
namespace ei = Eigen::internal;
using F = ei::packet_traits<float>::type;  // Packet8f (AVX), Packet4f (SSE, NEON), or float
inline constexpr int kSize = ei::packet_traits<float>::size;
// pmadd is one fused instruction: x86 FMA, or AArch64 (NEON's vfmaq; 32-bit ARM's vmla is not
// fused). Scalar Eigen (no vectorisation) multiplies and adds.
#if defined(EIGEN_VECTORIZE) && (defined(EIGEN_VECTORIZE_FMA) || \
                                 (defined(EIGEN_VECTORIZE_NEON) && defined(__ARM_FEATURE_FMA)))
inline constexpr bool kFusedMadd = true;
#else
inline constexpr bool kFusedMadd = false;
#endif
}  // namespace packet

// 8 fp32 lanes (one group of V columns), stored as plain floats so that a state buffer of them
// is the pool's [.., 8 columns] memory layout.
struct PacketLanes {
  static constexpr int kLanes = 8;
  static_assert(kLanes % packet::kSize == 0, "whole packets per group");
  float v[kLanes];
};

namespace detail {
// op(packet i of a, packet i of b) for every packet of the group.
template <class Op>
inline PacketLanes each(const PacketLanes& a, const PacketLanes& b, Op op) {
  PacketLanes r;
  for (int i = 0; i < PacketLanes::kLanes; i += packet::kSize) {
    Eigen::internal::pstoreu(r.v + i, op(Eigen::internal::ploadu<packet::F>(a.v + i),
                                         Eigen::internal::ploadu<packet::F>(b.v + i)));
  }
  return r;
}
inline PacketLanes splat(float x) {
  PacketLanes r;
  for (float& e : r.v)
    e = x;
  return r;
}
}  // namespace detail

inline PacketLanes fmul(float a, const PacketLanes& b) {
  return detail::each(detail::splat(a), b,
                      [](packet::F x, packet::F y) { return Eigen::internal::pmul(x, y); });
}
inline PacketLanes fadd(const PacketLanes& a, const PacketLanes& b) {
  return detail::each(a, b, [](packet::F x, packet::F y) { return Eigen::internal::padd(x, y); });
}
inline PacketLanes fsub(const PacketLanes& a, const PacketLanes& b) {
  return detail::each(a, b, [](packet::F x, packet::F y) { return Eigen::internal::psub(x, y); });
}
// a_l * b + c_l and a * b_l + c_l, one rounding per lane.
inline PacketLanes ffma(const PacketLanes& a, const PacketLanes& b, const PacketLanes& c) {
  PacketLanes r;
  for (int i = 0; i < PacketLanes::kLanes; i += packet::kSize) {
    if constexpr (packet::kFusedMadd) {
      Eigen::internal::pstoreu(r.v + i,
                               Eigen::internal::pmadd(Eigen::internal::ploadu<packet::F>(a.v + i),
                                                      Eigen::internal::ploadu<packet::F>(b.v + i),
                                                      Eigen::internal::ploadu<packet::F>(c.v + i)));
    } else {
      for (int l = i; l < i + packet::kSize; ++l)
        r.v[l] = num::ffma(a.v[l], b.v[l], c.v[l]);
    }
  }
  return r;
}
inline PacketLanes ffma(const PacketLanes& a, float b, const PacketLanes& c) {
  return ffma(a, detail::splat(b), c);
}
inline PacketLanes ffma(float a, const PacketLanes& b, const PacketLanes& c) {
  return ffma(detail::splat(a), b, c);
}

// --- the conv's SiLU and rounding, per packet (vectorising builds; else the scalar functions) -

#if defined(EIGEN_VECTORIZE)
#define SPECSTATE_PACKET_SILU 1

namespace packet {
// The 32-bit integers of a float packet. (GCC warns that the vector type's attributes are not
// part of the template argument; they need not be, the type is only named.)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wignored-attributes"
using I = ei::unpacket_traits<F>::integer_packet;
#pragma GCC diagnostic pop
}  // namespace packet

namespace detail {
namespace ei = Eigen::internal;
using packet::F;
using packet::I;

inline F splat_packet(float x) {
  return ei::pset1<F>(x);
}
inline F fma_packet(F a, F b, F c) {
  if constexpr (packet::kFusedMadd) {
    return ei::pmadd(a, b, c);
  } else {
    alignas(64) float x[packet::kSize], y[packet::kSize], z[packet::kSize];
    ei::pstoreu(x, a);
    ei::pstoreu(y, b);
    ei::pstoreu(z, c);
    for (int l = 0; l < packet::kSize; ++l)
      x[l] = num::ffma(x[l], y[l], z[l]);
    return ei::ploadu<F>(x);
  }
}
// 2^k per lane from exponent bits, for -126 <= k <= 127 (num::pow2i).
inline F pow2i(I k) {
  return ei::preinterpret<F>(ei::plogical_shift_left<23>(ei::padd(k, ei::pset1<I>(127))));
}
// Lanes where `mask` is set take `then`, the others `otherwise`.
inline F select(F mask, F then, F otherwise) {
  return ei::pselect(mask, then, otherwise);
}
inline F is_nan(F x) {
  return ei::pandnot(ei::ptrue(x), ei::pcmp_eq(x, x));
}
}  // namespace detail

// num::exp_f32 per lane.
inline packet::F exp_packet(packet::F x) {
  using namespace detail;
  namespace ei = Eigen::internal;
  using num::kLn2Hi, num::kLn2Lo, num::kLog2e, num::kRoundMagic;
  const F n = ei::psub(fma_packet(x, splat_packet(kLog2e), splat_packet(kRoundMagic)),
                       splat_packet(kRoundMagic));
  const F minus_n = ei::pnegate(n);
  F r = fma_packet(minus_n, splat_packet(kLn2Hi), x);
  r = fma_packet(minus_n, splat_packet(kLn2Lo), r);
  F p = splat_packet(0x1.6a1b34p-10f);
  p = fma_packet(p, r, splat_packet(0x1.1239ccp-7f));
  p = fma_packet(p, r, splat_packet(0x1.5559p-5f));
  p = fma_packet(p, r, splat_packet(0x1.555492p-3f));
  p = fma_packet(p, r, splat_packet(0x1.fffffcp-2f));
  p = fma_packet(p, r, splat_packet(1.0f));
  p = fma_packet(p, r, splat_packet(1.0f));
  // e = int(n) (n is integral); inside the range the scalar function reaches here,
  // -150 <= e <= 128, and e > 127 exactly when n > 127 (e < -126 when n < -126).
  const I e = ei::pcast<F, I>(n);
  const F mid = ei::pmul(p, pow2i(e));
  const F high = ei::pmul(ei::pmul(p, pow2i(ei::psub(e, ei::pset1<I>(1)))), splat_packet(2.0f));
  const F low = ei::pmul(ei::pmul(p, pow2i(ei::padd(e, ei::pset1<I>(64)))), splat_packet(0x1p-64f));
  F out = select(ei::pcmp_lt(splat_packet(127.0f), n), high, mid);
  out = select(ei::pcmp_lt(n, splat_packet(-126.0f)), low, out);
  // The early returns, last to first, so that the first one that applies wins.
  out = select(ei::pcmp_lt(x, splat_packet(num::kExpUnderflow)), ei::pzero(x), out);
  out = select(ei::pcmp_lt(splat_packet(num::kExpOverflow), x), splat_packet(num::kInf), out);
  return select(is_nan(x), ei::padd(x, x), out);
}

// num::silu_f32 per lane: x e / (1 + e) with e = exp(x) for x < 0, else x / (1 + exp(-x)).
inline packet::F silu_packet(packet::F x) {
  using namespace detail;
  namespace ei = Eigen::internal;
  const F negative = ei::pcmp_lt(x, ei::pzero(x));
  const F e = exp_packet(select(negative, x, ei::pnegate(x)));
  // Both branches divide by 1 + e: one division of the numerator each lane's branch takes.
  const F numerator = select(negative, ei::pmul(x, e), x);
  return ei::pdiv(numerator, ei::padd(splat_packet(1.0f), e));
}

// num::round_to_bf16 per lane: round to nearest even, a NaN to the canonical NaN.
inline packet::F round_to_bf16_packet(packet::F f) {
  using namespace detail;
  namespace ei = Eigen::internal;
  const I u = ei::preinterpret<I>(f);
  const I odd = ei::pand(ei::plogical_shift_right<16>(u), ei::pset1<I>(1));
  const I rounded = ei::plogical_shift_left<16>(
      ei::plogical_shift_right<16>(ei::padd(ei::padd(u, ei::pset1<I>(0x7FFF)), odd)));
  const F nan = ei::preinterpret<F>(ei::pset1<I>(int32_t(num::kBf16CanonicalNan) << 16));
  return select(is_nan(f), nan, ei::preinterpret<F>(rounded));
}

#endif  // EIGEN_VECTORIZE

}  // namespace specstate::cpu
