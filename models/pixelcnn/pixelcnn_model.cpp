#include "pixelcnn/pixelcnn_model.h"

#include <torch/nn/functional/loss.h>
#include <torch/nn/functional/padding.h>
#include <torch/torch.h>

#include <algorithm>
#include <stdexcept>
#include <string>

#include "train/batch_source.h"

namespace gantry::pixelcnn {

namespace nn = torch::nn;
namespace F = torch::nn::functional;

namespace {

// 2h → ReLU, 1x1 (2h → h) → ReLU, kxk mask B (h → h) → ReLU, 1x1 (h → 2h) → + input (PixelRNN Figure 5).
class ResidualBlockImpl : public nn::Module {
 public:
  ResidualBlockImpl(int64_t h, int64_t k, int64_t colours)
      : reduce_(register_module("reduce", MaskedConv2d(square_options(2 * h, h, 1, MaskType::kB, colours)))),
        conv_(register_module("conv", MaskedConv2d(square_options(h, h, k, MaskType::kB, colours)))),
        expand_(register_module("expand", MaskedConv2d(square_options(h, 2 * h, 1, MaskType::kB, colours)))) {}
  torch::Tensor forward(const torch::Tensor& x) {
    auto y = reduce_->forward(torch::relu(x));
    y = conv_->forward(torch::relu(y));
    return x + expand_->forward(torch::relu(y));
  }

