// Bilinear and nearest-neighbour resize (NHWC) with the stock tfjs index arithmetic, and their gradients
// computed as the exact adjoint of the forward pass (also for halfPixelCenters, which the stock gradient
// kernels ignore).
#include <cmath>
#include <cstring>

#include "common.h"

namespace {

struct Axis {
  double scale;
  bool align, half;
  int64_t in, out;
};
Axis axis(int64_t in, int64_t out, bool align, bool half) {
  double ei = (align && out > 1) ? in - 1 : in, eo = (align && out > 1) ? out - 1 : out;
  return {ei / eo, align, half, in, out};
}

// Bilinear source taps for output coordinate i: lower/upper index and the upper weight.
inline void bilinearTap(const Axis& a, int64_t i, int64_t& lo, int64_t& hi, double& frac) {
  double src = a.half ? a.scale * (i + 0.5) - 0.5 : a.scale * i;
  lo = (int64_t)std::max(0.0, std::floor(src));
  frac = src - (double)lo;
  hi = std::min<int64_t>(a.in - 1, (int64_t)std::ceil(src));
}

inline int64_t nearestTap(const Axis& a, int64_t i) {
  double src = a.half ? a.scale * (i + 0.5) : a.scale * i;
  // JS Math.round rounds .5 up; std::round rounds away from zero, same for the non-negative values here.
  int64_t n = std::min<int64_t>(a.in - 1, a.align ? (int64_t)std::floor(src + 0.5) : (int64_t)std::floor(src));
  if (a.half) n = std::max<int64_t>(0, n);
  return n;
}

struct Args {
  int64_t B, H, W, C, OH, OW;
  bool align, half;
};

Args args(const Napi::CallbackInfo& info, int si, int oi, int ai) {
  auto s = tn::ints(info[si], "shape");
  auto os = tn::ints(info[oi], "size");
  tn::check(s.size() == 4 && os.size() == 2, "resize: shapes");
  return {s[0], s[1], s[2], s[3], os[0], os[1], info[ai].As<Napi::Boolean>().Value(),
          info[ai + 1].As<Napi::Boolean>().Value()};
}

}  // namespace

// resizeBilinear(x, xShape, [newH, newW], alignCorners, halfPixelCenters, out)
TN_FN(resizeBilinear) {
  Args g = args(info, 1, 2, 3);
  tn::F32 x = tn::f32(info[0], "x"), o = tn::f32(info[5], "out");
  tn::check((int64_t)x.n == g.B * g.H * g.W * g.C && (int64_t)o.n == g.B * g.OH * g.OW * g.C, "resizeBilinear: sizes");
  Axis ay = axis(g.H, g.OH, g.align, g.half), ax = axis(g.W, g.OW, g.align, g.half);
  int nt = tn::threadsFor(o.n);
#pragma omp parallel for collapse(2) num_threads(nt) schedule(static)
  for (int64_t b = 0; b < g.B; b++)
    for (int64_t r = 0; r < g.OH; r++) {
      int64_t t, btm;
      double fr;
      bilinearTap(ay, r, t, btm, fr);
      const float* top = x.p + ((b * g.H + t) * g.W) * g.C;
      const float* bot = x.p + ((b * g.H + btm) * g.W) * g.C;
      float* orow = o.p + ((b * g.OH + r) * g.OW) * g.C;
      for (int64_t c = 0; c < g.OW; c++) {
        int64_t l, rt;
        double fc;
        bilinearTap(ax, c, l, rt, fc);
        const float *tl = top + l * g.C, *tr = top + rt * g.C, *bl = bot + l * g.C, *br = bot + rt * g.C;
        float* od = orow + c * g.C;
        const float fcf = (float)fc, frf = (float)fr;
        for (int64_t d = 0; d < g.C; d++) {
          float tp = tl[d] + (tr[d] - tl[d]) * fcf;
          float bt = bl[d] + (br[d] - bl[d]) * fcf;
          od[d] = tp + (bt - tp) * frf;
        }
      }
    }
  return info.Env().Undefined();
}

