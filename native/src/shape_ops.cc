// Data movement: Transpose, Slice (and so SplitV), Concat, Pad. Dimensions are collapsed first so the
// inner loops copy the longest contiguous runs possible.
#include <cstring>

#include "common.h"

namespace {

std::vector<int64_t> contiguousStrides(const std::vector<int64_t>& s) {
  std::vector<int64_t> st(s.size());
  int64_t c = 1;
  for (size_t k = s.size(); k-- > 0;) st[k] = c, c *= s[k];
  return st;
}

// Copy `rows` runs of `L` floats, each described by an odometer over (dims, srcStrides, dstStrides).
void stridedCopy(const float* src, float* dst, const std::vector<int64_t>& dims, const std::vector<int64_t>& ss,
                 const std::vector<int64_t>& ds, int64_t L) {
  int64_t rows = 1;
  for (auto d : dims) rows *= d;
  int nt = tn::threadsFor(rows * L);
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t r = 0; r < rows; r++) {
    int64_t rem = r, so = 0, dof = 0;
    for (size_t k = dims.size(); k-- > 0;) {
      int64_t i = rem % dims[k];
      rem /= dims[k];
      so += i * ss[k];
      dof += i * ds[k];
    }
    std::memcpy(dst + dof, src + so, sizeof(float) * L);
  }
}

}  // namespace

// transpose(x, shape, perm, out)
TN_FN(transpose) {
  tn::F32 x = tn::f32(info[0], "x"), o = tn::f32(info[3], "out");
  auto shape = tn::ints(info[1], "shape"), perm = tn::ints(info[2], "perm");
  size_t R = shape.size();
  tn::check(perm.size() == R && (int64_t)x.n == tn::prod(shape) && o.n == x.n, "transpose: sizes");
  if (x.n == 0) return info.Env().Undefined();
  auto ist = contiguousStrides(shape);
  // Output dims in output order, with input strides; drop size-1 dims; merge output-adjacent dims that are
  // also adjacent (in order) in the input.
  std::vector<int64_t> d, s;
  for (size_t k = 0; k < R; k++) {
    int64_t dim = shape[perm[k]], st = ist[perm[k]];
    if (dim == 1) continue;
    if (!d.empty() && s.back() == st * dim) {
      d.back() *= dim;
      s.back() = st;
      continue;
    }
    d.push_back(dim);
    s.push_back(st);
  }
  if (d.empty() || (d.size() == 1 && s[0] == 1)) {
    std::memcpy(o.p, x.p, sizeof(float) * x.n);
    return info.Env().Undefined();
  }
  size_t r = d.size();
  auto ost = contiguousStrides(d);
  if (s[r - 1] == 1) {  // innermost run contiguous in both: copy rows
    std::vector<int64_t> dims(d.begin(), d.end() - 1), ss(s.begin(), s.end() - 1), ds(ost.begin(), ost.end() - 1);
    stridedCopy(x.p, o.p, dims, ss, ds, d[r - 1]);
    return info.Env().Undefined();
  }
  // General case: the output's inner dim j walks the input with stride s[r-1]. Find the input's innermost
  // dim (stride 1) among the output dims and tile over (that dim, output inner dim) for cache locality.
  size_t q = 0;
  for (size_t k = 0; k < r; k++)
    if (s[k] == 1) q = k;
  const int64_t T = 32;
  int64_t A = d[q], B = d[r - 1];
  int64_t outer = 1;
  for (size_t k = 0; k < r; k++)
    if (k != q && k != r - 1) outer *= d[k];
  int64_t tilesA = (A + T - 1) / T, tilesB = (B + T - 1) / T;
  int64_t tasks = outer * tilesA * tilesB;
  int nt = tn::threadsFor(x.n);
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t t = 0; t < tasks; t++) {
    int64_t tb = t % tilesB, ta = (t / tilesB) % tilesA, rem = t / (tilesB * tilesA);
    int64_t so = 0, dof = 0;
    for (size_t k = r; k-- > 0;) {
      if (k == q || k == r - 1) continue;
      int64_t i = rem % d[k];
      rem /= d[k];
      so += i * s[k];
      dof += i * ost[k];
    }
    int64_t a0 = ta * T, a1 = std::min(A, a0 + T), b0 = tb * T, b1 = std::min(B, b0 + T);
    int64_t sB = s[r - 1], oA = ost[q], sQ = s[q];
    for (int64_t a = a0; a < a1; a++)
      for (int64_t b = b0; b < b1; b++) o.p[dof + a * oA + b] = x.p[so + a * sQ + b * sB];
  }
  return info.Env().Undefined();
}

