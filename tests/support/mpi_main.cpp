// main() for tests run under mpiexec (support/mpi_run.h).
#include "support/mpi_run.h"

int main(int argc, char** argv) {
  return gantry::testing::run_mpi_tests(argc, argv);
}
