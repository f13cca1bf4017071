// The DCGAN training step in C++ (D on a real and a detached fake batch, D step; G with the
// non-saturating loss, G step) with gantry's networks — timed next to dcgan_step.py, which does the same
// step in Python PyTorch (dcgan_cpp_vs_python.sh on the CPU, launch/gpu_check.sh on a GPU).
//   dcgan_step_bench RESOLUTION BATCH THREADS STEPS [fp32|bf16] [contiguous|channels_last] [cpu|cuda]
// The optional words may come in any order (each names its setting). bf16 is autocast around the
// forward passes (losses in fp32 and backward outside it, as gantry's StepContext does), entered and
// left as torch.autocast does in Python; channels_last applies to the 4-D weights and the real images.
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
#include <string>

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
  std::fprintf(stderr,
               "usage: dcgan_step_bench RESOLUTION BATCH THREADS STEPS [fp32|bf16] [contiguous|channels_last] "
               "[cpu|cuda]\n");
  return 2;
}

// Module::to(memory_format) as Python has it: every 4-D parameter re-laid out in place.
void to_memory_format(torch::nn::Module& m, c10::MemoryFormat format) {
  torch::NoGradGuard no_grad;
  for (auto& p : m.parameters())
    if (p.dim() == 4) p.set_data(p.contiguous(format));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5 || argc > 8) return usage();
  gantry::dcgan::DcganOptions o;
  o.resolution = std::atoll(argv[1]);
  const int64_t batch = std::atoll(argv[2]), steps = std::atoll(argv[4]);
  std::string precision = "fp32", format_name = "contiguous", device_name = "cpu";
  for (int i = 5; i < argc; ++i) {
    const std::string word = argv[i];
    if (word == "fp32" || word == "bf16")
      precision = word;
    else if (word == "contiguous" || word == "channels_last")
      format_name = word;
    else if (word == "cpu" || word == "cuda")
      device_name = word;
    else
      return usage();
  }
  if (batch < 1 || steps < 1) return usage();
  const bool cuda = device_name == "cuda", bf16 = precision == "bf16";
  const auto format = format_name == "channels_last" ? c10::MemoryFormat::ChannelsLast : c10::MemoryFormat::Contiguous;
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
  to_memory_format(*g, format);
  to_memory_format(*d, format);
  auto adam = [](torch::nn::Module& m) {
    return torch::optim::Adam(m.parameters(), torch::optim::AdamOptions(2e-4).betas({0.5, 0.999}));
  };
  auto opt_g = adam(*g), opt_d = adam(*d);
  const auto on = torch::TensorOptions().device(device);
  auto real = (torch::rand({batch, 3, o.resolution, o.resolution}, on) * 2 - 1).contiguous(format);  // (B, 3, R, R)
  torch::Tensor loss_d, loss_g;
  auto step = [&] {
    auto z = torch::rand({batch, 100}, on) * 2 - 1;  // (B, z_dim)
    opt_d.zero_grad();
    torch::Tensor fake, lr, lf, lg;
    {
      AutocastRegion autocast(autocast_device, bf16);
      fake = g->forward(z);
      lr = d->forward(real);
      lf = d->forward(fake.detach());
    }
    lr = lr.to(torch::kFloat);
    lf = lf.to(torch::kFloat);
    loss_d = F::binary_cross_entropy_with_logits(lr, torch::ones_like(lr)) +
             F::binary_cross_entropy_with_logits(lf, torch::zeros_like(lf));
    loss_d.backward();
    opt_d.step();
    opt_g.zero_grad();
    {
      AutocastRegion autocast(autocast_device, bf16);
      lg = d->forward(fake);
    }
    lg = lg.to(torch::kFloat);
    loss_g = F::binary_cross_entropy_with_logits(lg, torch::ones_like(lg));
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
  std::printf("C++    dcgan %lldx%lld batch %lld %s %s %s threads %d: %.2f ms/step, %.1f images/s (loss D %.4f G %.4f)\n",
              static_cast<long long>(o.resolution), static_cast<long long>(o.resolution), static_cast<long long>(batch),
              device_name.c_str(), precision.c_str(), format_name.c_str(), at::get_num_threads(), 1e3 * s / static_cast<double>(steps),
              static_cast<double>(batch * steps) / s, ld, lg);
  return 0;
}
