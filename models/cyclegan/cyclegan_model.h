// CycleGAN networks (Zhu, Park, Isola & Efros 2017), as the authors' reference implementation builds them.
//   Generator (ResNet): c7s1-w, d2w, d4w, R4w x blocks, u2w, uw, c7s1-channels, tanh — 7x7 convolutions
//                  on reflection padding, two stride-2 3x3 downsamplings, residual blocks (reflection pad,
//                  3x3 conv, norm, ReLU, reflection pad, 3x3 conv, norm; plus the input), two
//                  fractionally-strided 3x3 upsamplings. Instance normalisation (no affine parameters, no
//                  running statistics) and ReLU after every convolution but the last. 9 blocks at 256x256,
//                  6 at 128x128 and below (blocks_for).
//   Discriminator (PatchGAN): `layers` 4x4 stride-2 convolutions from `width` channels, doubling (at most
//                  8x), LeakyReLU 0.2, instance norm on all but the first; a 4x4 stride-1 convolution
//                  (channels doubled once more), then a 4x4 stride-1 convolution to one channel: a map of
//                  patch scores, each seeing a 70x70 patch for layers = 3 (30x30 scores at 256x256).
// Convolutions have biases (the reference's choice with instance norm); weights N(0, 0.02), biases 0 (init).
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>

#include <cstdint>

namespace gantry::cyclegan {

struct GeneratorOptions {
  int64_t in_channels = 3, out_channels = 3;
  int64_t width = 64;  // channels of the first convolution (the reference's ngf)
  int64_t blocks = 9;  // residual blocks at 1/4 resolution
};

struct DiscriminatorOptions {
  int64_t channels = 3;
  int64_t width = 64;  // channels of the first convolution (ndf)
  int64_t layers = 3;  // stride-2 convolutions: 3 is the 70x70 PatchGAN
};

// The reference's rule: 9 residual blocks for 256x256 images, 6 for 128x128 and smaller.
int64_t blocks_for(int64_t image_size);
// Side of the discriminator's score map for an image side `size` (0: the image is too small).
int64_t patch_map_size(int64_t size, int64_t layers);
// Side of the square each score sees (70 for 3 layers).
int64_t receptive_field(int64_t layers);

class ResidualBlockImpl : public torch::nn::Module {
 public:
  explicit ResidualBlockImpl(int64_t channels);
  torch::Tensor forward(const torch::Tensor& x);  // x + body(x), same shape
 private:
  torch::nn::Sequential body_{nullptr};
};
TORCH_MODULE(ResidualBlock);

class GeneratorImpl : public torch::nn::Module {
 public:
  explicit GeneratorImpl(const GeneratorOptions& o);
  // (B, in_channels, H, W) → (B, out_channels, H, W) in [-1, 1]; H and W multiples of 4.
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::nn::Sequential body_{nullptr};
};
TORCH_MODULE(Generator);

class DiscriminatorImpl : public torch::nn::Module {
 public:
  explicit DiscriminatorImpl(const DiscriminatorOptions& o);
  // (B, channels, H, W) → (B, 1, h, w) patch scores (no output activation: least-squares GAN).
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::nn::Sequential body_{nullptr};
};
TORCH_MODULE(Discriminator);

// N(0, 0.02) for every convolution's weight, 0 for its bias (the reference's "normal" init, gain 0.02).
void init(torch::nn::Module& module);

}  // namespace gantry::cyclegan
