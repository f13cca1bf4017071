// The one place where LibTorch versions differ: gantry builds against Debian's LibTorch 1.13 (CPU) and
// against the LibTorch inside PyPI's torch 2.x (CUDA). Code elsewhere calls these and never tests
// TORCH_VERSION_* itself; a new difference gets a function here.
#pragma once

#include <ATen/autocast_mode.h>
#include <c10/core/DeviceType.h>
#include <c10/core/ScalarType.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/optim/optimizer.h>
#include <torch/version.h>

#include <string>
#include <type_traits>

namespace gantry::compat {

inline constexpr int kTorchMajor = TORCH_VERSION_MAJOR;
inline constexpr int kTorchMinor = TORCH_VERSION_MINOR;

// An owning pointer to an autograd node (std::shared_ptr in 1.13, c10::intrusive_ptr in later 2.x).
using NodePtr = std::decay_t<decltype(torch::autograd::impl::grad_accumulator(std::declval<const at::Tensor&>()))>;

// The key of a parameter's entry in torch::optim::Optimizer::state(): the TensorImpl's address, as a
// string in 1.13, as a void* in 2.x.
using OptimStateKey = std::decay_t<decltype(std::declval<torch::optim::Optimizer&>().state().begin()->first)>;
inline OptimStateKey optim_state_key(const at::Tensor& param) {
#if TORCH_VERSION_MAJOR >= 2
  return param.unsafeGetTensorImpl();
#else
  return c10::guts::to_string(param.unsafeGetTensorImpl());
#endif
}

// Autocast for one device type (kCPU or kCUDA): enabled flag and the lower-precision dtype.
inline bool autocast_enabled(c10::DeviceType type) {
#if TORCH_VERSION_MAJOR >= 2
  return at::autocast::is_autocast_enabled(type);
#else
  return type == c10::DeviceType::CUDA ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
#endif
}

inline void set_autocast_enabled(c10::DeviceType type, bool enabled) {
#if TORCH_VERSION_MAJOR >= 2
  at::autocast::set_autocast_enabled(type, enabled);
#else
  if (type == c10::DeviceType::CUDA)
    at::autocast::set_enabled(enabled);
  else
    at::autocast::set_cpu_enabled(enabled);
#endif
}

inline c10::ScalarType autocast_dtype(c10::DeviceType type) {
#if TORCH_VERSION_MAJOR >= 2
  return at::autocast::get_autocast_dtype(type);
#else
  return type == c10::DeviceType::CUDA ? at::autocast::get_autocast_gpu_dtype()
                                       : at::autocast::get_autocast_cpu_dtype();
#endif
}

inline void set_autocast_dtype(c10::DeviceType type, c10::ScalarType dtype) {
#if TORCH_VERSION_MAJOR >= 2
  at::autocast::set_autocast_dtype(type, dtype);
#else
  if (type == c10::DeviceType::CUDA)
    at::autocast::set_autocast_gpu_dtype(dtype);
  else
    at::autocast::set_autocast_cpu_dtype(dtype);
#endif
}

// Whether autocast on a device type can run in `dtype` (kBFloat16 or kHalf). LibTorch 1.13's CPU autocast
// supports bfloat16 only (it raises for float16); 2.x's supports both; CUDA autocast supports both.
inline bool autocast_supports(c10::DeviceType type, c10::ScalarType dtype) {
  if (dtype != c10::ScalarType::BFloat16 && dtype != c10::ScalarType::Half) return false;
#if TORCH_VERSION_MAJOR >= 2
  return type == c10::DeviceType::CPU || type == c10::DeviceType::CUDA;
#else
  return type == c10::DeviceType::CUDA || (type == c10::DeviceType::CPU && dtype == c10::ScalarType::BFloat16);
#endif
}

}  // namespace gantry::compat
