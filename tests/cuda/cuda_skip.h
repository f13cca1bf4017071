// The CUDA tests' rule for machines without a GPU: say so in one line and exit 77, which CTest reports
// as skipped (SKIP_RETURN_CODE 77, label "cuda"), so `ctest -L cuda` neither passes nor fails silently.
#pragma once

#include <torch/cuda.h>

#include <cstdio>
#include <cstdlib>

namespace gantry::testing {

constexpr int kSkipExitCode = 77;

// Exits 77 unless LibTorch sees a CUDA device. Call first in main(), before MPI_Init (under mpiexec
// every rank exits 77, and so does mpiexec); only the first rank prints.
inline void exit_unless_cuda() {
  if (torch::cuda::is_available()) return;
  const char* rank = std::getenv("OMPI_COMM_WORLD_RANK");
  if (!rank || std::atoi(rank) == 0) std::printf("SKIP: no CUDA device (torch::cuda::is_available() is false)\n");
  std::exit(kSkipExitCode);
}

// Host-synchronising CUDA calls (stream or device synchronize, a blocking copy, .item()) raise an
// error while a NoHostSync is alive (LibTorch's CUDA sync debug mode). Built from host_sync_cuda.cpp in
// CUDA builds; host_sync_none.cpp elsewhere, whose constructor throws (never reached: no CUDA device).
class NoHostSync {
 public:
  NoHostSync();
  ~NoHostSync();
  NoHostSync(const NoHostSync&) = delete;
  NoHostSync& operator=(const NoHostSync&) = delete;
};

}  // namespace gantry::testing