// slice(x, shape, begin, size, out)
TN_FN(slice) {
  tn::F32 x = tn::f32(info[0], "x"), o = tn::f32(info[4], "out");
  auto shape = tn::ints(info[1], "shape"), begin = tn::ints(info[2], "begin"), size = tn::ints(info[3], "size");
  size_t R = shape.size();
  tn::check(begin.size() == R && size.size() == R && (int64_t)x.n == tn::prod(shape) && (int64_t)o.n == tn::prod(size),
            "slice: sizes");
  for (size_t k = 0; k < R; k++) tn::check(begin[k] >= 0 && begin[k] + size[k] <= shape[k], "slice: out of range");
  if (o.n == 0) return info.Env().Undefined();
  auto ist = contiguousStrides(shape), ost = contiguousStrides(size);
  int64_t off = 0;
  for (size_t k = 0; k < R; k++) off += begin[k] * ist[k];
  // Collapse: merge dim k into the previous when the previous is taken whole.
  std::vector<int64_t> d, ss, ds;
  for (size_t k = 0; k < R; k++) {
    if (size[k] == 1) continue;
    if (!d.empty() && ss.back() == ist[k] * size[k] && ds.back() == ost[k] * size[k]) {
      d.back() *= size[k];
      ss.back() = ist[k];
      ds.back() = ost[k];
      continue;
    }
    d.push_back(size[k]);
    ss.push_back(ist[k]);
    ds.push_back(ost[k]);
  }
  if (d.empty()) {
    o.p[0] = x.p[off];
    return info.Env().Undefined();
  }
  int64_t L = 1;
  if (ss.back() == 1) {
    L = d.back();
    d.pop_back(), ss.pop_back(), ds.pop_back();
  }
  stridedCopy(x.p + off, o.p, d, ss, ds, L);
  return info.Env().Undefined();
}

// concat([arrays], [innerSizes], outer, out): input i is [outer, inner_i]; output is [outer, sum inner_i].
TN_FN(concat) {
  auto arr = info[0].As<Napi::Array>();
  auto inner = tn::ints(info[1], "inner");
  int64_t outer = info[2].As<Napi::Number>().Int64Value();
  tn::F32 o = tn::f32(info[3], "out");
  size_t n = arr.Length();
  tn::check(inner.size() == n, "concat: inner sizes");
  std::vector<const float*> ins(n);
  std::vector<int64_t> colOff(n);
  int64_t total = 0;
  for (size_t i = 0; i < n; i++) {
    tn::F32 x = tn::f32(arr.Get((uint32_t)i), "input");
    tn::check((int64_t)x.n == outer * inner[i], "concat: input size");
    ins[i] = x.p;
    colOff[i] = total;
    total += inner[i];
  }
  tn::check((int64_t)o.n == outer * total, "concat: output size");
  int64_t tasks = outer * (int64_t)n;
  int nt = tn::threadsFor(o.n);
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t t = 0; t < tasks; t++) {
    int64_t r = t / (int64_t)n;
    size_t i = (size_t)(t % (int64_t)n);
    std::memcpy(o.p + r * total + colOff[i], ins[i] + r * inner[i], sizeof(float) * inner[i]);
  }
  return info.Env().Undefined();
}

// pad(x, shape, before, outShape, value, out): constant padding (PadV2).
TN_FN(pad) {
  tn::F32 x = tn::f32(info[0], "x"), o = tn::f32(info[5], "out");
  auto shape = tn::ints(info[1], "shape"), before = tn::ints(info[2], "before"), os = tn::ints(info[3], "outShape");
  float value = info[4].As<Napi::Number>().FloatValue();
  size_t R = shape.size();
  tn::check(before.size() == R && os.size() == R && (int64_t)x.n == tn::prod(shape) && (int64_t)o.n == tn::prod(os),
            "pad: sizes");
  int nt = tn::threadsFor(o.n);
  int64_t n = (int64_t)o.n;
#pragma omp parallel for simd num_threads(nt) schedule(static)
  for (int64_t i = 0; i < n; i++) o.p[i] = value;
  if (x.n == 0) return info.Env().Undefined();
  auto ist = contiguousStrides(shape), ost = contiguousStrides(os);
  int64_t off = 0;
  for (size_t k = 0; k < R; k++) off += before[k] * ost[k];
  std::vector<int64_t> d(shape), ss(ist), ds(ost);
  int64_t L = 1;
  if (R > 0) {
    L = d.back();
    d.pop_back(), ss.pop_back(), ds.pop_back();
  }
  stridedCopy(x.p, o.p + off, d, ss, ds, L);
  return info.Env().Undefined();
}

// tile(x, shape, reps, out)
TN_FN(tile) {
  tn::F32 x = tn::f32(info[0], "x"), o = tn::f32(info[3], "out");
  auto shape = tn::ints(info[1], "shape"), reps = tn::ints(info[2], "reps");
  const size_t R = shape.size();
  tn::check(R >= 1 && R <= 16 && reps.size() == R && (int64_t)x.n == tn::prod(shape), "tile: shapes");
  std::vector<int64_t> os(R);
  for (size_t k = 0; k < R; k++) os[k] = shape[k] * reps[k];
  tn::check((int64_t)o.n == tn::prod(os), "tile: output size");
  if (o.n == 0) return info.Env().Undefined();
  auto ist = contiguousStrides(shape);
  const int64_t L = shape[R - 1], OL = os[R - 1];
  int64_t rows = 1;
  for (size_t k = 0; k + 1 < R; k++) rows *= os[k];
  int nt = tn::threadsFor(o.n);
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t r = 0; r < rows; r++) {
    int64_t rem = r, so = 0;
    for (size_t k = R - 1; k-- > 0;) {
      int64_t i = rem % os[k];
      rem /= os[k];
      so += (i % shape[k]) * ist[k];
    }
    float* dst = o.p + r * OL;
    for (int64_t j = 0; j < OL; j += L) std::memcpy(dst + j, x.p + so, sizeof(float) * L);
  }
  return info.Env().Undefined();
}

namespace tn {
void initShapeOps(Napi::Env env, Napi::Object exports) {
  TN_EXPORT(exports, transpose);
  TN_EXPORT(exports, slice);
  TN_EXPORT(exports, concat);
  TN_EXPORT(exports, pad);
  TN_EXPORT(exports, tile);
}
}  // namespace tn
