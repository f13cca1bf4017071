// How a run sets up its device once, before the recipe is built: the kernel choice (train.deterministic)
// and, on CUDA, which GPU this rank's work goes to. Device-generic: compiles and runs on a CPU-only
// LibTorch; the cuDNN flags are recorded there and only matter to CUDA kernels.
#pragma once

#include <torch/types.h>

namespace gantry {

// The kernel choice for a run.
//   deterministic: deterministic algorithms only (an op without one raises an error naming it),
//                  cuDNN's deterministic kernels, no cuDNN autotuning — a resumed run then repeats an
//                  uninterrupted one bit for bit on the same GPU model and world size
//   otherwise:     cuDNN autotuning (benchmark) on for CUDA runs: the fastest kernel per shape, found in
//                  the first steps, which may differ between runs
struct KernelSettings {
  bool deterministic_algorithms = false;
  bool cudnn_deterministic = false;
  bool cudnn_benchmark = false;
  bool operator==(const KernelSettings& o) const {
    return deterministic_algorithms == o.deterministic_algorithms && cudnn_deterministic == o.cudnn_deterministic &&
           cudnn_benchmark == o.cudnn_benchmark;
  }
};

KernelSettings kernel_settings(bool deterministic, const torch::Device& device);

// Sets LibTorch's global context to `settings` (process-wide: call once, before the first kernel). With
// deterministic algorithms it also sets CUBLAS_WORKSPACE_CONFIG=:4096:8 unless the environment already
// has a value (cuBLAS is deterministic only with it; LibTorch refuses cuBLAS calls otherwise).
void apply_kernel_settings(const KernelSettings& settings);

// The settings LibTorch's global context holds now.
KernelSettings current_kernel_settings();

// Makes `device` the current device of this thread (CUDA: every later allocation and kernel without an
// explicit index goes to this rank's GPU). No effect for the CPU.
void use_device(const torch::Device& device);

}  // namespace gantry
