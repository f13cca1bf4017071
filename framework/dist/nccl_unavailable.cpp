// Built instead of nccl_communicator.cpp when CMake did not find CUDA LibTorch with NCCL.
#include "core/errors.h"
#include "dist/backend_util.h"

namespace gantry {

bool nccl_built() {
  return false;
}

std::unique_ptr<Communicator> dist_detail::make_nccl_communicator(const CommOptions&) {
  throw UsageError(at("dist.backend", "this build has no NCCL backend"));
}

}  // namespace gantry
