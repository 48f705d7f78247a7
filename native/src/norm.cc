// Fused normalisation and activation kernels with their gradients: GroupNorm (LayerNorm is GroupNorm with one
// group over [rows, 1, 1, features]) optionally followed by an activation, and standalone activations.
// Why: written with tfjs ops a GroupNorm + SiLU is ~12 kernels forward and ~30 backward, each a full pass over
// the tensor plus framework overhead; these are one pass forward and two backward.
// Statistics are accumulated in double; the backward pass recomputes them from x instead of saving them.
#include "common.h"

namespace {

enum Act { A_NONE = 0, A_SILU = 1, A_GELU_TANH = 2, A_QUICK_GELU = 3 };

inline float sigmoidf(float z) { return 1.f / (1.f + tn::fastExp(-z)); }

inline float actF(int act, float z) {
  switch (act) {
    case A_SILU: return z * sigmoidf(z);
    case A_GELU_TANH: {
      const float c = 0.7978845608028654f;
      return 0.5f * z * (1.f + tn::fastTanh(c * (z + 0.044715f * z * z * z)));
    }
    case A_QUICK_GELU: return z * sigmoidf(1.702f * z);
    default: return z;
  }
}

// d act(z) / dz
inline float actD(int act, float z) {
  switch (act) {
    case A_SILU: {
      const float s = sigmoidf(z);
      return s * (1.f + z * (1.f - s));
    }
    case A_GELU_TANH: {
      const float c = 0.7978845608028654f;
      const float t = tn::fastTanh(c * (z + 0.044715f * z * z * z));
      return 0.5f * (1.f + t) + 0.5f * z * (1.f - t * t) * c * (1.f + 3.f * 0.044715f * z * z);
    }
    case A_QUICK_GELU: {
      const float s = sigmoidf(1.702f * z);
      return s + 1.702f * z * s * (1.f - s);
    }
    default: return 1.f;
  }
}

struct Geom {
  int64_t N, HW, C, G, Cg;
};

// The leading arguments both kernels share: (x, N, HW, C, G, gamma, beta, eps, act).
struct NormArgs {
  tn::F32 x, gamma, beta;
  Geom s;
  float eps;
  int act;
};

NormArgs normArgs(const Napi::CallbackInfo& info, const char* who) {
  NormArgs a;
  a.x = tn::f32(info[0], "x");
  a.s = {info[1].As<Napi::Number>().Int64Value(), info[2].As<Napi::Number>().Int64Value(),
         info[3].As<Napi::Number>().Int64Value(), info[4].As<Napi::Number>().Int64Value(), 0};
  const Geom& g = a.s;
  tn::check(g.N > 0 && g.HW > 0 && g.C > 0 && g.G > 0 && g.C % g.G == 0, std::string(who) + ": bad geometry");
  tn::check((int64_t)a.x.n == g.N * g.HW * g.C, std::string(who) + ": x size");
  a.s.Cg = g.C / g.G;
  a.gamma = tn::f32(info[5], "gamma");
  a.beta = tn::f32(info[6], "beta");
  tn::check((int64_t)a.gamma.n == g.C && (int64_t)a.beta.n == g.C, std::string(who) + ": gamma / beta size");
  a.eps = info[7].As<Napi::Number>().FloatValue();
  a.act = info[8].As<Napi::Number>().Int32Value();
  return a;
}

// Per-thread scratch for one sample's statistics. compute() fills, per channel c of group g:
//   mc = mean_g, rc = 1/sqrt(var_g + eps), and k, o with gamma * xhat + beta = x * k + o (one FMA per element).
// Both passes run contiguously over the sample's HW x C values, accumulating per channel and then per group
// (groups of a few channels would otherwise read memory C / Cg times).
struct SampleStats {
  explicit SampleStats(const Geom& s) : s(s), acc(s.C), mc(s.C), rc(s.C), k(s.C), o(s.C) {}
  void compute(const float* x, float eps, const float* gamma, const float* beta) {
    const int64_t M = s.HW * s.Cg;
    std::fill(acc.begin(), acc.end(), 0.0);
    for (int64_t hw = 0; hw < s.HW; hw++) {
      const float* p = x + hw * s.C;
      for (int64_t c = 0; c < s.C; c++) acc[c] += p[c];
    }
    groupTotals([&](int64_t c, double t) { mc[c] = (float)(t / M); });
    std::fill(acc.begin(), acc.end(), 0.0);
    for (int64_t hw = 0; hw < s.HW; hw++) {
      const float* p = x + hw * s.C;
#pragma omp simd
      for (int64_t c = 0; c < s.C; c++) {
        const double d = p[c] - mc[c];
        acc[c] += d * d;
      }
    }
    groupTotals([&](int64_t c, double t) { rc[c] = (float)(1.0 / std::sqrt(t / M + eps)); });
    for (int64_t c = 0; c < s.C; c++) {
      k[c] = gamma[c] * rc[c];
      o[c] = beta[c] - mc[c] * k[c];
    }
  }
  const Geom& s;
  std::vector<double> acc;
  std::vector<float> mc, rc, k, o;

