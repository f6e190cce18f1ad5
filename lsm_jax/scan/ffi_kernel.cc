// The linear recurrence h_k = a_k * h_{k-1} + x_k as an XLA FFI custom call for the CPU.
//
// Canonical form (lsm_jax/scan/common.py): x (P, L, Q), a (Pa, La, Qa) with each of Pa, La, Qa
// either 1 (broadcast) or the full size, h0 (P, Q). Outputs h (P, L, Q) and h_last (P, Q).
// One pass: a and x are read once and h written once (24 bytes per complex64 element), the state
// for a block of up to 64 lanes kept in registers (a whole row for N <= 64: split rows measured 2x
// slower). Work units are (p, lane block) pairs, shared between a few threads; each streams through L.

#include <algorithm>
#include <complex>
#include <cstdint>
#include <thread>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

constexpr int64_t kLanes = 64;

struct Shape {
  int64_t p, l, q, pa, la, qa;
};

// Real arithmetic written out: no C99 Annex G NaN recovery in the complex product.
inline void Step(const std::complex<float>& a, std::complex<float>& h, const std::complex<float>& x) {
  const float re = a.real() * h.real() - a.imag() * h.imag() + x.real();
  const float im = a.real() * h.imag() + a.imag() * h.real() + x.imag();
  h = {re, im};
}
inline void Step(const float& a, float& h, const float& x) { h = a * h + x; }

template <typename T>
void RunUnit(const T* a, const T* x, const T* h0, T* h, T* last, const Shape& s, bool reverse, int64_t pi,
             int64_t q0, int64_t q1) {
  T state[kLanes];
  for (int64_t q = q0; q < q1; ++q) state[q - q0] = h0[pi * s.q + q];
  const int64_t a_p = (s.pa == 1 ? 0 : pi) * s.la * s.qa;
  for (int64_t i = 0; i < s.l; ++i) {
    const int64_t k = reverse ? s.l - 1 - i : i;
    const T* x_row = x + (pi * s.l + k) * s.q;
    const T* a_row = a + a_p + (s.la == 1 ? 0 : k) * s.qa;
    T* h_row = h + (pi * s.l + k) * s.q;
    for (int64_t q = q0; q < q1; ++q) {
      Step(a_row[s.qa == 1 ? 0 : q], state[q - q0], x_row[q]);
      h_row[q] = state[q - q0];
    }
  }
  for (int64_t q = q0; q < q1; ++q) last[pi * s.q + q] = state[q - q0];
}

template <ffi::DataType D>
ffi::Error Recurrence(ffi::Buffer<D> a, ffi::Buffer<D> x, ffi::Buffer<D> h0, ffi::ResultBuffer<D> h,
                      ffi::ResultBuffer<D> last, bool reverse, int64_t threads) {
  using T = ffi::NativeType<D>;
  auto xd = x.dimensions();
  auto ad = a.dimensions();
  if (xd.size() != 3 || ad.size() != 3) return ffi::Error::InvalidArgument("a and x must be 3-d (P, L, Q)");
  Shape s{xd[0], xd[1], xd[2], ad[0], ad[1], ad[2]};
  const T* ap = a.typed_data();
  const T* xp = x.typed_data();
  const T* h0p = h0.typed_data();
  T* hp = h->typed_data();
  T* lp = last->typed_data();
  const int64_t blocks = (s.q + kLanes - 1) / kLanes;
  const int64_t units = s.p * blocks;
  auto run = [&](int64_t first, int64_t step) {
    for (int64_t u = first; u < units; u += step) {
      const int64_t pi = u / blocks, q0 = (u % blocks) * kLanes;
      RunUnit<T>(ap, xp, h0p, hp, lp, s, reverse, pi, q0, std::min(q0 + kLanes, s.q));
    }
  };
  const int64_t n = std::max<int64_t>(1, std::min<int64_t>(threads, units));
  if (n == 1 || s.p * s.l * s.q < (1 << 15)) {
    run(0, 1);
  } else {
    std::vector<std::thread> pool;
    for (int64_t t = 1; t < n; ++t) pool.emplace_back(run, t, n);
    run(0, n);
    for (auto& t : pool) t.join();
  }
  return ffi::Error::Success();
}

}  // namespace

#define LSM_BIND(D)                          \
  ffi::Ffi::Bind()                           \
      .Arg<ffi::Buffer<D>>()                 \
      .Arg<ffi::Buffer<D>>()                 \
      .Arg<ffi::Buffer<D>>()                 \
      .Ret<ffi::Buffer<D>>()                 \
      .Ret<ffi::Buffer<D>>()                 \
      .Attr<bool>("reverse")                 \
      .Attr<int64_t>("threads")

XLA_FFI_DEFINE_HANDLER_SYMBOL(LsmRecurrenceC64, Recurrence<ffi::C64>, LSM_BIND(ffi::C64));
XLA_FFI_DEFINE_HANDLER_SYMBOL(LsmRecurrenceF32, Recurrence<ffi::F32>, LSM_BIND(ffi::F32));