// resizeBilinearGrad(dy, xShape, [dyH, dyW], alignCorners, halfPixelCenters, dx)
TN_FN(resizeBilinearGrad) {
  Args g = args(info, 1, 2, 3);
  tn::F32 dy = tn::f32(info[0], "dy"), dx = tn::f32(info[5], "dx");
  tn::check((int64_t)dx.n == g.B * g.H * g.W * g.C && (int64_t)dy.n == g.B * g.OH * g.OW * g.C,
            "resizeBilinearGrad: sizes");
  Axis ay = axis(g.H, g.OH, g.align, g.half), ax = axis(g.W, g.OW, g.align, g.half);
  std::memset(dx.p, 0, sizeof(float) * dx.n);
  // Scatter; threads own disjoint (batch, channel block) pairs so no two write the same element.
  const int64_t CB = 16;
  int64_t cblocks = (g.C + CB - 1) / CB;
  int nt = tn::threadsFor(dy.n);
#pragma omp parallel for collapse(2) num_threads(nt) schedule(static)
  for (int64_t b = 0; b < g.B; b++)
    for (int64_t cb = 0; cb < cblocks; cb++) {
      int64_t d0 = cb * CB, d1 = std::min(g.C, d0 + CB);
      for (int64_t r = 0; r < g.OH; r++) {
        int64_t t, btm;
        double fr;
        bilinearTap(ay, r, t, btm, fr);
        float* top = dx.p + ((b * g.H + t) * g.W) * g.C;
        float* bot = dx.p + ((b * g.H + btm) * g.W) * g.C;
        const float* drow = dy.p + ((b * g.OH + r) * g.OW) * g.C;
        for (int64_t c = 0; c < g.OW; c++) {
          int64_t l, rt;
          double fc;
          bilinearTap(ax, c, l, rt, fc);
          const float wtl = (float)((1 - fr) * (1 - fc)), wtr = (float)((1 - fr) * fc), wbl = (float)(fr * (1 - fc)),
                      wbr = (float)(fr * fc);
          const float* dd = drow + c * g.C;
          for (int64_t d = d0; d < d1; d++) {
            float v = dd[d];
            top[l * g.C + d] += v * wtl;
            top[rt * g.C + d] += v * wtr;
            bot[l * g.C + d] += v * wbl;
            bot[rt * g.C + d] += v * wbr;
          }
        }
      }
    }
  return info.Env().Undefined();
}

// resizeNearest(x, xShape, [newH, newW], alignCorners, halfPixelCenters, out)
TN_FN(resizeNearest) {
  Args g = args(info, 1, 2, 3);
  tn::F32 x = tn::f32(info[0], "x"), o = tn::f32(info[5], "out");
  tn::check((int64_t)x.n == g.B * g.H * g.W * g.C && (int64_t)o.n == g.B * g.OH * g.OW * g.C, "resizeNearest: sizes");
  Axis ay = axis(g.H, g.OH, g.align, g.half), ax = axis(g.W, g.OW, g.align, g.half);
  int nt = tn::threadsFor(o.n);
#pragma omp parallel for collapse(2) num_threads(nt) schedule(static)
  for (int64_t b = 0; b < g.B; b++)
    for (int64_t r = 0; r < g.OH; r++) {
      const float* src = x.p + ((b * g.H + nearestTap(ay, r)) * g.W) * g.C;
      float* orow = o.p + ((b * g.OH + r) * g.OW) * g.C;
      for (int64_t c = 0; c < g.OW; c++) std::memcpy(orow + c * g.C, src + nearestTap(ax, c) * g.C, sizeof(float) * g.C);
    }
  return info.Env().Undefined();
}

// resizeNearestGrad(dy, xShape, [dyH, dyW], alignCorners, halfPixelCenters, dx)
TN_FN(resizeNearestGrad) {
  Args g = args(info, 1, 2, 3);
  tn::F32 dy = tn::f32(info[0], "dy"), dx = tn::f32(info[5], "dx");
  tn::check((int64_t)dx.n == g.B * g.H * g.W * g.C && (int64_t)dy.n == g.B * g.OH * g.OW * g.C,
            "resizeNearestGrad: sizes");
  Axis ay = axis(g.H, g.OH, g.align, g.half), ax = axis(g.W, g.OW, g.align, g.half);
  std::memset(dx.p, 0, sizeof(float) * dx.n);
  int nt = tn::threadsFor(dy.n);
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t b = 0; b < g.B; b++)
    for (int64_t r = 0; r < g.OH; r++) {
      float* dst = dx.p + ((b * g.H + nearestTap(ay, r)) * g.W) * g.C;
      const float* drow = dy.p + ((b * g.OH + r) * g.OW) * g.C;
      for (int64_t c = 0; c < g.OW; c++) {
        float* dd = dst + nearestTap(ax, c) * g.C;
        const float* s = drow + c * g.C;
        for (int64_t d = 0; d < g.C; d++) dd[d] += s[d];
      }
    }
  return info.Env().Undefined();
}

namespace tn {
void initResize(Napi::Env env, Napi::Object exports) {
  TN_EXPORT(exports, resizeBilinear);
  TN_EXPORT(exports, resizeBilinearGrad);
  TN_EXPORT(exports, resizeNearest);
  TN_EXPORT(exports, resizeNearestGrad);
}
}  // namespace tn
