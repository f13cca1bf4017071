// NoHostSync for builds without CUDA: no CUDA test gets this far (cuda_skip.h exits 77 first).
#include <stdexcept>

#include "cuda/cuda_skip.h"

namespace gantry::testing {

NoHostSync::NoHostSync() {
  throw std::logic_error("NoHostSync: this LibTorch has no CUDA");
}
NoHostSync::~NoHostSync() = default;

}  // namespace gantry::testing