 private:
  // f(c, total of acc over c's group) for every channel c.
  template <class F>
  void groupTotals(F f) {
    for (int64_t g = 0; g < s.G; g++) {
      double t = 0;
      for (int64_t j = 0; j < s.Cg; j++) t += acc[g * s.Cg + j];
      for (int64_t j = 0; j < s.Cg; j++) f(g * s.Cg + j, t);
    }
  }
};

// groupNorm(x, N, HW, C, G, gamma, beta, eps, act, y)
TN_FN(groupNorm) {
  const NormArgs a = normArgs(info, "groupNorm");
  const Geom& s = a.s;
  const int act = a.act;
  tn::F32 y = tn::f32(info[9], "y");
  tn::check(y.n == a.x.n, "groupNorm: y size");
  const int nt = tn::threadsFor(a.x.n);
#pragma omp parallel num_threads(nt)
  {
    SampleStats st(s);
    const std::vector<float>&k = st.k, &o = st.o;
#pragma omp for schedule(static)
    for (int64_t n = 0; n < s.N; n++) {
      const float* xn = a.x.p + n * s.HW * s.C;
      float* yn = y.p + n * s.HW * s.C;
      st.compute(xn, a.eps, a.gamma.p, a.beta.p);
      for (int64_t hw = 0; hw < s.HW; hw++) {
        const float* p = xn + hw * s.C;
        float* q = yn + hw * s.C;
        if (act == A_NONE) {
#pragma omp simd
          for (int64_t c = 0; c < s.C; c++) q[c] = p[c] * k[c] + o[c];
        } else {
#pragma omp simd
          for (int64_t c = 0; c < s.C; c++) q[c] = actF(act, p[c] * k[c] + o[c]);
        }
      }
    }
  }
  return info.Env().Undefined();
}

// groupNormGrad(x, N, HW, C, G, gamma, beta, eps, act, dy, dx, dgamma, dbeta)
//   z = gamma * xhat + beta, y = act(z); dz = dy * act'(z); dbeta = sum dz; dgamma = sum dz * xhat;
//   dx = rstd * (gamma dz - mean_g(gamma dz) - xhat * mean_g(gamma dz xhat)).
TN_FN(groupNormGrad) {
  const NormArgs args = normArgs(info, "groupNormGrad");
  const Geom& s = args.s;
  const tn::F32 x = args.x, gamma = args.gamma;
  const int act = args.act;
  tn::F32 dy = tn::f32(info[9], "dy"), dx = tn::f32(info[10], "dx");
  tn::F32 dgamma = tn::f32(info[11], "dgamma"), dbeta = tn::f32(info[12], "dbeta");
  tn::check(dy.n == x.n && dx.n == x.n && (int64_t)dgamma.n == s.C && (int64_t)dbeta.n == s.C, "groupNormGrad: sizes");
  const int64_t M = s.HW * s.Cg;
  // Per-sample parameter-gradient sums (row n belongs to one thread: no races), reduced over n at the end.
  std::vector<double> sdz(s.N * s.C, 0.0), sdzx(s.N * s.C, 0.0);
  const int nt = tn::threadsFor(x.n);
#pragma omp parallel num_threads(nt)
  {
    SampleStats st(s);
    const std::vector<float>&k = st.k, &o = st.o, &mc = st.mc, &rc = st.rc;
    std::vector<float> ca(s.C), cb(s.C);
#pragma omp for schedule(static)
    for (int64_t n = 0; n < s.N; n++) {
      const int64_t base = n * s.HW * s.C;
      st.compute(x.p + base, args.eps, gamma.p, args.beta.p);
      double* a = sdz.data() + n * s.C;
      double* b = sdzx.data() + n * s.C;
      for (int64_t hw = 0; hw < s.HW; hw++) {
        const float* p = x.p + base + hw * s.C;
        const float* d = dy.p + base + hw * s.C;
#pragma omp simd
        for (int64_t c = 0; c < s.C; c++) {
          const float xh = (p[c] - mc[c]) * rc[c];
          const float dz = act == A_NONE ? d[c] : d[c] * actD(act, p[c] * k[c] + o[c]);
          a[c] += dz;
          b[c] += (double)dz * xh;
        }
      }
      // Per group: mean of gamma dz and of gamma dz xhat; folded into per-channel coefficients of dx = rstd *
      // (gamma dz - ma - xhat mb) = dz * k + (x * cb + ca).
      for (int64_t g = 0; g < s.G; g++) {
        double ta = 0, tb = 0;
        for (int64_t j = 0; j < s.Cg; j++) {
          const int64_t c = g * s.Cg + j;
          ta += gamma.p[c] * a[c];
          tb += gamma.p[c] * b[c];
        }
        const float ma = (float)(ta / M), mb = (float)(tb / M);
        for (int64_t j = 0; j < s.Cg; j++) {
          const int64_t c = g * s.Cg + j;
          // rstd * (-ma - (x - mean) rstd mb)
          cb[c] = -rc[c] * rc[c] * mb;
          ca[c] = -rc[c] * ma - cb[c] * mc[c];
        }
      }
      for (int64_t hw = 0; hw < s.HW; hw++) {
        const float* p = x.p + base + hw * s.C;
        const float* d = dy.p + base + hw * s.C;
        float* q = dx.p + base + hw * s.C;
        if (act == A_NONE) {
#pragma omp simd
          for (int64_t c = 0; c < s.C; c++) q[c] = d[c] * k[c] + p[c] * cb[c] + ca[c];
        } else {
#pragma omp simd
          for (int64_t c = 0; c < s.C; c++) q[c] = d[c] * actD(act, p[c] * k[c] + o[c]) * k[c] + p[c] * cb[c] + ca[c];
        }
      }
    }
  }
  for (int64_t c = 0; c < s.C; c++) {
    double sg = 0, sb = 0;
    for (int64_t n = 0; n < s.N; n++) sg += sdzx[n * s.C + c], sb += sdz[n * s.C + c];
    dgamma.p[c] = (float)sg;
    dbeta.p[c] = (float)sb;
  }
  return info.Env().Undefined();
}

// activation(act, x, y)
TN_FN(activation) {
  const int act = info[0].As<Napi::Number>().Int32Value();
  tn::F32 x = tn::f32(info[1], "x"), y = tn::f32(info[2], "y");
  tn::check(x.n == y.n, "activation: sizes");
  const int64_t n = (int64_t)x.n;
  const int nt = tn::threadsFor(x.n);
#pragma omp parallel for simd num_threads(nt) schedule(static)
  for (int64_t i = 0; i < n; i++) y.p[i] = actF(act, x.p[i]);
  return info.Env().Undefined();
}

// activationGrad(act, x, dy, dx)
TN_FN(activationGrad) {
  const int act = info[0].As<Napi::Number>().Int32Value();
  tn::F32 x = tn::f32(info[1], "x"), dy = tn::f32(info[2], "dy"), dx = tn::f32(info[3], "dx");
  tn::check(x.n == dy.n && x.n == dx.n, "activationGrad: sizes");
  const int64_t n = (int64_t)x.n;
  const int nt = tn::threadsFor(x.n);
#pragma omp parallel for simd num_threads(nt) schedule(static)
  for (int64_t i = 0; i < n; i++) dx.p[i] = dy.p[i] * actD(act, x.p[i]);
  return info.Env().Undefined();
}

}  // namespace

namespace tn {
void initNorm(Napi::Env env, Napi::Object exports) {
  TN_EXPORT(exports, groupNorm);
  TN_EXPORT(exports, groupNormGrad);
  TN_EXPORT(exports, activation);
  TN_EXPORT(exports, activationGrad);
}
}  // namespace tn
