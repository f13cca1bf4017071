// The DCGAN training step in C++ (D on a real and a detached fake batch, D step; G with the
// non-saturating loss, G step) with gantry's networks — timed next to dcgan_step.py, which does the same
// step in Python PyTorch (dcgan_cpp_vs_python.sh on the CPU, launch/gpu_check.sh on a GPU).
//   dcgan_step_bench RESOLUTION BATCH THREADS STEPS [cpu|cuda [fp32|bf16]]
// bf16 is autocast around each forward and loss (backward outside), as torch.autocast does in Python.
// Time covers STEPS steps after warm-up (3 on the CPU, 10 on CUDA), the device synchronized at both
// ends only; the losses are read and checked finite after the clock stops.
#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "core/torch_compat.h"
#include "dcgan/dcgan_model.h"

namespace F = torch::nn::functional;
namespace compat = gantry::compat;

namespace {

// One autocast region like Python's `with torch.autocast(device, dtype)`: on at construction, off at
// destruction, and the cast-weight cache cleared when the outermost region ends (the weights change at
// the optimizer step, so a cached bf16 copy must not outlive the region). Inactive for fp32.
class AutocastRegion {
 public:
  AutocastRegion(c10::DeviceType device, bool active) : device_(device), active_(active) {
    if (!active_) return;
    previous_ = compat::autocast_enabled(device_);
    compat::set_autocast_enabled(device_, true);
    compat::set_autocast_dtype(device_, torch::kBFloat16);
    at::autocast::increment_nesting();
  }
  ~AutocastRegion() {
    if (!active_) return;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    compat::set_autocast_enabled(device_, previous_);
  }
  AutocastRegion(const AutocastRegion&) = delete;
  AutocastRegion& operator=(const AutocastRegion&) = delete;

 private:
  c10::DeviceType device_;
  bool active_;
  bool previous_ = false;
};

int usage() {
  std::fprintf(stderr, "usage: dcgan_step_bench RESOLUTION BATCH THREADS STEPS [cpu|cuda [fp32|bf16]]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5 || argc > 7) return usage();
  gantry::dcgan::DcganOptions o;
  o.resolution = std::atoll(argv[1]);
  const int64_t batch = std::atoll(argv[2]), steps = std::atoll(argv[4]);
  const char* device_name = argc > 5 ? argv[5] : "cpu";
  const char* precision = argc > 6 ? argv[6] : "fp32";
  const bool cuda = std::strcmp(device_name, "cuda") == 0;
  const bool bf16 = std::strcmp(precision, "bf16") == 0;
  if ((!cuda && std::strcmp(device_name, "cpu") != 0) || (!bf16 && std::strcmp(precision, "fp32") != 0) ||
      batch < 1 || steps < 1)
    return usage();
  if (cuda && !torch::cuda::is_available()) {
    std::fprintf(stderr, "dcgan_step_bench: cuda asked for, but this LibTorch sees no GPU\n");
    return 77;
  }
  const torch::Device device(cuda ? torch::kCUDA : torch::kCPU);
  const c10::DeviceType autocast_device = cuda ? c10::DeviceType::CUDA : c10::DeviceType::CPU;
  at::set_num_threads(std::atoi(argv[3]));
  torch::manual_seed(0);
  gantry::dcgan::Generator g(o);
  gantry::dcgan::Discriminator d(o);
  gantry::dcgan::dcgan_init(*g);
  gantry::dcgan::dcgan_init(*d);
  g->to(device);
  d->to(device);
  auto adam = [](torch::nn::Module& m) {
    return torch::optim::Adam(m.parameters(), torch::optim::AdamOptions(2e-4).betas({0.5, 0.999}));
  };
  auto opt_g = adam(*g), opt_d = adam(*d);
  const auto on = torch::TensorOptions().device(device);
  auto real = torch::rand({batch, 3, o.resolution, o.resolution}, on) * 2 - 1;  // (B, 3, R, R)
  torch::Tensor loss_d, loss_g;
  auto step = [&] {
    auto z = torch::rand({batch, 100}, on) * 2 - 1;  // (B, z_dim)
    opt_d.zero_grad();
    torch::Tensor fake;
    {
      AutocastRegion autocast(autocast_device, bf16);
      fake = g->forward(z);
      auto lr = d->forward(real), lf = d->forward(fake.detach());
      loss_d = F::binary_cross_entropy_with_logits(lr, torch::ones_like(lr)) +
               F::binary_cross_entropy_with_logits(lf, torch::zeros_like(lf));
    }
    loss_d.backward();
    opt_d.step();
    opt_g.zero_grad();
    {
      AutocastRegion autocast(autocast_device, bf16);
      auto lg = d->forward(fake);
      loss_g = F::binary_cross_entropy_with_logits(lg, torch::ones_like(lg));
    }
    loss_g.backward();
    opt_g.step();
  };
  auto sync = [&] {
    if (cuda) torch::cuda::synchronize();
  };
  for (int i = 0, warmup = cuda ? 10 : 3; i < warmup; ++i) step();
  sync();
  auto t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < steps; ++i) step();
  sync();
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double ld = loss_d.item<double>(), lg = loss_g.item<double>();
  if (!std::isfinite(ld) || !std::isfinite(lg)) {
    std::fprintf(stderr, "dcgan_step_bench: losses not finite (D %g, G %g)\n", ld, lg);
    return 1;
  }
  std::printf("C++    dcgan %lldx%lld batch %lld %s %s threads %d: %.2f ms/step, %.1f images/s (loss D %.4f G %.4f)\n",
              static_cast<long long>(o.resolution), static_cast<long long>(o.resolution), static_cast<long long>(batch),
              device_name, precision, at::get_num_threads(), 1e3 * s / static_cast<double>(steps),
              static_cast<double>(batch * steps) / s, ld, lg);
  return 0;
}
