// Elementwise kernels: unary ops/activations, broadcasting binary ops, AddN. Semantics follow the stock tfjs
// cpu kernels (NaN handling included) so results agree to float32 rounding.
#include <cmath>
#include <limits>

#include "common.h"

namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// ---- unary ----
enum Unary {
  U_NEG, U_EXP, U_LOG, U_SQRT, U_RSQRT, U_SQUARE, U_ABS, U_SIGMOID, U_TANH, U_RELU, U_RELU6, U_ELU, U_LEAKYRELU,
  U_STEP, U_ERF, U_SIN, U_COS, U_RECIPROCAL, U_LOG1P, U_EXPM1, U_SOFTPLUS, U_CLIP, U_SIGN, U_FLOOR, U_CEIL,
  U_SELU, U_IDENTITY
};

template <class F>
void unaryLoop(const float* x, float* y, int64_t n, F f) {
  int nt = tn::threadsFor(n);
#pragma omp parallel for simd num_threads(nt) schedule(static)
  for (int64_t i = 0; i < n; i++) y[i] = f(x[i]);
}

void runUnary(int op, const float* x, float* y, int64_t n, float alpha, float beta) {
  switch (op) {
    case U_NEG: return unaryLoop(x, y, n, [](float v) { return -v; });
    case U_EXP: return unaryLoop(x, y, n, [](float v) { return tn::fastExp(v); });
    case U_LOG: return unaryLoop(x, y, n, [](float v) { return std::log(v); });
    case U_SQRT: return unaryLoop(x, y, n, [](float v) { return std::sqrt(v); });
    case U_RSQRT: return unaryLoop(x, y, n, [](float v) { return 1.f / std::sqrt(v); });
    case U_SQUARE: return unaryLoop(x, y, n, [](float v) { return v * v; });
    case U_ABS: return unaryLoop(x, y, n, [](float v) { return std::fabs(v); });
    case U_SIGMOID: return unaryLoop(x, y, n, [](float v) { return 1.f / (1.f + tn::fastExp(-v)); });
    case U_TANH: return unaryLoop(x, y, n, [](float v) { return tn::fastTanh(v); });
    case U_RELU: return unaryLoop(x, y, n, [](float v) { return v < 0.f ? 0.f : v; });
    case U_RELU6: return unaryLoop(x, y, n, [](float v) { return std::isnan(v) ? v : v < 0.f ? 0.f : v > 6.f ? 6.f : v; });
    case U_ELU: return unaryLoop(x, y, n, [](float v) { return v >= 0.f ? v : std::expm1(v); });
    case U_LEAKYRELU: return unaryLoop(x, y, n, [alpha](float v) { return v < 0.f ? alpha * v : v; });
    case U_STEP: return unaryLoop(x, y, n, [alpha](float v) { return std::isnan(v) ? kNaN : v > 0.f ? 1.f : alpha; });
    case U_ERF: return unaryLoop(x, y, n, [](float v) { return std::erf(v); });
    case U_SIN: return unaryLoop(x, y, n, [](float v) { return std::sin(v); });
    case U_COS: return unaryLoop(x, y, n, [](float v) { return std::cos(v); });
    case U_RECIPROCAL: return unaryLoop(x, y, n, [](float v) { return 1.f / v; });
    case U_LOG1P: return unaryLoop(x, y, n, [](float v) { return std::log1p(v); });
    case U_EXPM1: return unaryLoop(x, y, n, [](float v) { return std::expm1(v); });
    case U_SOFTPLUS:
      // Same thresholds as tfjs: exp(x) for very negative x, x for very positive x.
      return unaryLoop(x, y, n, [](float v) {
        const float threshold = std::log(1.1920928955078125e-7f) + 2.0f;
        if (v < threshold) return std::exp(v);
        if (v > -threshold) return v;
        return std::log1p(std::exp(v));
      });
    case U_CLIP: return unaryLoop(x, y, n, [alpha, beta](float v) { return v > beta ? beta : (v < alpha ? alpha : v); });
    case U_SIGN: return unaryLoop(x, y, n, [](float v) { return v < 0.f ? -1.f : v > 0.f ? 1.f : v == 0.f ? 0.f : kNaN; });
    case U_FLOOR: return unaryLoop(x, y, n, [](float v) { return std::floor(v); });
    case U_CEIL: return unaryLoop(x, y, n, [](float v) { return std::ceil(v); });
    case U_SELU:
      return unaryLoop(x, y, n, [](float v) {
        const float scaleAlpha = 1.7580993408473768599402175208123f, scale = 1.0507009873554804934193349852946f;
        return v >= 0.f ? scale * v : scaleAlpha * std::expm1(v);
      });
    case U_IDENTITY: return unaryLoop(x, y, n, [](float v) { return v; });
    default: throw std::invalid_argument("unknown unary op");
  }
}

