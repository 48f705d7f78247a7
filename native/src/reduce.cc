// Reductions (Sum, Mean, Max, Min, Prod over any set of axes) and Softmax over the last axis.
// Sums accumulate in double so long reductions (bias gradients over N*H*W rows) stay close to the stock
// kernel, which accumulates in JS numbers.
#include <cmath>
#include <limits>

#include "common.h"

namespace {

enum Op { R_SUM, R_MEAN, R_MAX, R_MIN, R_PROD };

struct Acc {
  int op;
  double init() const {
    switch (op) {
      case R_MAX: return -std::numeric_limits<double>::infinity();
      case R_MIN: return std::numeric_limits<double>::infinity();
      case R_PROD: return 1.0;
      default: return 0.0;
    }
  }
  // NaN propagates for max/min like the stock kernels (value > max is false for NaN, so test it first).
  double step(double acc, double v) const {
    switch (op) {
      case R_MAX: return (std::isnan(v) || v > acc) ? v : acc;
      case R_MIN: return (std::isnan(v) || v < acc) ? v : acc;
      case R_PROD: return acc * v;
      default: return acc + v;
    }
  }
  double merge(double a, double b) const {
    if (op == R_SUM || op == R_MEAN) return a + b;
    if (op == R_PROD) return a * b;
    if (std::isnan(a)) return a;
    return step(a, b);
  }
};

// Contiguous reduction of n floats.
double reduceRow(const Acc& acc, const float* x, int64_t n) {
  if (acc.op == R_SUM || acc.op == R_MEAN) {
    double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
      for (int k = 0; k < 8; k++) s[k] += x[i + k];
    double t = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    for (; i < n; i++) t += x[i];
    return t;
  }
  double a = acc.init();
  for (int64_t i = 0; i < n; i++) a = acc.step(a, x[i]);
  return a;
}

template <int OP>
inline double combine(double d, double v) {
  if (OP == R_SUM) return d + v;
  if (OP == R_PROD) return d * v;
  if (OP == R_MAX) return (std::isnan(v) || v > d) ? v : d;
  return (std::isnan(v) || v < d) ? v : d;
}

// Accumulate x (collapsed dims, alternating kept/reduced; output strides ost, 0 for reduced dims) into acc:
// rows of the innermost dim are reduced in registers (innermost reduced) or added element-wise (innermost kept),
// the outer dims are stepped with an odometer. With threads > 1, dim 0 (kept) is split between threads, so
// each thread owns distinct outputs.
template <int OP>
void walk(const float* x, int64_t n, const std::vector<int64_t>& dims, const std::vector<bool>& kind,
          const std::vector<int64_t>& ost, double* acc, int threads) {
  const size_t r = dims.size();
  const int64_t L = dims[r - 1];
  const bool innerReduced = kind[r - 1];
  if (r == 1) {  // a single short dim: reduced to one value (a kept-only tensor never gets here)
    for (int64_t e = 0; e < n; e++) acc[0] = combine<OP>(acc[0], x[e]);
    return;
  }
  const int64_t per = dims[0];
  const int64_t inner = n / per;
  const int64_t rowsPer = inner / L;
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num(), T = omp_get_num_threads();
    const int64_t i0 = threads > 1 ? per * t / T : 0, i1 = threads > 1 ? per * (t + 1) / T : per;
    int64_t idx[16];
    for (int64_t i = i0; i < i1; i++) {
      const float* src = x + i * inner;
      double* a = acc + i * ost[0];
      int64_t ooff = 0;
      for (size_t k = 1; k + 1 < r; k++) idx[k] = 0;
      for (int64_t row = 0; row < rowsPer; row++) {
        const float* p = src + row * L;
        if (innerReduced) {
          double s = p[0];
          for (int64_t j = 1; j < L; j++) s = combine<OP>(s, p[j]);
          a[ooff] = combine<OP>(a[ooff], s);
        } else {
          double* d = a + ooff;
          for (int64_t j = 0; j < L; j++) d[j] = combine<OP>(d[j], p[j]);
        }
        for (size_t k = r - 2; k >= 1; k--) {
          ooff += ost[k];
          if (++idx[k] < dims[k]) break;
          ooff -= ost[k] * dims[k];
          idx[k] = 0;
        }
      }
    }
  }
}

}  // namespace

