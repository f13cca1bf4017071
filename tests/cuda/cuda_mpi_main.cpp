// main() of the CUDA tests run under mpiexec (-n 1: NCCL at world size one; -n 2: the MPI backend on
// CUDA tensors): exit 77 without a CUDA device, before MPI_Init; then as support/mpi_main.cpp.
#include "cuda/cuda_skip.h"
#include "support/mpi_run.h"

int main(int argc, char** argv) {
  gantry::testing::exit_unless_cuda();
  return gantry::testing::run_mpi_tests(argc, argv);
}
