// Batched matrix multiplication on oneDNN's matmul primitive: tfjs's [batch, rows, cols] operands with
// transposes expressed as strides (no copies), batch broadcasting (a batch of 1 on either side), and an
// optional fused bias [N] + activation. Primitives are cached per shape.
#include <memory>
#include <unordered_map>

#include "common.h"

using namespace dnnl;
using tag = memory::format_tag;
using dt = memory::data_type;

namespace {

struct Entry {
  dnnl::matmul::primitive_desc pd;
  dnnl::matmul prim;
};
std::unordered_map<std::string, std::unique_ptr<Entry>> cache;

}  // namespace

// batchMatmul(a, aShape3, b, bShape3, out, transposeA, transposeB, bias|null, act, alpha)
TN_FN(batchMatmul) {
  tn::F32 a = tn::f32(info[0], "a"), b = tn::f32(info[2], "b"), o = tn::f32(info[4], "out");
  auto as = tn::ints(info[1], "aShape"), bs = tn::ints(info[3], "bShape");
  bool tA = info[5].As<Napi::Boolean>().Value(), tB = info[6].As<Napi::Boolean>().Value();
  tn::F32 bias = tn::f32OrNull(info[7], "bias");
  int act = info[8].As<Napi::Number>().Int32Value();
  float alpha = info[9].As<Napi::Number>().FloatValue();
  tn::check(as.size() == 3 && bs.size() == 3, "matmul: operands must be rank 3");
  int64_t Ba = as[0], Bb = bs[0];
  int64_t M = tA ? as[2] : as[1], K = tA ? as[1] : as[2];
  int64_t K2 = tB ? bs[2] : bs[1], N = tB ? bs[1] : bs[2];
  tn::check(K == K2, "matmul: inner dims differ");
  tn::check(Ba == Bb || Ba == 1 || Bb == 1, "matmul: batch dims not broadcastable");
  int64_t B = std::max(Ba, Bb);
  tn::check((int64_t)a.n == Ba * M * K && (int64_t)b.n == Bb * K * N && (int64_t)o.n == B * M * N &&
                (!bias.p || (int64_t)bias.n == N),
            "matmul: buffer sizes");
  int nthreads = tn::threadsForFlops(2.0 * B * M * N * K);
  tn::ThreadScope threads(nthreads);
  std::string key = std::to_string(nthreads) + "t:";
  for (int64_t v : {Ba, Bb, M, K, N, (int64_t)tA, (int64_t)tB, (int64_t)(bias.p != nullptr), (int64_t)act})
    key += std::to_string(v) + ",";
  key += std::to_string(alpha);
  auto it = cache.find(key);
  if (it == cache.end()) {
    memory::desc aMd({Ba, M, K}, dt::f32, tA ? memory::dims{M * K, 1, M} : memory::dims{M * K, K, 1});
    memory::desc bMd({Bb, K, N}, dt::f32, tB ? memory::dims{K * N, 1, K} : memory::dims{K * N, N, 1});
    memory::desc oMd({B, M, N}, dt::f32, tag::abc);
    primitive_attr attr = tn::activationAttr(act, alpha);
    auto e = std::make_unique<Entry>();
    if (bias.p) {
      memory::desc biasMd({1, 1, N}, dt::f32, tag::abc);
      e->pd = matmul::primitive_desc(matmul::desc(aMd, bMd, biasMd, oMd), attr, tn::eng());
    } else {
      e->pd = matmul::primitive_desc(matmul::desc(aMd, bMd, oMd), attr, tn::eng());
    }
    e->prim = dnnl::matmul(e->pd);
    it = cache.emplace(key, std::move(e)).first;
  }
  Entry& e = *it->second;
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, memory(e.pd.src_desc(), tn::eng(), a.p)},
                                       {DNNL_ARG_WEIGHTS, memory(e.pd.weights_desc(), tn::eng(), b.p)},
                                       {DNNL_ARG_DST, memory(e.pd.dst_desc(), tn::eng(), o.p)}};
  if (bias.p) args.emplace(DNNL_ARG_BIAS, memory(e.pd.bias_desc(), tn::eng(), bias.p));
  e.prim.execute(tn::strm(), args);
  tn::strm().wait();
  return info.Env().Undefined();
}

namespace tn {
void initMatmul(Napi::Env env, Napi::Object exports) { TN_EXPORT(exports, batchMatmul); }
}  // namespace tn