// ---- binary with broadcasting ----
enum Binary { B_ADD, B_SUB, B_MUL, B_DIV, B_SQDIFF, B_MAX, B_MIN, B_POW, B_PRELU, B_ELUGRAD };

template <class F>
inline void inner(F f, const float* a, int sa, const float* b, int sb, float* o, int64_t c0, int64_t c1) {
  if (sa == 1 && sb == 1) {
#pragma omp simd
    for (int64_t i = c0; i < c1; i++) o[i] = f(a[i], b[i]);
  } else if (sa == 1) {
    const float bv = b[0];
#pragma omp simd
    for (int64_t i = c0; i < c1; i++) o[i] = f(a[i], bv);
  } else if (sb == 1) {
    const float av = a[0];
#pragma omp simd
    for (int64_t i = c0; i < c1; i++) o[i] = f(av, b[i]);
  } else {
    const float v = f(a[0], b[0]);
    for (int64_t i = c0; i < c1; i++) o[i] = v;
  }
}

struct Plan {
  std::vector<int64_t> dims, sa, sb;  // collapsed output dims and input strides (0 = broadcast)
};

Plan plan(const std::vector<int64_t>& as, const std::vector<int64_t>& bs, const std::vector<int64_t>& os) {
  size_t R = os.size();
  tn::check(as.size() <= R && bs.size() <= R, "binary: rank");
  std::vector<int64_t> pa(R, 1), pb(R, 1);
  for (size_t i = 0; i < as.size(); i++) pa[R - as.size() + i] = as[i];
  for (size_t i = 0; i < bs.size(); i++) pb[R - bs.size() + i] = bs[i];
  std::vector<int64_t> stA(R), stB(R);
  int64_t ca = 1, cb = 1;
  for (size_t k = R; k-- > 0;) {
    tn::check((pa[k] == os[k] || pa[k] == 1) && (pb[k] == os[k] || pb[k] == 1), "binary: shapes not broadcastable");
    stA[k] = pa[k] == 1 ? 0 : ca;
    stB[k] = pb[k] == 1 ? 0 : cb;
    ca *= pa[k];
    cb *= pb[k];
  }
  Plan p;
  for (size_t k = 0; k < R; k++) {
    if (os[k] == 1) continue;
    if (!p.dims.empty()) {
      int64_t d = os[k];
      size_t j = p.dims.size() - 1;
      // merge k into the previous kept dim when both operands step through them as one dim
      if (p.sa[j] == stA[k] * d && p.sb[j] == stB[k] * d) {
        p.dims[j] *= d;
        p.sa[j] = stA[k];
        p.sb[j] = stB[k];
        continue;
      }
    }
    p.dims.push_back(os[k]);
    p.sa.push_back(stA[k]);
    p.sb.push_back(stB[k]);
  }
  if (p.dims.empty()) {
    p.dims.push_back(1);
    p.sa.push_back(0);
    p.sb.push_back(0);
  }
  return p;
}

template <class F>
void binaryLoop(F f, const float* a, const float* b, float* o, const Plan& p) {
  const size_t r = p.dims.size();
  tn::check(r <= 16, "binary: rank too large");
  const int64_t L = p.dims[r - 1];
  const int sa = (int)p.sa[r - 1], sb = (int)p.sb[r - 1];
  int64_t rows = 1;
  for (size_t k = 0; k + 1 < r; k++) rows *= p.dims[k];
  const int nt = tn::threadsFor(rows * L);
  if (rows == 1) {
    // One long row: split it between threads.
    const int64_t chunk = nt > 1 ? (L + nt - 1) / nt : L;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t c0 = 0; c0 < L; c0 += chunk) inner(f, a, sa, b, sb, o, c0, std::min(L, c0 + chunk));
    return;
  }
  // Each thread walks a contiguous range of rows, stepping the input offsets with an odometer (no divisions
  // per row: rows can be as short as a few elements, e.g. GroupNorm's [N, HW, G, C/G] against [N, 1, G, 1]).
#pragma omp parallel num_threads(nt)
  {
    const int t = omp_get_thread_num(), T = omp_get_num_threads();
    const int64_t r0 = rows * t / T, r1 = rows * (t + 1) / T;
    if (r0 < r1) {
      int64_t idx[16];
      int64_t offA = 0, offB = 0, rem = r0;
      for (size_t k = r - 1; k-- > 0;) {
        idx[k] = rem % p.dims[k];
        rem /= p.dims[k];
        offA += idx[k] * p.sa[k];
        offB += idx[k] * p.sb[k];
      }
      for (int64_t row = r0; row < r1; row++) {
        inner(f, a + offA, sa, b + offB, sb, o + row * L, 0, L);
        for (size_t k = r - 1; k-- > 0;) {
          offA += p.sa[k];
          offB += p.sb[k];
          if (++idx[k] < p.dims[k]) break;
          offA -= p.sa[k] * p.dims[k];
          offB -= p.sb[k] * p.dims[k];
          idx[k] = 0;
        }
      }
    }
  }
}

