#include "cyclegan/cyclegan_model.h"

#include <torch/torch.h>

#include <algorithm>
#include <string>

namespace gantry::cyclegan {

namespace nn = torch::nn;

namespace {

nn::InstanceNorm2d instance_norm(int64_t channels) {
  return nn::InstanceNorm2d(nn::InstanceNorm2dOptions(channels).affine(false).track_running_stats(false));
}

nn::LeakyReLU leaky() {
  return nn::LeakyReLU(nn::LeakyReLUOptions().negative_slope(0.2));
}

}  // namespace

int64_t blocks_for(int64_t image_size) {
  return image_size >= 256 ? 9 : 6;
}

int64_t patch_map_size(int64_t size, int64_t layers) {
  for (int64_t i = 0; i < layers; ++i) size = size < 2 ? 0 : (size - 2) / 2 + 1;  // 4x4, stride 2, padding 1
  return std::max<int64_t>(0, size - 2);                                          // two 4x4, stride 1, padding 1
}

int64_t receptive_field(int64_t layers) {
  int64_t field = 1;
  for (int64_t i = 0; i < 2; ++i) field += 3;                  // the two stride-1 convolutions, last first
  for (int64_t i = 0; i < layers; ++i) field = 2 * field + 2;  // each stride-2 convolution below them
  return field;
}

ResidualBlockImpl::ResidualBlockImpl(int64_t c) {
  nn::Sequential body;
  body->push_back(nn::ReflectionPad2d(1));
  body->push_back(nn::Conv2d(nn::Conv2dOptions(c, c, 3)));
  body->push_back(instance_norm(c));
  body->push_back(nn::ReLU());
  body->push_back(nn::ReflectionPad2d(1));
  body->push_back(nn::Conv2d(nn::Conv2dOptions(c, c, 3)));
  body->push_back(instance_norm(c));
  body_ = register_module("body", body);
}

torch::Tensor ResidualBlockImpl::forward(const torch::Tensor& x) {
  return x + body_->forward(x);
}

GeneratorImpl::GeneratorImpl(const GeneratorOptions& o) {
  const int64_t w = o.width;
  nn::Sequential body;
  body->push_back(nn::ReflectionPad2d(3));
  body->push_back(nn::Conv2d(nn::Conv2dOptions(o.in_channels, w, 7)));
  body->push_back(instance_norm(w));
  body->push_back(nn::ReLU());
  for (int64_t c : {w, 2 * w}) {  // d2w, d4w
    body->push_back(nn::Conv2d(nn::Conv2dOptions(c, 2 * c, 3).stride(2).padding(1)));
    body->push_back(instance_norm(2 * c));
    body->push_back(nn::ReLU());
  }
  for (int64_t i = 0; i < o.blocks; ++i) body->push_back(ResidualBlock(4 * w));
  for (int64_t c : {4 * w, 2 * w}) {  // u2w, uw
    body->push_back(
        nn::ConvTranspose2d(nn::ConvTranspose2dOptions(c, c / 2, 3).stride(2).padding(1).output_padding(1)));
    body->push_back(instance_norm(c / 2));
    body->push_back(nn::ReLU());
  }
  body->push_back(nn::ReflectionPad2d(3));
  body->push_back(nn::Conv2d(nn::Conv2dOptions(w, o.out_channels, 7)));
  body->push_back(nn::Tanh());
  body_ = register_module("body", body);
}

torch::Tensor GeneratorImpl::forward(const torch::Tensor& x) {
  return body_->forward(x);
}

DiscriminatorImpl::DiscriminatorImpl(const DiscriminatorOptions& o) {
  nn::Sequential body;
  body->push_back(nn::Conv2d(nn::Conv2dOptions(o.channels, o.width, 4).stride(2).padding(1)));
  body->push_back(leaky());
  int64_t c = o.width;
  for (int64_t i = 1; i <= o.layers; ++i) {  // the last of these is the stride-1 one
    const int64_t out = o.width * std::min<int64_t>(int64_t{1} << i, 8);
    body->push_back(nn::Conv2d(nn::Conv2dOptions(c, out, 4).stride(i < o.layers ? 2 : 1).padding(1)));
    body->push_back(instance_norm(out));
    body->push_back(leaky());
    c = out;
  }
  body->push_back(nn::Conv2d(nn::Conv2dOptions(c, 1, 4).stride(1).padding(1)));
  body_ = register_module("body", body);
}

torch::Tensor DiscriminatorImpl::forward(const torch::Tensor& x) {
  return body_->forward(x);
}

void init(nn::Module& module) {
  torch::NoGradGuard no_grad;
  for (auto& m : module.modules(/*include_self=*/true)) {
    if (m->name().find("Conv") == std::string::npos) continue;
    for (auto& p : m->named_parameters(/*recurse=*/false)) {
      if (p.key() == "weight")
        p.value().normal_(0.0, 0.02);
      else
        p.value().zero_();
    }
  }
}

}  // namespace gantry::cyclegan