 private:
  MaskedConv2d reduce_, conv_, expand_;
};
TORCH_MODULE(ResidualBlock);

// tanh(first half) ⊙ σ(second half) over channels.
torch::Tensor gate(const torch::Tensor& a) {
  const int64_t p = a.size(1) / 2;
  return torch::tanh(a.narrow(1, 0, p)) * torch::sigmoid(a.narrow(1, p, p));
}

// Row i takes row i − 1's values; row 0 zeros.
torch::Tensor shift_down(const torch::Tensor& x) {
  return F::pad(x, F::PadFuncOptions({0, 0, 1, 0})).narrow(2, 0, x.size(2));
}

void check_kernel(int64_t k, const char* what) {
  if (k < 1 || k % 2 == 0)
    throw std::invalid_argument(std::string(what) + ": must be odd (a centre tap for the current pixel), got " +
                                std::to_string(k));
}

}  // namespace

PixelCnnImpl::PixelCnnImpl(const PixelCnnOptions& o) : options_(o) {
  const int64_t colours = o.channels, k0 = o.first_kernel, k = o.kernel;
  check_kernel(k0, "first_kernel");
  check_kernel(k, "kernel");
  if (o.layers < 1) throw std::invalid_argument("layers: must be at least 1");
  for (auto [n, what] : {std::pair{o.hidden, "hidden"}, std::pair{o.out_hidden, "out_hidden"}})
    if (n < colours)
      throw std::invalid_argument(std::string(what) + ": " + std::to_string(n) + " is fewer than the " +
                                  std::to_string(colours) + " colour channels (each colour needs its own features)");
  int64_t features = 0;
  if (o.arch == Arch::kResidual) {
    features = 2 * o.hidden;
    first_ = register_module("first", MaskedConv2d(square_options(colours, features, k0, MaskType::kA, colours)));
    blocks_ = register_module("blocks", nn::ModuleList());
    for (int64_t l = 0; l < o.layers; ++l) blocks_->push_back(ResidualBlock(o.hidden, k, colours));
  } else {
    const int64_t p = o.hidden;
    features = p;
    vertical_ = register_module("vertical", nn::ModuleList());
    link_ = register_module("link", nn::ModuleList());
    horizontal_ = register_module("horizontal", nn::ModuleList());
    h_out_ = register_module("h_out", nn::ModuleList());
    for (int64_t l = 0; l < o.layers; ++l) {
      const int64_t kl = l == 0 ? k0 : k, in = l == 0 ? colours : p;
      // Vertical: a (k/2 + 1) x k footprint ending at the current row (padded above and at the sides).
      vertical_->push_back(nn::Conv2d(nn::Conv2dOptions(in, 2 * p, {kl / 2 + 1, kl})));
      link_->push_back(nn::Conv2d(nn::Conv2dOptions(2 * p, 2 * p, 1)));
      MaskedConvOptions h;
      h.in = in;
      h.out = 2 * p;
      h.kh = 1;
      h.kw = kl / 2 + 1;
      h.centre = {0, kl / 2};
      h.type = l == 0 ? MaskType::kA : MaskType::kB;
      h.in_groups = colour_groups(in, colours);
      h.out_groups = colour_groups(2 * p, colours, 2);
      horizontal_->push_back(MaskedConv2d(h));
      h_out_->push_back(MaskedConv2d(square_options(p, p, 1, MaskType::kB, colours)));
    }
  }
  head1_ = register_module("head1", MaskedConv2d(square_options(features, o.out_hidden, 1, MaskType::kB, colours)));
  head2_ =
      register_module("head2", MaskedConv2d(square_options(o.out_hidden, kLevels * colours, 1, MaskType::kB, colours)));
}

torch::Tensor PixelCnnImpl::residual_body(const torch::Tensor& x) {
  auto h = first_->forward(x);
  for (const auto& block : *blocks_) h = block->as<ResidualBlock>()->forward(h);
  return h;
}

torch::Tensor PixelCnnImpl::gated_body(const torch::Tensor& x) {
  torch::Tensor v = x, h = x;
  for (size_t l = 0; l < vertical_->size(); ++l) {
    const int64_t half =
        (l == 0 ? options_.first_kernel : options_.kernel) / 2;  // the footprint: (half+1) x (2 half+1)
    auto v_pre = vertical_[l]->as<nn::Conv2d>()->forward(F::pad(v, F::PadFuncOptions({half, half, half, 0})));
    auto h_pre =
        horizontal_[l]->as<MaskedConv2d>()->forward(h) + link_[l]->as<nn::Conv2d>()->forward(shift_down(v_pre));
    v = gate(v_pre);
    auto h_new = h_out_[l]->as<MaskedConv2d>()->forward(gate(h_pre));
    h = l == 0 ? h_new : h + h_new;
  }
  return h;
}

torch::Tensor PixelCnnImpl::body(const torch::Tensor& x) {
  return options_.arch == Arch::kResidual ? residual_body(x) : gated_body(x);
}

torch::Tensor PixelCnnImpl::head(const torch::Tensor& features) {
  return head2_->forward(torch::relu(head1_->forward(torch::relu(features))));
}

torch::Tensor PixelCnnImpl::forward(const torch::Tensor& x) {
  auto logits = head(body(x));  // (B, C·256, H, W), colour-major
  return logits.view({x.size(0), options_.channels, kLevels, x.size(2), x.size(3)}).permute({0, 2, 1, 3, 4});
}

torch::Tensor PixelCnnImpl::nll(const torch::Tensor& logits, const torch::Tensor& target) {
  return F::cross_entropy(logits.to(torch::kFloat32), target);
}

int64_t PixelCnnImpl::reach() const {
  const auto& o = options_;
  if (o.arch == Arch::kResidual) return o.first_kernel / 2 + o.layers * (o.kernel / 2);
  // The vertical stack spreads k/2 rows up and k/2 columns each way per layer, the horizontal one k/2
  // columns left; the link adds one row.
  return 1 + o.first_kernel / 2 + (o.layers - 1) * (o.kernel / 2);
}

torch::Tensor PixelCnnImpl::sample(int64_t n, at::Generator& gen) {
  torch::NoGradGuard no_grad;
  const auto& o = options_;
  const auto device = head2_->conv()->weight.device();
  auto img = torch::zeros({n, o.height, o.width, o.channels}, torch::TensorOptions(device).dtype(torch::kUInt8));
  // One uniform number per sub-pixel and image, drawn up front: the inverse CDF picks the value.
  auto u = at::rand({o.height * o.width * o.channels, n, 1}, gen, torch::kFloat32).to(device);
  const int64_t r = reach();
  int64_t t = 0;
  for (int64_t i = 0; i < o.height; ++i) {
    const int64_t top = std::max<int64_t>(0, i - r);
    for (int64_t j = 0; j < o.width; ++j) {
      const int64_t left = std::max<int64_t>(0, j - r), right = std::min<int64_t>(o.width, j + r + 1);
      for (int64_t c = 0; c < o.channels; ++c, ++t) {
        auto window = uint8_to_float(img.slice(1, top, i + 1).slice(2, left, right));
        auto f = body(window).select(2, i - top).select(2, j - left).unsqueeze(2).unsqueeze(3);  // (n, F, 1, 1)
        auto logits = head(f).view({n, o.channels, kLevels}).select(1, c).to(torch::kFloat32);
        auto cdf = torch::softmax(logits, 1).cumsum(1);
        auto value = (cdf < u[t]).sum(1).clamp_max(kLevels - 1);
        img.select(1, i).select(1, j).select(1, c).copy_(value);
      }
    }
  }
  return img;
}

}  // namespace gantry::pixelcnn
