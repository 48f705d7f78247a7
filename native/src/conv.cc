// 2-D convolutions (NHWC activations, HWIO filters as tfjs stores them) on oneDNN: forward (with fused
// bias + activation), backprop-input and backprop-filter. Primitives are created once per shape and reused;
// oneDNN picks its own weight layout and we reorder from HWIO into a cached buffer.
#include <memory>
#include <unordered_map>

#include "common.h"

using namespace dnnl;
using tag = memory::format_tag;
using dt = memory::data_type;

namespace {

struct Geometry {
  int64_t N, H, W, C, KH, KW, O, OH, OW, sh, sw, dh, dw, pt, pl, pb, pr;
  memory::dims src() const { return {N, C, H, W}; }
  memory::dims wei() const { return {O, C, KH, KW}; }
  memory::dims dst() const { return {N, O, OH, OW}; }
  memory::dims strides() const { return {sh, sw}; }
  memory::dims dil() const { return {dh - 1, dw - 1}; }  // oneDNN counts dilation from 0
  memory::dims padL() const { return {pt, pl}; }
  memory::dims padR() const { return {pb, pr}; }
  double flops() const { return 2.0 * N * OH * OW * O * KH * KW * C; }
  int threads() const { return tn::threadsForFlops(flops()); }
  std::string key() const {
    std::string k = std::to_string(threads()) + "t:";
    for (int64_t v : {N, H, W, C, KH, KW, O, OH, OW, sh, sw, dh, dw, pt, pl, pb, pr}) k += std::to_string(v) + ",";
    return k;
  }
};

// xShape [N,H,W,C], wShape [KH,KW,C,O], yShape [N,OH,OW,O], strides, dilations, pads [t,l,b,r]
Geometry geometry(const Napi::CallbackInfo& info, int xi, int wi, int yi, int si) {
  auto xs = tn::ints(info[xi], "xShape"), ws = tn::ints(info[wi], "wShape"), ys = tn::ints(info[yi], "yShape");
  auto st = tn::ints(info[si], "strides"), di = tn::ints(info[si + 1], "dilations"), pa = tn::ints(info[si + 2], "pads");
  tn::check(xs.size() == 4 && ws.size() == 4 && ys.size() == 4 && st.size() == 2 && di.size() == 2 && pa.size() == 4,
            "conv: bad ranks");
  Geometry g{xs[0], xs[1], xs[2], xs[3], ws[0], ws[1], ws[3], ys[1], ys[2], st[0], st[1], di[0], di[1],
             pa[0], pa[1], pa[2], pa[3]};
  tn::check(ws[2] == g.C && ys[0] == g.N && ys[3] == g.O, "conv: shapes disagree");
  // The output size oneDNN derives must be the one tfjs expects; JS checks this too and falls back.
  tn::check((g.H + g.pt + g.pb - ((g.KH - 1) * g.dh + 1)) / g.sh + 1 == g.OH &&
                (g.W + g.pl + g.pr - ((g.KW - 1) * g.dw + 1)) / g.sw + 1 == g.OW,
            "conv: padding inconsistent with output size");
  return g;
}

convolution_forward::primitive_desc fwdPd(const Geometry& g, bool bias, const primitive_attr& attr) {
  memory::desc src(g.src(), dt::f32, tag::nhwc), dst(g.dst(), dt::f32, tag::nhwc);
  memory::desc wei(g.wei(), dt::f32, tag::any);
  if (bias) {
    memory::desc b({g.O}, dt::f32, tag::x);
    convolution_forward::desc d(prop_kind::forward_training, algorithm::convolution_direct, src, wei, b, dst,
                                g.strides(), g.dil(), g.padL(), g.padR());
    return convolution_forward::primitive_desc(d, attr, tn::eng());
  }
  convolution_forward::desc d(prop_kind::forward_training, algorithm::convolution_direct, src, wei, dst, g.strides(),
                              g.dil(), g.padL(), g.padR());
  return convolution_forward::primitive_desc(d, attr, tn::eng());
}

memory::desc hwio(const Geometry& g) { return memory::desc(g.wei(), dt::f32, tag::hwio); }

struct Fwd {
  convolution_forward::primitive_desc pd;
  convolution_forward prim;
  bool reorderW;
  reorder wReorder;
  memory wMem;
};
struct BwdData {
  convolution_backward_data::primitive_desc pd;
  convolution_backward_data prim;
  bool reorderW;
  reorder wReorder;
  memory wMem;
};
struct BwdWeights {
  convolution_backward_weights::primitive_desc pd;
  convolution_backward_weights prim;
  bool reorderW;
  reorder wReorder;
  memory wMem;
};

std::unordered_map<std::string, std::unique_ptr<Fwd>> fwdCache;
std::unordered_map<std::string, std::unique_ptr<BwdData>> bwdDataCache;
std::unordered_map<std::string, std::unique_ptr<BwdWeights>> bwdWeightsCache;

}  // namespace

