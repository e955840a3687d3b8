// 2-D convolution (NHWC images, HWIO kernels, float32) and its two gradients through
// oneDNN, as XLA FFI handlers for the CPU (parrot_jax/networks/conv.py builds and loads
// this file). Images stay NHWC in the primitives: with the encoders' 16-channel maps,
// oneDNN's blocked layouts cost more in reorders than they save (measured: forward and
// backward of the paper encoder at batch 256 took 122 ms with them, 91 ms without).
#include <cstdint>
#include <string>

#include "oneapi/dnnl/dnnl.hpp"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;
using dnnl::memory;
using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

namespace {

dnnl::engine& Engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

struct Geometry {
  memory::dims src, weights, dst, strides, pad_l, pad_r;
};

// x (N, H, W, C), w (KH, KW, I, O), y (N, OH, OW, O) as oneDNN's logical dims.
Geometry MakeGeometry(ffi::Span<const int64_t> x, ffi::Span<const int64_t> w,
                      ffi::Span<const int64_t> y, int64_t sh, int64_t sw, int64_t pt,
                      int64_t pl, int64_t pb, int64_t pr) {
  return Geometry{{x[0], x[3], x[1], x[2]}, {w[3], w[2], w[0], w[1]},
                  {y[0], y[3], y[1], y[2]}, {sh, sw}, {pt, pl}, {pb, pr}};
}

dnnl::convolution_forward::primitive_desc ForwardDesc(const Geometry& g) {
  return dnnl::convolution_forward::primitive_desc(
      Engine(), dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct,
      memory::desc(g.src, dt::f32, tag::nhwc), memory::desc(g.weights, dt::f32, tag::any),
      memory::desc(g.dst, dt::f32, tag::nhwc), g.strides, g.pad_l, g.pad_r);
}

// The backward-data and backward-weights descriptors take the same arguments.
template <typename Desc>
Desc BackwardDesc(const Geometry& g) {
  return Desc(Engine(), dnnl::algorithm::convolution_direct,
              memory::desc(g.src, dt::f32, tag::nhwc), memory::desc(g.weights, dt::f32, tag::any),
              memory::desc(g.dst, dt::f32, tag::nhwc), g.strides, g.pad_l, g.pad_r,
              ForwardDesc(g));
}

// A user buffer in the primitive's layout: the buffer itself where the layouts agree
// (images), otherwise a scratch copy (kernels: reordered in when `in`, out by Out()).
struct Arg {
  memory user, prim;
  Arg(const memory::desc& want, const memory::desc& have, void* data, dnnl::stream& s,
      bool in)
      : user(have, Engine(), data) {
    if (want == have) {
      prim = user;
    } else {
      prim = memory(want, Engine());
      if (in) dnnl::reorder(user, prim).execute(s, user, prim);
    }
  }
  void Out(dnnl::stream& s) {
    if (prim != user) dnnl::reorder(prim, user).execute(s, prim, user);
  }
};

memory::desc Plain(const memory::dims& d, tag t) { return memory::desc(d, dt::f32, t); }

template <typename F>
ffi::Error Guard(F&& f) {
  try {
    f();
  } catch (const dnnl::error& e) {
    return ffi::Error(ffi::ErrorCode::kInternal, std::string("oneDNN: ") + e.what());
  }
  return ffi::Error::Success();
}

ffi::Error ConvForward(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> w,
                       ffi::ResultBuffer<ffi::F32> y, int64_t sh, int64_t sw, int64_t pt,
                       int64_t pl, int64_t pb, int64_t pr) {
  return Guard([&] {
    Geometry g = MakeGeometry(x.dimensions(), w.dimensions(), y->dimensions(), sh, sw, pt,
                              pl, pb, pr);
    auto pd = ForwardDesc(g);
    dnnl::stream s(Engine());
    Arg src(pd.src_desc(), Plain(g.src, tag::nhwc), x.typed_data(), s, true);
    Arg wei(pd.weights_desc(), Plain(g.weights, tag::hwio), w.typed_data(), s, true);
    Arg dst(pd.dst_desc(), Plain(g.dst, tag::nhwc), y->typed_data(), s, false);
    dnnl::convolution_forward(pd).execute(
        s, {{DNNL_ARG_SRC, src.prim}, {DNNL_ARG_WEIGHTS, wei.prim}, {DNNL_ARG_DST, dst.prim}});
    dst.Out(s);
    s.wait();
  });
}

// dx = conv_transpose(dy, w): x's gradient.
ffi::Error ConvBackwardData(ffi::Buffer<ffi::F32> dy, ffi::Buffer<ffi::F32> w,
                            ffi::ResultBuffer<ffi::F32> dx, int64_t sh, int64_t sw,
                            int64_t pt, int64_t pl, int64_t pb, int64_t pr) {
  return Guard([&] {
    Geometry g = MakeGeometry(dx->dimensions(), w.dimensions(), dy.dimensions(), sh, sw, pt,
                              pl, pb, pr);
    auto pd = BackwardDesc<dnnl::convolution_backward_data::primitive_desc>(g);
    dnnl::stream s(Engine());
    Arg ddst(pd.diff_dst_desc(), Plain(g.dst, tag::nhwc), dy.typed_data(), s, true);
    Arg wei(pd.weights_desc(), Plain(g.weights, tag::hwio), w.typed_data(), s, true);
    Arg dsrc(pd.diff_src_desc(), Plain(g.src, tag::nhwc), dx->typed_data(), s, false);
    dnnl::convolution_backward_data(pd).execute(
        s, {{DNNL_ARG_DIFF_DST, ddst.prim}, {DNNL_ARG_WEIGHTS, wei.prim},
            {DNNL_ARG_DIFF_SRC, dsrc.prim}});
    dsrc.Out(s);
    s.wait();
  });
}

// dw = sum over the batch of x's patches times dy: w's gradient.
ffi::Error ConvBackwardWeights(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> dy,
                               ffi::ResultBuffer<ffi::F32> dw, int64_t sh, int64_t sw,
                               int64_t pt, int64_t pl, int64_t pb, int64_t pr) {
  return Guard([&] {
    Geometry g = MakeGeometry(x.dimensions(), dw->dimensions(), dy.dimensions(), sh, sw, pt,
                              pl, pb, pr);
    auto pd = BackwardDesc<dnnl::convolution_backward_weights::primitive_desc>(g);
    dnnl::stream s(Engine());
    Arg src(pd.src_desc(), Plain(g.src, tag::nhwc), x.typed_data(), s, true);
    Arg ddst(pd.diff_dst_desc(), Plain(g.dst, tag::nhwc), dy.typed_data(), s, true);
    Arg dwei(pd.diff_weights_desc(), Plain(g.weights, tag::hwio), dw->typed_data(), s, false);
    dnnl::convolution_backward_weights(pd).execute(
        s, {{DNNL_ARG_SRC, src.prim}, {DNNL_ARG_DIFF_DST, ddst.prim},
            {DNNL_ARG_DIFF_WEIGHTS, dwei.prim}});
    dwei.Out(s);
    s.wait();
  });
}

}  // namespace

#define CONV_ATTRS                                                                  \
  .Attr<int64_t>("stride_h").Attr<int64_t>("stride_w").Attr<int64_t>("pad_top")    \
      .Attr<int64_t>("pad_left").Attr<int64_t>("pad_bottom").Attr<int64_t>("pad_right")

XLA_FFI_DEFINE_HANDLER_SYMBOL(OnednnConvForward, ConvForward,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>() CONV_ATTRS);
XLA_FFI_DEFINE_HANDLER_SYMBOL(OnednnConvBackwardData, ConvBackwardData,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>() CONV_ATTRS);
XLA_FFI_DEFINE_HANDLER_SYMBOL(OnednnConvBackwardWeights, ConvBackwardWeights,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>() CONV_ATTRS);
