// Shared helpers for the tfjs native kernels: argument decoding, the oneDNN engine/stream, threading.
#pragma once
#include <napi.h>
#include <dnnl.hpp>
#include <omp.h>

#include <cmath>
#include <cstdint>
#include <cstring>
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

// Fused activation as a oneDNN post-op (conv and matmul). act: 0 linear, 1 relu, 2 relu6, 3 elu, 4 leakyrelu(alpha), 5 sigmoid
inline dnnl::primitive_attr activationAttr(int act, float alpha) {
  dnnl::primitive_attr attr;
  dnnl::post_ops po;
  switch (act) {
    case 0: break;
    case 1: po.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f); break;
    case 2: po.append_eltwise(1.f, dnnl::algorithm::eltwise_clip, 0.f, 6.f); break;
    case 3: po.append_eltwise(1.f, dnnl::algorithm::eltwise_elu, 1.f, 0.f); break;
    case 4: po.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, alpha, 0.f); break;
    case 5: po.append_eltwise(1.f, dnnl::algorithm::eltwise_logistic, 0.f, 0.f); break;
    default: throw std::invalid_argument("unknown activation");
  }
  attr.set_post_ops(po);
  return attr;
}

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

// expf with ~1-2 ulp error over the whole float range (Cephes' polynomial after Cody-Waite range reduction),
// written branch-free so loops over it vectorize (glibc's expf does not). Gradual underflow, overflow to inf
// and NaN behave like expf.
inline float fastExp(float x) {
  float xc = x < -104.f ? -104.f : x;  // exp(-104) rounds to 0 in float32
  xc = xc > 88.73f ? 88.73f : xc;      // exp(88.73) overflows to inf
  float fx = std::floor(xc * 1.44269504088896341f + 0.5f);
  float r = xc - fx * 0.693359375f;
  r = r - fx * -2.12194440e-4f;
  float y = 1.9875691500E-4f;
  y = y * r + 1.3981999507E-3f;
  y = y * r + 8.3334519073E-3f;
  y = y * r + 4.1665795894E-2f;
  y = y * r + 1.6666665459E-1f;
  y = y * r + 5.0000001201E-1f;
  y = y * (r * r) + r + 1.0f;
  // y * 2^n as two exact power-of-two factors so neither the scale nor an intermediate over/underflows early.
  int32_t n = static_cast<int32_t>(fx);
  int32_t n1 = n / 2, n2 = n - n1;
  int32_t b1 = (n1 + 127) << 23, b2 = (n2 + 127) << 23;
  float s1, s2;
  std::memcpy(&s1, &b1, 4);
  std::memcpy(&s2, &b2, 4);
  float res = y * s1 * s2;
  return x != x ? x : res;
}

// tanhf (Cephes: odd polynomial below |x| = 0.625, 1 - 2 / (exp(2|x|) + 1) above), branch-free like fastExp.
inline float fastTanh(float x) {
  const float ax = std::fabs(x);
  const float z = x * x;
  const float small = ((((-5.70498872745E-3f * z + 2.06390887954E-2f) * z - 5.37397155531E-2f) * z +
                        1.33314422036E-1f) * z - 3.33332819422E-1f) * z * x + x;
  const float big = std::copysign(1.f - 2.f / (fastExp(2.f * ax) + 1.f), x);
  return ax > 0.625f ? big : small;
}

inline void check(bool ok, const std::string& msg) {
  if (!ok) throw std::invalid_argument(msg);
}

void initConv(Napi::Env env, Napi::Object exports);
void initMatmul(Napi::Env env, Napi::Object exports);
void initElementwise(Napi::Env env, Napi::Object exports);
void initReduce(Napi::Env env, Napi::Object exports);
void initShapeOps(Napi::Env env, Napi::Object exports);
void initResize(Napi::Env env, Napi::Object exports);
void initNorm(Napi::Env env, Napi::Object exports);

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
