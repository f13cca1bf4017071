#include "dcgan/dcgan_model.h"

#include <torch/torch.h>

#include <stdexcept>
#include <string>

namespace gantry::dcgan {

namespace nn = torch::nn;

namespace {
int upsamplings(const DcganOptions& o) {
  if (o.resolution != 32 && o.resolution != 64)
    throw std::invalid_argument("DCGAN needs 32x32 or 64x64 images, got " + std::to_string(o.resolution) +
                                " (convert with --resolution 32 or 64)");
  return o.resolution == 64 ? 4 : 3;  // 4x4 → resolution
}
}  // namespace

GeneratorImpl::GeneratorImpl(const DcganOptions& o) {
  const int k = upsamplings(o);
  c0_ = o.g_width << (k - 1);  // 64x64: 128·8 = 1024 at 4x4
  project_ = register_module("project", nn::Linear(nn::LinearOptions(o.z_dim, c0_ * 16).bias(false)));
  project_bn_ = register_module("project_bn", BatchNorm(c0_));
  nn::Sequential body;
  int64_t c = c0_;
  for (int i = 0; i < k; ++i) {
    const bool last = i + 1 == k;
    const int64_t out = last ? o.channels : c / 2;
    body->push_back(nn::ConvTranspose2d(nn::ConvTranspose2dOptions(c, out, 4).stride(2).padding(1).bias(last)));
    if (!last) {
      body->push_back(BatchNorm(out));
      body->push_back(nn::ReLU());
    }
    c = out;
  }
  body->push_back(nn::Tanh());
  body_ = register_module("body", body);
}

torch::Tensor GeneratorImpl::forward(const torch::Tensor& z) {
  auto h = project_->forward(z).view({z.size(0), c0_, 4, 4});
  return body_->forward(torch::relu(project_bn_->forward(h)));
}

DiscriminatorImpl::DiscriminatorImpl(const DcganOptions& o) {
  const int k = upsamplings(o);
  nn::Sequential body;
  int64_t c = o.channels, out = o.d_width;
  for (int i = 0; i < k; ++i) {  // resolution → 4x4
    body->push_back(nn::Conv2d(nn::Conv2dOptions(c, out, 4).stride(2).padding(1).bias(i == 0)));
    if (i > 0) body->push_back(BatchNorm(out));  // none on the input layer
    body->push_back(nn::LeakyReLU(nn::LeakyReLUOptions().negative_slope(0.2)));
    c = out;
    out *= 2;
  }
  body->push_back(nn::Conv2d(nn::Conv2dOptions(c, 1, 4).stride(1).padding(0)));  // 4x4 → one logit
  body_ = register_module("body", body);
}

torch::Tensor DiscriminatorImpl::forward(const torch::Tensor& x) { return body_->forward(x).view({-1}); }

void dcgan_init(nn::Module& module) {
  torch::NoGradGuard no_grad;
  for (auto& m : module.modules(/*include_self=*/true)) {
    const std::string name = m->name();
    if (name.find("BatchNorm") != std::string::npos) {
      for (auto& p : m->named_parameters(false)) {
        if (p.key() == "weight") p.value().normal_(1.0, 0.02);
        else p.value().zero_();
      }
    } else if (name.find("Conv") != std::string::npos || name.find("Linear") != std::string::npos) {
      for (auto& p : m->named_parameters(false)) {
        if (p.key() == "weight") p.value().normal_(0.0, 0.02);
        else p.value().zero_();
      }
    }
  }
}

}  // namespace gantry::dcgan
