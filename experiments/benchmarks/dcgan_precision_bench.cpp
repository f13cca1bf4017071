// The DCGAN training step (gantry's networks; D on a real and a detached fake batch + D step, G
// non-saturating + G step, Adam) in four variants side by side: fp32 or bf16 autocast (the way
// StepContext runs it: forward under autocast, loss and backward in fp32), contiguous (NCHW) or
// channels-last weights and images. The variants run round-robin, STEPS steps each per round, so load
// on the machine hits them alike; medians over ROUNDS, ratio to fp32 contiguous (the baseline).
//   dcgan_precision_bench RESOLUTION BATCH THREADS STEPS ROUNDS
#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "dcgan/dcgan_model.h"
#include "train/precision.h"

namespace F = torch::nn::functional;
using gantry::Precision;

namespace {

struct Variant {
  std::string name;
  Precision precision;
  c10::MemoryFormat format;
  gantry::dcgan::Generator g{nullptr};
  gantry::dcgan::Discriminator d{nullptr};
  std::unique_ptr<torch::optim::Adam> opt_g, opt_d;
  torch::Tensor real;
  std::vector<double> ms;  // per round, ms/step
  double check = 0;        // loss of the last step (finite check)
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr, "usage: dcgan_precision_bench RESOLUTION BATCH THREADS STEPS ROUNDS\n");
    return 2;
  }
  gantry::dcgan::DcganOptions o;
  o.resolution = std::atoll(argv[1]);
  // The default widths (g_width 128, d_width 128, 3 channels), as dcgan_step_bench and dcgan_step.py.
  const int64_t batch = std::atoll(argv[2]), steps = std::atoll(argv[4]), rounds = std::atoll(argv[5]);
  at::set_num_threads(std::atoi(argv[3]));
  std::vector<Variant> vs;
  for (auto p : {Precision::kFp32, Precision::kBf16})
    for (auto f : {c10::MemoryFormat::Contiguous, c10::MemoryFormat::ChannelsLast}) {
      Variant v;
      v.name = gantry::precision_name(p) + (f == c10::MemoryFormat::Contiguous ? " contiguous" : " channels-last");
      v.precision = p;
      v.format = f;
      torch::manual_seed(0);
      v.g = gantry::dcgan::Generator(o);
      v.d = gantry::dcgan::Discriminator(o);
      gantry::dcgan::dcgan_init(*v.g);
      gantry::dcgan::dcgan_init(*v.d);
      gantry::to_memory_format(*v.g, f);
      gantry::to_memory_format(*v.d, f);
      auto adam = [](torch::nn::Module& m) {
        return std::make_unique<torch::optim::Adam>(m.parameters(),
                                                    torch::optim::AdamOptions(2e-4).betas({0.5, 0.999}));
      };
      v.opt_g = adam(*v.g);
      v.opt_d = adam(*v.d);
      v.real = (torch::rand({batch, o.channels, o.resolution, o.resolution}) * 2 - 1).contiguous(f);
      vs.push_back(std::move(v));
    }
  auto step = [&](Variant& v) {
    auto z = torch::rand({batch, o.z_dim}) * 2 - 1;
    v.opt_d->zero_grad();
    gantry::AutocastGuard ad(v.precision, c10::DeviceType::CPU);
    auto fake = v.g->forward(z);
    auto lr = v.d->forward(v.real), lf = v.d->forward(fake.detach());
    auto loss_d = F::binary_cross_entropy_with_logits(lr, torch::ones_like(lr)) +
                  F::binary_cross_entropy_with_logits(lf, torch::zeros_like(lf));
    ad.end();
    loss_d.backward();
    v.opt_d->step();
    v.opt_g->zero_grad();
    gantry::AutocastGuard ag(v.precision, c10::DeviceType::CPU);
    auto lg = v.d->forward(fake);
    auto loss_g = F::binary_cross_entropy_with_logits(lg, torch::ones_like(lg));
    ag.end();
    loss_g.backward();
    v.opt_g->step();
    return loss_g.item<double>();
  };
  for (auto& v : vs) step(v);  // warm-up
  for (int64_t r = 0; r < rounds; ++r)
    for (auto& v : vs) {
      auto t0 = std::chrono::steady_clock::now();
      for (int64_t i = 0; i < steps; ++i) v.check = step(v);
      v.ms.push_back(1e3 * std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() /
                     static_cast<double>(steps));
    }
  const double base = median(vs.front().ms);
  for (const auto& v : vs) {
    if (!std::isfinite(v.check)) {
      std::fprintf(stderr, "%s: loss not finite\n", v.name.c_str());
      return 1;
    }
    std::printf("dcgan %lldx%lld batch %lld threads %d %-22s median %.1f best %.1f ms/step, speed %.2fx fp32 contiguous\n",
                static_cast<long long>(o.resolution), static_cast<long long>(o.resolution),
                static_cast<long long>(batch), at::get_num_threads(), v.name.c_str(), median(v.ms),
                *std::min_element(v.ms.begin(), v.ms.end()), base / median(v.ms));
  }
  return 0;
}
