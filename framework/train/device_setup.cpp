#include "train/device_setup.h"

#include <ATen/Context.h>
#include <c10/core/impl/VirtualGuardImpl.h>

#include <cstdlib>

namespace gantry {

KernelSettings kernel_settings(bool deterministic, const torch::Device& device) {
  KernelSettings s;
  s.deterministic_algorithms = deterministic;
  s.cudnn_deterministic = deterministic;
  s.cudnn_benchmark = !deterministic && device.is_cuda();
  return s;
}

void apply_kernel_settings(const KernelSettings& s) {
  if (s.deterministic_algorithms) setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8", /*overwrite=*/0);
  auto& ctx = at::globalContext();
  ctx.setDeterministicAlgorithms(s.deterministic_algorithms, /*warn_only=*/false);
  ctx.setDeterministicCuDNN(s.cudnn_deterministic);
  ctx.setBenchmarkCuDNN(s.cudnn_benchmark);
}

KernelSettings current_kernel_settings() {
  auto& ctx = at::globalContext();
  return {ctx.deterministicAlgorithms(), ctx.deterministicCuDNN(), ctx.benchmarkCuDNN()};
}

void use_device(const torch::Device& device) {
  if (device.is_cpu()) return;
  c10::impl::VirtualGuardImpl impl(device.type());
  impl.setDevice(device.has_index() ? device : torch::Device(device.type(), 0));
}

}  // namespace gantry
