#include "train/precision.h"

#include <ATen/autocast_mode.h>
#include <torch/torch.h>

#include <stdexcept>

#include "core/errors.h"
#include "core/torch_compat.h"

namespace gantry {

namespace {

c10::ScalarType autocast_dtype_of(Precision p) {
  return p == Precision::kFp16 ? c10::ScalarType::Half : c10::ScalarType::BFloat16;
}

}  // namespace

Precision parse_precision(const std::string& name) {
  if (name == "fp32") return Precision::kFp32;
  if (name == "bf16") return Precision::kBf16;
  if (name == "fp16") return Precision::kFp16;
  throw UsageError("train.precision: '" + name + "' is not one of fp32, bf16, fp16");
}

std::string precision_name(Precision p) {
  return p == Precision::kFp32 ? "fp32" : p == Precision::kBf16 ? "bf16" : "fp16";
}

void check_precision_supported(Precision p, c10::DeviceType device) {
  if (p == Precision::kFp32 || compat::autocast_supports(device, autocast_dtype_of(p))) return;
  throw UsageError("train.precision: " + precision_name(p) + " autocast is not available on " +
                   c10::DeviceTypeName(device, /*lower_case=*/true) + " with LibTorch " +
                   std::to_string(compat::kTorchMajor) + "." + std::to_string(compat::kTorchMinor) +
                   (device == c10::DeviceType::CPU ? " (its CPU autocast supports bf16 only: use bf16 or a GPU)" : ""));
}

AutocastGuard::AutocastGuard(Precision p, c10::DeviceType device) : device_(device) {
  if (p == Precision::kFp32) return;
  active_ = true;
  was_enabled_ = compat::autocast_enabled(device);
  was_dtype_ = compat::autocast_dtype(device);
  compat::set_autocast_dtype(device, autocast_dtype_of(p));
  compat::set_autocast_enabled(device, true);
  at::autocast::increment_nesting();
}

void AutocastGuard::end() {
  if (!active_) return;
  active_ = false;
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  compat::set_autocast_enabled(device_, was_enabled_);
  compat::set_autocast_dtype(device_, was_dtype_);
}

void to_memory_format(torch::nn::Module& m, c10::MemoryFormat format) {
  torch::NoGradGuard no_grad;
  for (auto& p : m.parameters())
    if (p.dim() == 4) p.set_data(p.data().contiguous(format));
  for (auto& b : m.buffers())
    if (b.dim() == 4) b.set_data(b.data().contiguous(format));
}

LossScaler::LossScaler(LossScalerOptions options) : options_(options), scale_(options.init_scale) {}

torch::Tensor LossScaler::scale(const torch::Tensor& loss) const {
  return loss.to(torch::kFloat32) * scale_;
}

bool LossScaler::unscale_and_update(const std::vector<torch::Tensor>& params) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> finite;
  for (const auto& p : params) {
    torch::Tensor g = p.grad();
    if (!g.defined()) continue;
    g.mul_(1.0 / scale_);  // exact: the scale is a power of two
    finite.push_back(torch::isfinite(g).all());
  }
  const bool ok = finite.empty() || torch::stack(finite).all().item<bool>();
  if (!ok) {
    scale_ *= options_.backoff_factor;
    growth_tracker_ = 0;
    ++skipped_;
  } else if (++growth_tracker_ == options_.growth_interval) {
    scale_ *= options_.growth_factor;
    growth_tracker_ = 0;
  }
  return ok;
}

torch::Tensor LossScaler::state() const {
  return torch::tensor({scale_, static_cast<double>(growth_tracker_), static_cast<double>(skipped_)},
                       torch::kFloat64);
}

void LossScaler::restore(const torch::Tensor& state) {
  if (state.dim() != 1 || state.numel() != 3 || state.scalar_type() != torch::kFloat64 || !(state[0].item<double>() > 0))
    throw std::invalid_argument("not a loss scaler state (3 float64 values: scale > 0, growth tracker, skipped steps)");
  scale_ = state[0].item<double>();
  growth_tracker_ = static_cast<int64_t>(state[1].item<double>());
  skipped_ = static_cast<int64_t>(state[2].item<double>());
}

}  // namespace gantry
