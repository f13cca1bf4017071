// The VAE training step in C++ (forward, negative ELBO, backward, Adam) on a fixed batch — the same
// model and optimizer as vae_step.py, so the two can be timed side by side (vae_cpp_vs_python.sh).
//   vae_step_bench ARCH(mlp|conv) BATCH THREADS STEPS
#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "vae/vae_model.h"

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: vae_step_bench mlp|conv BATCH THREADS STEPS\n");
    return 2;
  }
  std::string arch = argv[1];
  int64_t batch = std::atoll(argv[2]), steps = std::atoll(argv[4]);
  at::set_num_threads(std::atoi(argv[3]));
  torch::manual_seed(0);
  gantry::vae::VaeOptions o;
  o.likelihood = gantry::vae::Likelihood::kBernoulli;  // vae_step.py's decoder
  if (arch == "conv") {
    o.arch = gantry::vae::Arch::kConv;
    o.height = o.width = 32;
    o.hidden = 32;
  }
  gantry::vae::Vae model(o);
  torch::optim::Adam adam(model->parameters(), torch::optim::AdamOptions(1e-3));
  auto x = torch::rand({batch, o.channels, o.height, o.width}) * 2 - 1;
  auto step = [&] {
    adam.zero_grad();
    auto out = model->forward(x);
    auto terms = model->elbo(x, out);
    terms.loss.backward();
    adam.step();
    return terms.loss.item<double>();
  };
  for (int i = 0; i < 20; ++i) step();
  auto t0 = std::chrono::steady_clock::now();
  double loss = 0;
  for (int64_t i = 0; i < steps; ++i) loss = step();
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("C++    %s batch %lld threads %d: %.3f ms/step, %.0f images/s (loss %.1f)\n", arch.c_str(),
              static_cast<long long>(batch), at::get_num_threads(), 1e3 * s / static_cast<double>(steps),
              static_cast<double>(batch * steps) / s, loss);
  return 0;
}
