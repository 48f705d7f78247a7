// Shared helpers for the tfjs native kernels: argument decoding, the oneDNN engine/stream, threading.
#pragma once
#include <napi.h>
#include <dnnl.hpp>
#include <omp.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace tn {

struct F32 {
  float* p;
  size_t n;
};

// A Float32Array argument (throws on anything else so JS falls back instead of reading garbage).
F32 f32(const Napi::Value& v, const char* what);
// A float32 array or null/undefined -> {nullptr, 0}.
F32 f32OrNull(const Napi::Value& v, const char* what);
// A JS array of integers.
std::vector<int64_t> ints(const Napi::Value& v, const char* what);
int64_t prod(const std::vector<int64_t>& s);

dnnl::engine& eng();
dnnl::stream& strm();

// Threads worth using for `work` elements of cheap elementwise work: tiny tensors stay on one thread
// because waking the OpenMP team costs more than the loop.
inline int threadsFor(size_t work) {
  if (work < (1 << 17)) return 1;
  return omp_get_max_threads();
}

// oneDNN primitives (OpenMP runtime) use as many threads as the calling thread's OpenMP setting at creation
// and execution. Small convolutions / matmuls run on one thread: waking a second one costs more than it saves,
// and on a loaded machine each parallel region waits for the slowest thread to be scheduled.
constexpr double kParallelFlops = 4e6;
inline int threadsForFlops(double flops) { return flops < kParallelFlops ? 1 : omp_get_max_threads(); }

// Sets the OpenMP thread count for a scope and restores it after.
class ThreadScope {
 public:
  explicit ThreadScope(int n) : prev_(omp_get_max_threads()) {
    if (n != prev_) omp_set_num_threads(n);
  }
  ~ThreadScope() {
    if (omp_get_max_threads() != prev_) omp_set_num_threads(prev_);
  }
  ThreadScope(const ThreadScope&) = delete;
  ThreadScope& operator=(const ThreadScope&) = delete;

 private:
  int prev_;
};

inline void check(bool ok, const std::string& msg) {
  if (!ok) throw std::invalid_argument(msg);
}

void initConv(Napi::Env env, Napi::Object exports);
void initMatmul(Napi::Env env, Napi::Object exports);
void initElementwise(Napi::Env env, Napi::Object exports);
void initReduce(Napi::Env env, Napi::Object exports);
void initShapeOps(Napi::Env env, Napi::Object exports);
void initResize(Napi::Env env, Napi::Object exports);

}  // namespace tn

// Defines a N-API entry point `name` whose body may throw: exceptions become JS errors.
#define TN_FN(name)                                                       \
  static Napi::Value name##_impl(const Napi::CallbackInfo& info);         \
  static Napi::Value name(const Napi::CallbackInfo& info) {               \
    try {                                                                 \
      return name##_impl(info);                                           \
    } catch (const std::exception& e) {                                   \
      Napi::Error::New(info.Env(), std::string(#name ": ") + e.what())    \
          .ThrowAsJavaScriptException();                                  \
      return info.Env().Undefined();                                      \
    }                                                                     \
  }                                                                       \
  static Napi::Value name##_impl(const Napi::CallbackInfo& info)

#define TN_EXPORT(exports, name) exports.Set(#name, Napi::Function::New(env, name, #name))