// conv2d(x, xShape, w, wShape, y, yShape, strides, dilations, pads, bias|null, act, alpha)
TN_FN(conv2d) {
  Geometry g = geometry(info, 1, 3, 5, 6);
  tn::ThreadScope threads(g.threads());
  tn::F32 x = tn::f32(info[0], "x"), w = tn::f32(info[2], "w"), y = tn::f32(info[4], "y");
  tn::F32 b = tn::f32OrNull(info[9], "bias");
  int act = info[10].As<Napi::Number>().Int32Value();
  float alpha = info[11].As<Napi::Number>().FloatValue();
  tn::check((int64_t)x.n == g.N * g.H * g.W * g.C && (int64_t)w.n == g.KH * g.KW * g.C * g.O &&
                (int64_t)y.n == g.N * g.OH * g.OW * g.O && (!b.p || (int64_t)b.n == g.O),
            "conv2d: buffer sizes");
  std::string key = g.key() + (b.p ? "b" : "") + std::to_string(act) + ":" + std::to_string(alpha);
  auto it = fwdCache.find(key);
  if (it == fwdCache.end()) {
    auto e = std::make_unique<Fwd>();
    e->pd = fwdPd(g, b.p != nullptr, tn::activationAttr(act, alpha));
    e->prim = convolution_forward(e->pd);
    e->reorderW = e->pd.weights_desc() != hwio(g);
    if (e->reorderW) {
      e->wMem = memory(e->pd.weights_desc(), tn::eng());
      e->wReorder = reorder(reorder::primitive_desc(tn::eng(), hwio(g), tn::eng(), e->pd.weights_desc()));
    }
    it = fwdCache.emplace(key, std::move(e)).first;
  }
  Fwd& e = *it->second;
  memory src(e.pd.src_desc(), tn::eng(), x.p), dst(e.pd.dst_desc(), tn::eng(), y.p);
  memory wUser(hwio(g), tn::eng(), w.p);
  if (e.reorderW) e.wReorder.execute(tn::strm(), {{DNNL_ARG_FROM, wUser}, {DNNL_ARG_TO, e.wMem}});
  std::unordered_map<int, memory> args{
      {DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, e.reorderW ? e.wMem : wUser}, {DNNL_ARG_DST, dst}};
  if (b.p) args.emplace(DNNL_ARG_BIAS, memory(e.pd.bias_desc(), tn::eng(), b.p));
  e.prim.execute(tn::strm(), args);
  tn::strm().wait();
  return info.Env().Undefined();
}

// conv2dBackpropInput(dy, dyShape, w, wShape, dx, dxShape, strides, dilations, pads)
TN_FN(conv2dBackpropInput) {
  Geometry g = geometry(info, 5, 3, 1, 6);
  tn::ThreadScope threads(g.threads());
  tn::F32 dy = tn::f32(info[0], "dy"), w = tn::f32(info[2], "w"), dx = tn::f32(info[4], "dx");
  tn::check((int64_t)dx.n == g.N * g.H * g.W * g.C && (int64_t)w.n == g.KH * g.KW * g.C * g.O &&
                (int64_t)dy.n == g.N * g.OH * g.OW * g.O,
            "conv2dBackpropInput: buffer sizes");
  std::string key = g.key();
  auto it = bwdDataCache.find(key);
  if (it == bwdDataCache.end()) {
    auto e = std::make_unique<BwdData>();
    auto hint = fwdPd(g, false, primitive_attr());
    memory::desc dsrc(g.src(), dt::f32, tag::nhwc), ddst(g.dst(), dt::f32, tag::nhwc);
    memory::desc wei(g.wei(), dt::f32, tag::any);
    convolution_backward_data::desc d(algorithm::convolution_direct, dsrc, wei, ddst, g.strides(), g.dil(), g.padL(),
                                      g.padR());
    e->pd = convolution_backward_data::primitive_desc(d, tn::eng(), hint);
    e->prim = convolution_backward_data(e->pd);
    e->reorderW = e->pd.weights_desc() != hwio(g);
    if (e->reorderW) {
      e->wMem = memory(e->pd.weights_desc(), tn::eng());
      e->wReorder = reorder(reorder::primitive_desc(tn::eng(), hwio(g), tn::eng(), e->pd.weights_desc()));
    }
    it = bwdDataCache.emplace(key, std::move(e)).first;
  }
  BwdData& e = *it->second;
  memory ddstM(e.pd.diff_dst_desc(), tn::eng(), dy.p), dsrcM(e.pd.diff_src_desc(), tn::eng(), dx.p);
  memory wUser(hwio(g), tn::eng(), w.p);
  if (e.reorderW) e.wReorder.execute(tn::strm(), {{DNNL_ARG_FROM, wUser}, {DNNL_ARG_TO, e.wMem}});
  e.prim.execute(tn::strm(), {{DNNL_ARG_DIFF_DST, ddstM},
                              {DNNL_ARG_WEIGHTS, e.reorderW ? e.wMem : wUser},
                              {DNNL_ARG_DIFF_SRC, dsrcM}});
  tn::strm().wait();
  return info.Env().Undefined();
}

