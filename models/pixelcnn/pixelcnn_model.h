// PixelCNN networks (van den Oord, Kalchbrenner & Kavukcuoglu 2016, "Pixel Recurrent Neural Networks";
// van den Oord et al. 2016, "Conditional Image Generation with PixelCNN Decoders" for the gated one).
// p(x) = Π over pixels in raster order and colours R, G, B of p(x_{i,c} | earlier sub-pixels), each a
// 256-way softmax over the stored 8-bit value. Masks: masked_conv.h.
//
//   arch = residual: 7x7 mask A (C → 2h) → `layers` residual blocks [ReLU, 1x1 (2h → h), ReLU, kxk mask B
//                    (h → h), ReLU, 1x1 (h → 2h), + input] → head. Has the PixelCNN blind spot.
//   arch = gated:    a vertical stack (rows above only) and a horizontal stack (the current row, left of
//                    and including the pixel), `layers` gated layers of h features each:
//                      v' = conv_v(v)                     kxk footprint on rows ≤ i (v: features of rows ≤ i)
//                      h' = conv_h(h) + 1x1(v' shifted down one row)   1 x (k/2+1), mask A first, then B
//                      v ← tanh(v'₁) ⊙ σ(v'₂);  h ← h + 1x1(tanh(h'₁) ⊙ σ(h'₂))  (no residual in the first)
//                    The shifted vertical link gives the horizontal stack every row above: no blind spot.
//   head (both):     ReLU, 1x1 mask B (→ out_hidden), ReLU, 1x1 mask B (→ 256·C logits).
// All 1x1 and masked convolutions carry the colour groups of masked_conv.h.
#pragma once

#include <ATen/core/Generator.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>

#include <cstdint>

#include "pixelcnn/masked_conv.h"

namespace gantry::pixelcnn {

enum class Arch { kResidual, kGated };

inline constexpr int64_t kLevels = 256;  // values of an 8-bit sub-pixel

struct PixelCnnOptions {
  Arch arch = Arch::kResidual;
  int64_t channels = 1, height = 28, width = 28;  // image shape (C colours)
  int64_t layers = 15;                            // residual blocks / gated layers
  int64_t hidden = 128;                           // h (residual blocks carry 2h features); gated: features per stack
  int64_t first_kernel = 7;   // the mask-A layer (residual: 7x7; gated: the first layer's footprint)
  int64_t kernel = 3;         // later masked convolutions
  int64_t out_hidden = 1024;  // features of the head's first 1x1 layer
};

class PixelCnnImpl : public torch::nn::Module {
 public:
  // std::invalid_argument when the options do not make a network (even kernels, features not divisible
  // into colour groups); the message starts with the option's name ("kernel: must be odd ...").
  explicit PixelCnnImpl(const PixelCnnOptions& options);

  // x: (B, C, H, W) float in [-1, 1] (uint8_to_float of the stored values) → logits (B, 256, C, H, W):
  // logits[b, :, c, i, j] is the distribution of sub-pixel (i, j, c) given the sub-pixels before it.
  torch::Tensor forward(const torch::Tensor& x);
  // The features under the head (B, F, H, W), and the head on them → (B, 256·C, H, W) (colour-major).
  torch::Tensor body(const torch::Tensor& x);
  torch::Tensor head(const torch::Tensor& features);

  // Mean negative log-likelihood in nats per sub-pixel of `target` (B, C, H, W) int64 values 0..255,
  // in float32 whatever the logits' dtype.
  static torch::Tensor nll(const torch::Tensor& logits, const torch::Tensor& target);

  // n images (n, H, W, C) uint8 drawn sub-pixel by sub-pixel (raster order, then colours) with uniform
  // numbers from `gen` (CPU): H·W·C steps, each running the body only on the window of rows and columns
  // that can reach the current pixel (reach()) and the head only on that pixel. No grad.
  torch::Tensor sample(int64_t n, at::Generator& gen);
  // How many rows above (and columns to either side) of a pixel its logits can depend on.
  int64_t reach() const;

  const PixelCnnOptions& options() const { return options_; }

 private:
  torch::Tensor residual_body(const torch::Tensor& x);
  torch::Tensor gated_body(const torch::Tensor& x);

  PixelCnnOptions options_;
  MaskedConv2d first_{nullptr};            // residual: 7x7 mask A
  torch::nn::ModuleList blocks_{nullptr};  // residual blocks: (1x1, kxk, 1x1) each
  torch::nn::ModuleList vertical_{nullptr}, link_{nullptr}, horizontal_{nullptr}, h_out_{nullptr};  // gated
  MaskedConv2d head1_{nullptr}, head2_{nullptr};
};
TORCH_MODULE(PixelCnn);

}  // namespace gantry::pixelcnn
