// main() of the CUDA tests that run in-process (no MPI): exit 77 without a CUDA device.
#include <gtest/gtest.h>

#include "cuda/cuda_skip.h"

int main(int argc, char** argv) {
  gantry::testing::exit_unless_cuda();
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