void runBinary(int op, const float* a, const float* b, float* o, const Plan& p) {
  switch (op) {
    case B_ADD: return binaryLoop([](float x, float y) { return x + y; }, a, b, o, p);
    case B_SUB: return binaryLoop([](float x, float y) { return x - y; }, a, b, o, p);
    case B_MUL: return binaryLoop([](float x, float y) { return x * y; }, a, b, o, p);
    case B_DIV: return binaryLoop([](float x, float y) { return x / y; }, a, b, o, p);
    case B_SQDIFF: return binaryLoop([](float x, float y) { return (x - y) * (x - y); }, a, b, o, p);
    case B_MAX:
      return binaryLoop([](float x, float y) { return (std::isnan(x) || std::isnan(y)) ? kNaN : x > y ? x : y; }, a, b, o, p);
    case B_MIN:
      return binaryLoop([](float x, float y) { return (std::isnan(x) || std::isnan(y)) ? kNaN : x < y ? x : y; }, a, b, o, p);
    case B_POW:
      return binaryLoop([](float x, float y) {
        // Small integer powers (GELU's x^3, gradients' x^2) exactly as pow does: the double product is exact
        // enough that the final rounding to float32 matches.
        if (y == 2.f) return (float)((double)x * x);
        if (y == 3.f) return (float)((double)x * x * x);
        if (y == 1.f) return x;
        return (float)std::pow((double)x, (double)y);
      }, a, b, o, p);
    case B_PRELU: return binaryLoop([](float x, float al) { return x < 0.f ? al * x : x; }, a, b, o, p);
    case B_ELUGRAD: return binaryLoop([](float dy, float y) { return y >= 0.f ? dy : dy * (y + 1.f); }, a, b, o, p);
    default: throw std::invalid_argument("unknown binary op");
  }
}

}  // namespace

// unary(op, x, out, alpha, beta)
TN_FN(unary) {
  int op = info[0].As<Napi::Number>().Int32Value();
  tn::F32 x = tn::f32(info[1], "x"), y = tn::f32(info[2], "out");
  tn::check(x.n == y.n, "unary: sizes differ");
  runUnary(op, x.p, y.p, (int64_t)x.n, info[3].As<Napi::Number>().FloatValue(), info[4].As<Napi::Number>().FloatValue());
  return info.Env().Undefined();
}

// binary(op, a, aShape, b, bShape, out, outShape)
TN_FN(binary) {
  int op = info[0].As<Napi::Number>().Int32Value();
  tn::F32 a = tn::f32(info[1], "a"), b = tn::f32(info[3], "b"), o = tn::f32(info[5], "out");
  auto as = tn::ints(info[2], "aShape"), bs = tn::ints(info[4], "bShape"), os = tn::ints(info[6], "outShape");
  tn::check((int64_t)a.n == tn::prod(as) && (int64_t)b.n == tn::prod(bs) && (int64_t)o.n == tn::prod(os),
            "binary: buffer sizes");
  if (o.n == 0) return info.Env().Undefined();
  runBinary(op, a.p, b.p, o.p, plan(as, bs, os));
  return info.Env().Undefined();
}

// addN([arrays], out)
TN_FN(addN) {
  auto arr = info[0].As<Napi::Array>();
  tn::F32 o = tn::f32(info[1], "out");
  std::vector<const float*> ins;
  for (uint32_t i = 0; i < arr.Length(); i++) {
    tn::F32 x = tn::f32(arr.Get(i), "input");
    tn::check(x.n == o.n, "addN: sizes differ");
    ins.push_back(x.p);
  }
  tn::check(!ins.empty(), "addN: no inputs");
  int64_t n = (int64_t)o.n;
  int nt = tn::threadsFor(n * ins.size());
  const int64_t blk = 4096;
  int64_t nb = (n + blk - 1) / blk;
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t t = 0; t < nb; t++) {
    int64_t i0 = t * blk, i1 = std::min(n, i0 + blk);
    const float* x0 = ins[0];
#pragma omp simd
    for (int64_t i = i0; i < i1; i++) o.p[i] = x0[i];
    for (size_t k = 1; k < ins.size(); k++) {
      const float* xk = ins[k];
#pragma omp simd
      for (int64_t i = i0; i < i1; i++) o.p[i] += xk[i];
    }
  }
  return info.Env().Undefined();
}

namespace tn {
void initElementwise(Napi::Env env, Napi::Object exports) {
  TN_EXPORT(exports, unary);
  TN_EXPORT(exports, binary);
  TN_EXPORT(exports, addN);
}
}  // namespace tn
