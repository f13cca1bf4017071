// What the process runs on: LibTorch version and threads, the BLAS actually loaded (resolved through
// the libblas.so.3 alternative), OpenMP, MPI library, CUDA. Printed by `gantry doctor` and at start-up.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace gantry {

// "OpenBLAS 0.3.21 (openmp) /usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3" or "reference BLAS ...".
std::string blas_description();
// true when the loaded BLAS is the slow reference implementation.
bool blas_is_reference();
// (name, value) rows: gantry, LibTorch, threads, BLAS, MPI, CUDA.
std::vector<std::pair<std::string, std::string>> runtime_facts();

}  // namespace gantry