// reduce(op, x, shape, axes, out)
TN_FN(reduce) {
  Acc acc{info[0].As<Napi::Number>().Int32Value()};
  tn::F32 x = tn::f32(info[1], "x"), o = tn::f32(info[4], "out");
  auto shape = tn::ints(info[2], "shape"), axes = tn::ints(info[3], "axes");
  size_t R = shape.size();
  tn::check((int64_t)x.n == tn::prod(shape), "reduce: buffer size");
  std::vector<bool> red(R, false);
  for (auto a : axes) {
    tn::check(a >= 0 && (size_t)a < R, "reduce: axis");
    red[a] = true;
  }
  // Collapse: drop size-1 dims, merge neighbours of the same kind.
  std::vector<int64_t> dims, strides;
  std::vector<bool> kind;
  {
    std::vector<int64_t> st(R);
    int64_t c = 1;
    for (size_t k = R; k-- > 0;) st[k] = c, c *= shape[k];
    for (size_t k = 0; k < R; k++) {
      if (shape[k] == 1) continue;
      if (!dims.empty() && kind.back() == red[k]) {
        dims.back() *= shape[k];
        strides.back() = st[k];
        continue;
      }
      dims.push_back(shape[k]);
      strides.push_back(st[k]);
      kind.push_back(red[k]);
    }
  }
  int64_t outN = 1, redN = 1;
  for (size_t k = 0; k < dims.size(); k++) (kind[k] ? redN : outN) *= dims[k];
  tn::check((int64_t)o.n == outN, "reduce: output size");
  const double scale = acc.op == R_MEAN ? 1.0 / (double)redN : 1.0;
  if (x.n == 0) {
    for (int64_t i = 0; i < outN; i++) o.p[i] = acc.op == R_MEAN ? std::numeric_limits<float>::quiet_NaN() : (float)acc.init();
    return info.Env().Undefined();
  }
  if (dims.empty() || redN == 1) {  // nothing to reduce
    for (int64_t i = 0; i < outN; i++) o.p[i] = x.p[i];
    return info.Env().Undefined();
  }
  std::vector<int64_t> kd, ks, rd, rs;  // kept / reduced dims and strides (outer to inner)
  for (size_t k = 0; k < dims.size(); k++) {
    if (kind[k]) rd.push_back(dims[k]), rs.push_back(strides[k]);
    else kd.push_back(dims[k]), ks.push_back(strides[k]);
  }
  auto offsetOf = [](int64_t idx, const std::vector<int64_t>& d, const std::vector<int64_t>& s, size_t count) {
    int64_t off = 0;
    for (size_t k = count; k-- > 0;) {
      off += (idx % d[k]) * s[k];
      idx /= d[k];
    }
    return off;
  };
  int nt = tn::threadsFor(x.n);
  if (dims.back() < 32) {
    // Short innermost runs (GroupNorm's [N, HW, G, C/G] over axes 1 and 3, reductions of small trailing dims):
    // walk the input once in memory order with an odometer, accumulating into the outputs. Threads split the
    // outermost dim when it is kept (disjoint outputs); otherwise one thread.
    const size_t r = dims.size();
    tn::check(r <= 16, "reduce: rank too large");
    std::vector<int64_t> ost(r, 0);  // output stride per collapsed dim (0 for reduced dims)
    {
      int64_t c = 1;
      for (size_t k = r; k-- > 0;)
        if (!kind[k]) ost[k] = c, c *= dims[k];
    }
    std::vector<double> accs(outN, acc.init());
    const bool split = !kind[0] && dims[0] >= nt && nt > 1;
    switch (acc.op) {
      case R_SUM:
      case R_MEAN: walk<R_SUM>(x.p, (int64_t)x.n, dims, kind, ost, accs.data(), split ? nt : 1); break;
      case R_MAX: walk<R_MAX>(x.p, (int64_t)x.n, dims, kind, ost, accs.data(), split ? nt : 1); break;
      case R_MIN: walk<R_MIN>(x.p, (int64_t)x.n, dims, kind, ost, accs.data(), split ? nt : 1); break;
      default: walk<R_PROD>(x.p, (int64_t)x.n, dims, kind, ost, accs.data(), split ? nt : 1); break;
    }
    for (int64_t i = 0; i < outN; i++) o.p[i] = (float)(accs[i] * scale);
    return info.Env().Undefined();
  }
  if (kind.back()) {
    // Innermost dim reduced: every output reduces contiguous rows of length L.
    int64_t L = rd.back();
    int64_t outerRed = redN / L;
    if (outN >= nt * 4 || nt == 1) {
#pragma omp parallel for num_threads(nt) schedule(static)
      for (int64_t oi = 0; oi < outN; oi++) {
        int64_t base = offsetOf(oi, kd, ks, kd.size());
        double a = acc.init();
        for (int64_t r = 0; r < outerRed; r++)
          a = acc.merge(a, reduceRow(acc, x.p + base + offsetOf(r, rd, rs, rd.size() - 1), L));
        o.p[oi] = (float)(a * scale);
      }
    } else {
      // Few outputs: split the reduced range over threads.
      for (int64_t oi = 0; oi < outN; oi++) {
        int64_t base = offsetOf(oi, kd, ks, kd.size());
        std::vector<double> part(nt, acc.init());
        if (outerRed > 1) {
#pragma omp parallel for num_threads(nt) schedule(static)
          for (int64_t r = 0; r < outerRed; r++) {
            int t = omp_get_thread_num();
            part[t] = acc.merge(part[t], reduceRow(acc, x.p + base + offsetOf(r, rd, rs, rd.size() - 1), L));
          }
        } else {
          int64_t chunk = (L + nt - 1) / nt;
#pragma omp parallel num_threads(nt)
          {
            int t = omp_get_thread_num();
            int64_t c0 = t * chunk, c1 = std::min(L, c0 + chunk);
            if (c0 < c1) part[t] = reduceRow(acc, x.p + base + c0, c1 - c0);
          }
        }
        double a = acc.init();
        for (int t = 0; t < nt; t++) a = acc.merge(a, part[t]);
        o.p[oi] = (float)(a * scale);
      }
    }
  } else {
    // Innermost dim kept (length L): accumulate whole rows into L accumulators.
    int64_t L = kd.back();
    int64_t outerKept = outN / L;
    int parts = (outerKept >= nt * 2 || nt == 1) ? 1 : nt;  // split the reduced range when outputs are few
    std::vector<double> accs((size_t)parts * outN, acc.init());
    int64_t per = (redN + parts - 1) / parts;
#pragma omp parallel for collapse(2) num_threads(nt) schedule(static)
    for (int64_t ok = 0; ok < outerKept; ok++) {
      for (int p = 0; p < parts; p++) {
        int64_t base = offsetOf(ok, kd, ks, kd.size() - 1);
        double* a = accs.data() + (size_t)p * outN + ok * L;
        int64_t r0 = p * per, r1 = std::min(redN, r0 + per);
        for (int64_t r = r0; r < r1; r++) {
          const float* row = x.p + base + offsetOf(r, rd, rs, rd.size());
          if (acc.op == R_SUM || acc.op == R_MEAN) {
#pragma omp simd
            for (int64_t i = 0; i < L; i++) a[i] += row[i];
          } else {
            for (int64_t i = 0; i < L; i++) a[i] = acc.step(a[i], row[i]);
          }
        }
      }
    }
    for (int64_t i = 0; i < outN; i++) {
      double a = accs[i];
      for (int p = 1; p < parts; p++) a = acc.merge(a, accs[(size_t)p * outN + i]);
      o.p[i] = (float)(a * scale);
    }
  }
  return info.Env().Undefined();
}

