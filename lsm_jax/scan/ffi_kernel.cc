// The linear recurrence h_k = a_k * h_{k-1} + x_k as an XLA FFI custom call for the CPU.
//
// Canonical form (lsm_jax/scan/common.py): x (P, L, Q), a (Pa, La, Qa) with each of Pa, La, Qa
// either 1 (broadcast) or the full size, h0 (P, Q). Outputs h (P, L, Q) and h_last (P, Q).
// One pass: a and x are read once and h written once (24 bytes per complex64 element), the state
// for a block of up to 64 lanes kept in registers (a whole row for N <= 64: split rows measured 2x
// slower). Work units are (p, lane block) pairs, shared between a few threads; each streams through L.
//
// Threads: the attribute `threads`, or when it is 0 the CPUs this process may run on
// (sched_getaffinity at call time, so `taskset`, cgroup cpusets and os.sched_setaffinity count).
// A thread that cannot be started leaves its share of the work to the calling thread; anything
// else that goes wrong is returned as an FFI error (a Python exception), never an abort.

#include <algorithm>
#include <cerrno>
#include <complex>
#include <cstdint>
#include <exception>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#if defined(__linux__)
#include <sched.h>
#endif

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

constexpr int64_t kLanes = 64;

// Test hooks (the attribute `test_fault`; 0 in every real call).
constexpr int64_t kFaultNone = 0;
constexpr int64_t kFaultSpawn = 1;  // every thread start after the first fails: their shares fall back
constexpr int64_t kFaultError = 2;  // an exception inside the call: it comes back as an FFI error

struct Shape {
  int64_t p, l, q, pa, la, qa;
};

// The CPUs this process may run on now; 1 when that cannot be found out.
int64_t UsableCpus() {
#if defined(__linux__)
  for (int cpus = 1024; cpus <= (1 << 16); cpus *= 4) {
    cpu_set_t* set = CPU_ALLOC(cpus);
    if (set == nullptr) break;
    const size_t size = CPU_ALLOC_SIZE(cpus);
    CPU_ZERO_S(size, set);
    const bool ok = sched_getaffinity(0, size, set) == 0;
    const int count = ok ? CPU_COUNT_S(size, set) : 0;
    CPU_FREE(set);
    if (ok) return std::max(1, count);
    if (errno != EINVAL) break;  // EINVAL: the kernel's mask is larger than `cpus`; try a larger one
  }
#endif
  return std::max<int64_t>(1, std::thread::hardware_concurrency());
}

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

// Threads that are joined whenever the pool goes out of scope, also on an early return.
class Pool {
 public:
  ~Pool() {
    for (auto& t : threads_)
      if (t.joinable()) t.join();
  }
  // Starts fn(args...) on a new thread; false when the system refuses one.
  template <typename F, typename... Args>
  bool Start(int64_t fault, F&& fn, Args&&... args) {
    try {
      if (fault == kFaultSpawn && !threads_.empty())
        throw std::system_error(EAGAIN, std::generic_category(), "simulated");
      threads_.emplace_back(std::forward<F>(fn), std::forward<Args>(args)...);
      return true;
    } catch (const std::system_error&) {
      return false;
    }
  }

 private:
  std::vector<std::thread> threads_;
};

template <ffi::DataType D>
ffi::Error Recurrence(ffi::Buffer<D> a, ffi::Buffer<D> x, ffi::Buffer<D> h0, ffi::ResultBuffer<D> h,
                      ffi::ResultBuffer<D> last, bool reverse, int64_t threads, int64_t test_fault) {
  using T = ffi::NativeType<D>;
  auto xd = x.dimensions();
  auto ad = a.dimensions();
  if (xd.size() != 3 || ad.size() != 3) return ffi::Error::InvalidArgument("a and x must be 3-d (P, L, Q)");
  if (threads < 0) return ffi::Error::InvalidArgument("threads must be >= 0 (0: the CPUs this process may use)");
  Shape s{xd[0], xd[1], xd[2], ad[0], ad[1], ad[2]};
  const T* ap = a.typed_data();
  const T* xp = x.typed_data();
  const T* h0p = h0.typed_data();
  T* hp = h->typed_data();
  T* lp = last->typed_data();
  const int64_t blocks = (s.q + kLanes - 1) / kLanes;
  const int64_t units = s.p * blocks;
  auto run = [=](int64_t first, int64_t step) {
    for (int64_t u = first; u < units; u += step) {
      const int64_t pi = u / blocks, q0 = (u % blocks) * kLanes;
      RunUnit<T>(ap, xp, h0p, hp, lp, s, reverse, pi, q0, std::min(q0 + kLanes, s.q));
    }
  };
  try {
    if (test_fault == kFaultError) throw std::runtime_error("simulated failure (test_fault=2)");
    const int64_t wanted = threads > 0 ? threads : UsableCpus();
    const int64_t n = std::max<int64_t>(1, std::min<int64_t>(wanted, units));
    if (n == 1 || s.p * s.l * s.q < (1 << 15)) {
      run(0, 1);
      return ffi::Error::Success();
    }
    Pool pool;
    int64_t started = 1;  // share 0 is the calling thread's
    while (started < n && pool.Start(test_fault, run, started, n)) ++started;
    run(0, n);
    for (int64_t t = started; t < n; ++t) run(t, n);  // the shares of threads that could not start
  } catch (const std::exception& e) {                 // the pool has joined what it started
    return ffi::Error::Internal(std::string("lsm_linear_recurrence: ") + e.what());
  } catch (...) {
    return ffi::Error::Internal("lsm_linear_recurrence: unknown C++ exception");
  }
  return ffi::Error::Success();
}

}  // namespace

// The thread count a call with attribute `threads` uses before capping at its work units
// (for tests and diagnostics, through ctypes).
extern "C" int64_t LsmResolvedThreads(int64_t threads) { return threads > 0 ? threads : UsableCpus(); }

#define LSM_BIND(D)                          \
  ffi::Ffi::Bind()                           \
      .Arg<ffi::Buffer<D>>()                 \
      .Arg<ffi::Buffer<D>>()                 \
      .Arg<ffi::Buffer<D>>()                 \
      .Ret<ffi::Buffer<D>>()                 \
      .Ret<ffi::Buffer<D>>()                 \
      .Attr<bool>("reverse")                 \
      .Attr<int64_t>("threads")              \
      .Attr<int64_t>("test_fault")

XLA_FFI_DEFINE_HANDLER_SYMBOL(LsmRecurrenceC64, Recurrence<ffi::C64>, LSM_BIND(ffi::C64));
XLA_FFI_DEFINE_HANDLER_SYMBOL(LsmRecurrenceF32, Recurrence<ffi::F32>, LSM_BIND(ffi::F32));