// conv2dBackpropFilter(x, xShape, dy, dyShape, dw, wShape, strides, dilations, pads)
TN_FN(conv2dBackpropFilter) {
  Geometry g = geometry(info, 1, 5, 3, 6);
  tn::ThreadScope threads(g.threads());
  tn::F32 x = tn::f32(info[0], "x"), dy = tn::f32(info[2], "dy"), dw = tn::f32(info[4], "dw");
  tn::check((int64_t)x.n == g.N * g.H * g.W * g.C && (int64_t)dw.n == g.KH * g.KW * g.C * g.O &&
                (int64_t)dy.n == g.N * g.OH * g.OW * g.O,
            "conv2dBackpropFilter: buffer sizes");
  std::string key = g.key();
  auto it = bwdWeightsCache.find(key);
  if (it == bwdWeightsCache.end()) {
    auto e = std::make_unique<BwdWeights>();
    auto hint = fwdPd(g, false, primitive_attr());
    memory::desc src(g.src(), dt::f32, tag::nhwc), ddst(g.dst(), dt::f32, tag::nhwc);
    memory::desc dwei(g.wei(), dt::f32, tag::any);
    convolution_backward_weights::desc d(algorithm::convolution_direct, src, dwei, ddst, g.strides(), g.dil(),
                                         g.padL(), g.padR());
    e->pd = convolution_backward_weights::primitive_desc(d, tn::eng(), hint);
    e->prim = convolution_backward_weights(e->pd);
    e->reorderW = e->pd.diff_weights_desc() != hwio(g);
    if (e->reorderW) {
      e->wMem = memory(e->pd.diff_weights_desc(), tn::eng());
      e->wReorder = reorder(reorder::primitive_desc(tn::eng(), e->pd.diff_weights_desc(), tn::eng(), hwio(g)));
    }
    it = bwdWeightsCache.emplace(key, std::move(e)).first;
  }
  BwdWeights& e = *it->second;
  memory srcM(e.pd.src_desc(), tn::eng(), x.p), ddstM(e.pd.diff_dst_desc(), tn::eng(), dy.p);
  memory wUser(hwio(g), tn::eng(), dw.p);
  e.prim.execute(tn::strm(), {{DNNL_ARG_SRC, srcM},
                              {DNNL_ARG_DIFF_DST, ddstM},
                              {DNNL_ARG_DIFF_WEIGHTS, e.reorderW ? e.wMem : wUser}});
  if (e.reorderW) e.wReorder.execute(tn::strm(), {{DNNL_ARG_FROM, e.wMem}, {DNNL_ARG_TO, wUser}});
  tn::strm().wait();
  return info.Env().Undefined();
}

// Which oneDNN implementation serves a forward conv of this geometry (for logs and the benchmark).
TN_FN(convImpl) {
  Geometry g = geometry(info, 0, 1, 2, 3);
  auto pd = fwdPd(g, false, primitive_attr());
  return Napi::String::New(info.Env(), pd.impl_info_str());
}

namespace tn {
void initConv(Napi::Env env, Napi::Object exports) {
  TN_EXPORT(exports, conv2d);
  TN_EXPORT(exports, conv2dBackpropInput);
  TN_EXPORT(exports, conv2dBackpropFilter);
  TN_EXPORT(exports, convImpl);
}
}  // namespace tn
