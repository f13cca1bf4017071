// NoHostSync for CUDA builds: LibTorch's sync debug mode set to "error".
#include <c10/cuda/CUDAFunctions.h>

#include "cuda/cuda_skip.h"

namespace gantry::testing {

NoHostSync::NoHostSync() {
  c10::cuda::warning_state().set_sync_debug_mode(c10::cuda::SyncDebugMode::L_ERROR);
}
NoHostSync::~NoHostSync() {
  c10::cuda::warning_state().set_sync_debug_mode(c10::cuda::SyncDebugMode::L_DISABLED);
}

}  // namespace gantry::testing