// softmax(x, rows, cols, out): over the last axis, max-shifted like the stock kernel.
TN_FN(softmax) {
  tn::F32 x = tn::f32(info[0], "x"), o = tn::f32(info[3], "out");
  int64_t rows = info[1].As<Napi::Number>().Int64Value(), cols = info[2].As<Napi::Number>().Int64Value();
  tn::check((int64_t)x.n == rows * cols && o.n == x.n, "softmax: buffer sizes");
  int nt = tn::threadsFor(x.n);
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t r = 0; r < rows; r++) {
    const float* xr = x.p + r * cols;
    float* orow = o.p + r * cols;
    float m = -std::numeric_limits<float>::infinity();
    for (int64_t i = 0; i < cols; i++) m = (std::isnan(xr[i]) || xr[i] > m) ? xr[i] : m;
    double s = 0;
    for (int64_t i = 0; i < cols; i++) {
      float e = tn::fastExp(xr[i] - m);
      orow[i] = e;
      s += e;
    }
    float inv = (float)(1.0 / s);
#pragma omp simd
    for (int64_t i = 0; i < cols; i++) orow[i] *= inv;
  }
  return info.Env().Undefined();
}

namespace tn {
void initReduce(Napi::Env env, Napi::Object exports) {
  TN_EXPORT(exports, reduce);
  TN_EXPORT(exports, softmax);
}
}  // namespace tn
