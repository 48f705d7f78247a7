// Entry of the native tfjs kernels addon: argument helpers, oneDNN engine, thread control.
#include "common.h"

#include <cstdlib>
#ifdef __GLIBC__
#include <malloc.h>
#endif

namespace tn {

F32 f32(const Napi::Value& v, const char* what) {
  if (!v.IsTypedArray()) throw std::invalid_argument(std::string(what) + ": expected Float32Array");
  auto ta = v.As<Napi::TypedArray>();
  if (ta.TypedArrayType() != napi_float32_array)
    throw std::invalid_argument(std::string(what) + ": expected Float32Array");
  auto fa = v.As<Napi::Float32Array>();
  return {fa.Data(), fa.ElementLength()};
}

F32 f32OrNull(const Napi::Value& v, const char* what) {
  if (v.IsNull() || v.IsUndefined()) return {nullptr, 0};
  return f32(v, what);
}

std::vector<int64_t> ints(const Napi::Value& v, const char* what) {
  if (!v.IsArray()) throw std::invalid_argument(std::string(what) + ": expected array");
  auto a = v.As<Napi::Array>();
  std::vector<int64_t> out(a.Length());
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Value e = a.Get(i);
    if (!e.IsNumber()) throw std::invalid_argument(std::string(what) + ": expected numbers");
    out[i] = e.As<Napi::Number>().Int64Value();
  }
  return out;
}

int64_t prod(const std::vector<int64_t>& s) {
  int64_t p = 1;
  for (auto d : s) p *= d;
  return p;
}

dnnl::engine& eng() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}
dnnl::stream& strm() {
  static dnnl::stream s(eng());
  return s;
}

}  // namespace tn

using namespace tn;

namespace {
// Every tfjs kernel output is a fresh typed array. glibc serves allocations of 128 KB and more with mmap, so
// each such tensor costs an mmap, page faults on first touch and an munmap: measured 37-82 us for a 128 KB
// Float32Array here vs 4.5 us from the heap. Keep tensor-sized blocks in the heap (freed memory is reused;
// the heap top is returned to the OS above 512 MB). Skipped when the user tunes malloc through the environment.
bool tuneMalloc() {
#ifdef __GLIBC__
  if (std::getenv("MALLOC_MMAP_THRESHOLD_") || std::getenv("MALLOC_TRIM_THRESHOLD_") || std::getenv("GLIBC_TUNABLES") ||
      std::getenv("TFJS_NATIVE_NO_MALLOC_TUNING"))
    return false;
  return mallopt(M_MMAP_THRESHOLD, 64 << 20) == 1 && mallopt(M_TRIM_THRESHOLD, 512 << 20) == 1;
#else
  return false;
#endif
}
bool mallocTuned = false;
}  // namespace

TN_FN(info) {
  Napi::Env env = info.Env();
  auto o = Napi::Object::New(env);
  o.Set("threads", omp_get_max_threads());
  const dnnl_version_t* v = dnnl_version();
  o.Set("dnnl", std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch));
  o.Set("dnnlCpuRuntime", v->cpu_runtime == DNNL_RUNTIME_OMP ? "omp" : v->cpu_runtime == DNNL_RUNTIME_SEQ ? "seq" : "other");
  o.Set("isa", static_cast<int>(dnnl::get_effective_cpu_isa()));
  o.Set("mallocTuned", mallocTuned);
  return o;
}

TN_FN(setThreads) {
  int n = info[0].As<Napi::Number>().Int32Value();
  check(n >= 1, "threads must be >= 1");
  omp_set_num_threads(n);
  return info.Env().Undefined();
}

// Row-major SGEMM C = A(MxK) B(KxN), the reference peak for the benchmark.
TN_FN(sgemm) {
  int64_t M = info[0].As<Napi::Number>().Int64Value(), N = info[1].As<Napi::Number>().Int64Value(),
          K = info[2].As<Napi::Number>().Int64Value();
  F32 a = f32(info[3], "a"), b = f32(info[4], "b"), c = f32(info[5], "c");
  check((int64_t)a.n >= M * K && (int64_t)b.n >= K * N && (int64_t)c.n >= M * N, "sgemm: buffer sizes");
  dnnl_status_t st = dnnl_sgemm('N', 'N', M, N, K, 1.f, a.p, K, b.p, N, 0.f, c.p, N);
  check(st == dnnl_success, "dnnl_sgemm failed");
  return info.Env().Undefined();
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  mallocTuned = tuneMalloc();
  TN_EXPORT(exports, info);
  TN_EXPORT(exports, setThreads);
  TN_EXPORT(exports, sgemm);
  initConv(env, exports);
  initMatmul(env, exports);
  initElementwise(env, exports);
  initReduce(env, exports);
  initShapeOps(env, exports);
  initResize(env, exports);
  initNorm(env, exports);
  return exports;
}

NODE_API_MODULE(tfjs_native, Init)
