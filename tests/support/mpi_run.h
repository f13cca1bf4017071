// The body of main() for tests run under mpiexec: MPI_Init_thread, only rank 0 prints, and the job
// fails if any rank's tests failed. support/mpi_main.cpp is main() = this; the CUDA tests check for a
// device first (cuda/cuda_mpi_main.cpp).
#pragma once

#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdio>

namespace gantry::testing {

inline int run_mpi_tests(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  ::testing::InitGoogleTest(&argc, argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  int failed = RUN_ALL_TESTS() != 0 ? 1 : 0, any = 0;
  MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (rank == 0 && any && !failed) std::fprintf(stderr, "a test failed on another rank\n");
  MPI_Finalize();
  return any;
}

}  // namespace gantry::testing
