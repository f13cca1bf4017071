// The DCGAN training step in C++ (D on a real and a detached fake batch, D step; G with the
// non-saturating loss, G step) with gantry's networks — timed next to dcgan_step.py.
//   dcgan_step_bench RESOLUTION BATCH THREADS STEPS
#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "dcgan/dcgan_model.h"

namespace F = torch::nn::functional;

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: dcgan_step_bench RESOLUTION BATCH THREADS STEPS\n");
    return 2;
  }
  gantry::dcgan::DcganOptions o;
  o.resolution = std::atoll(argv[1]);
  const int64_t batch = std::atoll(argv[2]), steps = std::atoll(argv[4]);
  at::set_num_threads(std::atoi(argv[3]));
  torch::manual_seed(0);
  gantry::dcgan::Generator g(o);
  gantry::dcgan::Discriminator d(o);
  gantry::dcgan::dcgan_init(*g);
  gantry::dcgan::dcgan_init(*d);
  auto adam = [](torch::nn::Module& m) {
    return torch::optim::Adam(m.parameters(), torch::optim::AdamOptions(2e-4).betas({0.5, 0.999}));
  };
  auto opt_g = adam(*g), opt_d = adam(*d);
  auto real = torch::rand({batch, 3, o.resolution, o.resolution}) * 2 - 1;
  auto step = [&] {
    auto z = torch::rand({batch, 100}) * 2 - 1;
    opt_d.zero_grad();
    auto fake = g->forward(z);
    auto lr = d->forward(real), lf = d->forward(fake.detach());
    auto loss_d = F::binary_cross_entropy_with_logits(lr, torch::ones_like(lr)) +
                  F::binary_cross_entropy_with_logits(lf, torch::zeros_like(lf));
    loss_d.backward();
    opt_d.step();
    opt_g.zero_grad();
    auto lg = d->forward(fake);
    auto loss_g = F::binary_cross_entropy_with_logits(lg, torch::ones_like(lg));
    loss_g.backward();
    opt_g.step();
    return loss_g.item<double>();
  };
  for (int i = 0; i < 3; ++i) step();
  auto t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < steps; ++i) step();
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("C++    dcgan %lldx%lld batch %lld threads %d: %.1f ms/step, %.1f images/s\n",
              static_cast<long long>(o.resolution), static_cast<long long>(o.resolution), static_cast<long long>(batch),
              at::get_num_threads(), 1e3 * s / static_cast<double>(steps), static_cast<double>(batch * steps) / s);
  return 0;
}
