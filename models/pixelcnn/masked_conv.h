// Masked convolutions of PixelCNN (van den Oord et al. 2016): a convolution whose weights are multiplied
// by a fixed 0/1 mask in every forward pass, so that an output never sees the inputs it must predict.
//
// The order is raster order over pixels and, within a pixel, colour order (R, G, B for images with three
// channels). Every feature map belongs to one colour group (`colour_groups`): the image's
// channel c is group c; a hidden layer's features are split into `colours` contiguous blocks (equal
// when the count divides; 256 features over RGB: 86, 85, 85). At
// the kernel's centre tap (the current pixel) an output of group g sees inputs of group
//   mask A: < g  (the first layer: a sub-pixel never sees itself)
//   mask B: ≤ g  (later layers: features of group g already exclude sub-pixel g)
// Taps in rows above the centre, and left of it in the centre row, are open; taps right of the centre
// in its row and in rows below are closed. With one colour, mask A closes the centre and mask B opens it.
//
// A kernel need not be centred on its footprint: the gated PixelCNN's horizontal stack uses 1 x (k/2+1)
// kernels whose last column is the current pixel (`centre`).
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/conv.h>
#include <torch/types.h>

#include <cstdint>
#include <utility>
#include <vector>

namespace gantry::pixelcnn {

enum class MaskType { kA, kB };

// The colour group of each of `count` features split into `colours` contiguous blocks, the block layout
// repeated `repeats` times (a gated layer's 2p outputs: the tanh half and the sigmoid half each hold the
// p-feature layout, so the gate pairs features of the same group): feature i of a block of n is in
// group ⌊i·colours / n⌋. A block needs at least `colours` features.
std::vector<int64_t> colour_groups(int64_t count, int64_t colours, int64_t repeats = 1);

// The 0/1 mask (out, in, kh, kw) float32 of a kernel whose centre tap (the current pixel) is at
// (centre.first, centre.second); `out_groups` / `in_groups` give each feature's colour group.
torch::Tensor causal_mask(const std::vector<int64_t>& out_groups, const std::vector<int64_t>& in_groups, int64_t kh,
                          int64_t kw, std::pair<int64_t, int64_t> centre, MaskType type);

struct MaskedConvOptions {
  int64_t in = 1, out = 1;
  int64_t kh = 3, kw = 3;
  std::pair<int64_t, int64_t> centre{1, 1};  // the current pixel's tap
  MaskType type = MaskType::kB;
  std::vector<int64_t> in_groups, out_groups;  // empty: one colour (every feature in group 0)
  // The output keeps the input's height and width: zero padding of `centre` rows above and columns to
  // the left, the rest of the kernel below and to the right.
};
// A k x k kernel centred on the current pixel, `colours` groups on both sides.
MaskedConvOptions square_options(int64_t in, int64_t out, int64_t k, MaskType type, int64_t colours);

// A convolution (stride 1, output the size of the input) with a causal mask on its weights. The mask
// is fixed, not a parameter or buffer: it is rebuilt from the options, never checkpointed.
class MaskedConv2dImpl : public torch::nn::Module {
 public:
  explicit MaskedConv2dImpl(const MaskedConvOptions& options);
  torch::Tensor forward(const torch::Tensor& x);  // (B, in, H, W) → (B, out, H, W)
  const torch::Tensor& mask() const { return mask_; }
  torch::nn::Conv2d& conv() { return conv_; }

 private:
  torch::nn::Conv2d conv_{nullptr};
  torch::Tensor mask_;        // (out, in, kh, kw), moved to the weight's device on first use
  bool all_open_ = false;     // every tap open (a 1x1 mask B with one colour): no multiply
  std::vector<int64_t> pad_;  // F::pad order (left, right, top, bottom) for an off-centre kernel; else empty
  torch::ExpandingArray<2> same_ =
      torch::ExpandingArray<2>(int64_t{0});  // the convolution's own (rows, columns) padding for a centred kernel
};
TORCH_MODULE(MaskedConv2d);

}  // namespace gantry::pixelcnn
