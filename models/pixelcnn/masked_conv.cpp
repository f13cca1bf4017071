#include "pixelcnn/masked_conv.h"

#include <torch/nn/functional/conv.h>
#include <torch/nn/functional/padding.h>

#include <stdexcept>
#include <string>

namespace gantry::pixelcnn {

namespace F = torch::nn::functional;

std::vector<int64_t> colour_groups(int64_t count, int64_t colours, int64_t repeats) {
  if (colours < 1 || repeats < 1 || count % repeats != 0 || count / repeats < colours)
    throw std::invalid_argument(std::to_string(count) + " features do not split into " + std::to_string(repeats) +
                                " x " + std::to_string(colours) + " colour groups");
  const int64_t block = count / repeats;
  std::vector<int64_t> g(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) g[static_cast<size_t>(i)] = (i % block) * colours / block;
  return g;
}

torch::Tensor causal_mask(const std::vector<int64_t>& out_groups, const std::vector<int64_t>& in_groups, int64_t kh,
                          int64_t kw, std::pair<int64_t, int64_t> centre, MaskType type) {
  const auto [cy, cx] = centre;
  if (cy < 0 || cy >= kh || cx < 0 || cx >= kw) throw std::invalid_argument("mask centre outside the kernel");
  const auto out = static_cast<int64_t>(out_groups.size()), in = static_cast<int64_t>(in_groups.size());
  auto mask = torch::zeros({out, in, kh, kw});
  // Rows above the centre, and the centre row left of the centre: earlier pixels, every channel.
  if (cy > 0) mask.narrow(2, 0, cy).fill_(1);
  if (cx > 0) mask.narrow(2, cy, 1).narrow(3, 0, cx).fill_(1);
  // The centre: earlier colours (mask A), or earlier colours and the same one (mask B).
  auto acc = mask.accessor<float, 4>();
  for (int64_t o = 0; o < out; ++o)
    for (int64_t i = 0; i < in; ++i) {
      const int64_t go = out_groups[static_cast<size_t>(o)], gi = in_groups[static_cast<size_t>(i)];
      acc[o][i][cy][cx] = (type == MaskType::kA ? gi < go : gi <= go) ? 1.0f : 0.0f;
    }
  return mask;
}

MaskedConvOptions square_options(int64_t in, int64_t out, int64_t k, MaskType type, int64_t colours) {
  MaskedConvOptions o;
  o.in = in;
  o.out = out;
  o.kh = o.kw = k;
  o.centre = {k / 2, k / 2};
  o.type = type;
  o.in_groups = colour_groups(in, colours);
  o.out_groups = colour_groups(out, colours);
  return o;
}

MaskedConv2dImpl::MaskedConv2dImpl(const MaskedConvOptions& o) {
  const auto in_g = o.in_groups.empty() ? std::vector<int64_t>(static_cast<size_t>(o.in), 0) : o.in_groups;
  const auto out_g = o.out_groups.empty() ? std::vector<int64_t>(static_cast<size_t>(o.out), 0) : o.out_groups;
  if (static_cast<int64_t>(in_g.size()) != o.in || static_cast<int64_t>(out_g.size()) != o.out)
    throw std::invalid_argument("masked conv: one colour group per feature needed");
  mask_ = causal_mask(out_g, in_g, o.kh, o.kw, o.centre, o.type);
  all_open_ = mask_.min().item<float>() == 1.0f;
  const int64_t top = o.centre.first, bottom = o.kh - 1 - o.centre.first;
  const int64_t left = o.centre.second, right = o.kw - 1 - o.centre.second;
  if (top == bottom && left == right)
    same_ = torch::ExpandingArray<2>({top, left});
  else
    pad_ = {left, right, top, bottom};
  conv_ = register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(o.in, o.out, {o.kh, o.kw})));
}

torch::Tensor MaskedConv2dImpl::forward(const torch::Tensor& x) {
  const torch::Tensor& w = conv_->weight;
  if (mask_.device() != w.device()) mask_ = mask_.to(w.device());
  auto in = pad_.empty() ? x : F::pad(x, F::PadFuncOptions(pad_));
  return F::conv2d(in, all_open_ ? w : w * mask_, F::Conv2dFuncOptions().bias(conv_->bias).padding(same_));
}

}  // namespace gantry::pixelcnn
