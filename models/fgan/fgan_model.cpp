#include "fgan/fgan_model.h"

#include <torch/torch.h>

#include <cmath>
#include <stdexcept>

#include "dist/batch_norm.h"

namespace gantry::fgan {

namespace nn = torch::nn;

namespace {
// Weights U(-scale, scale), biases 0: pylearn2's `irange` initialisation, which Goodfellow et al.'s MNIST
// GAN (adversarial/mnist.yaml) uses and f-GAN reuses. scale 0 keeps LibTorch's default.
nn::Linear linear(int64_t in, int64_t out, double scale) {
  nn::Linear l(in, out);
  if (scale > 0) {
    torch::NoGradGuard no_grad;
    l->weight.uniform_(-scale, scale);
    l->bias.zero_();
  }
  return l;
}
}  // namespace

MlpGeneratorImpl::MlpGeneratorImpl(const MlpGeneratorOptions& o) {
  if (o.z_dim < 1 || o.hidden < 1 || o.out < 1) throw std::invalid_argument("MlpGenerator: sizes must be positive");
  nn::Sequential body;
  body->push_back(linear(o.z_dim, o.hidden, o.init_scale));
  body->push_back(BatchNorm(o.hidden));
  body->push_back(nn::ReLU());
  body->push_back(linear(o.hidden, o.hidden, o.init_scale));
  body->push_back(BatchNorm(o.hidden));
  body->push_back(nn::ReLU());
  body->push_back(linear(o.hidden, o.out, o.init_scale));
  body->push_back(nn::Sigmoid());
  body_ = register_module("body", body);
}

torch::Tensor MlpGeneratorImpl::forward(const torch::Tensor& z) { return body_->forward(z); }

MlpVariationalImpl::MlpVariationalImpl(const MlpVariationalOptions& o) {
  if (o.activation != "elu" && o.activation != "tanh")
    throw std::invalid_argument("MlpVariational: activation must be elu or tanh, got '" + o.activation + "'");
  if (o.in < 1 || o.hidden < 1 || o.layers < 1) throw std::invalid_argument("MlpVariational: sizes must be positive");
  nn::Sequential body;
  int64_t in = o.in;
  for (int64_t i = 0; i < o.layers; ++i) {
    body->push_back(linear(in, o.hidden, o.init_scale));
    if (o.activation == "elu")
      body->push_back(nn::ELU());
    else
      body->push_back(nn::Tanh());
    in = o.hidden;
  }
  body->push_back(linear(in, 1, o.init_scale));
  body_ = register_module("body", body);
}

torch::Tensor MlpVariationalImpl::forward(const torch::Tensor& x) { return body_->forward(x).view({-1}); }

GaussianGeneratorImpl::GaussianGeneratorImpl(double mu, double sigma) {
  if (!(sigma > 0)) throw std::invalid_argument("GaussianGenerator: sigma must be positive");
  mu_ = register_parameter("mu", torch::full({1}, mu, torch::kFloat32));
  log_sigma_ = register_parameter("log_sigma", torch::full({1}, std::log(sigma), torch::kFloat32));
}

torch::Tensor GaussianGeneratorImpl::forward(const torch::Tensor& z) { return mu_ + torch::exp(log_sigma_) * z; }

double GaussianGeneratorImpl::mu() const { return mu_.item<double>(); }
double GaussianGeneratorImpl::sigma() const { return std::exp(log_sigma_.item<double>()); }
torch::Tensor GaussianGeneratorImpl::mu_tensor() const { return mu_.detach().reshape({}); }
torch::Tensor GaussianGeneratorImpl::sigma_tensor() const { return log_sigma_.detach().exp().reshape({}); }

}  // namespace gantry::fgan
