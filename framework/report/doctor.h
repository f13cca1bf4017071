// What the process runs on: the host, LibTorch version and threads, the CPU, the BLAS actually loaded (resolved
// through the libblas.so.3 alternative), oneDNN's kernels, MPI library, CUDA. Printed by `gantry doctor`
// and at start-up.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace gantry {

// This machine's name (gethostname; "localhost" if it has none).
std::string host_name();
// "OpenBLAS 0.3.21 (openmp) /usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3" or "reference BLAS ...".
std::string blas_description();
// "AMD EPYC (avx2 avx512f avx512_bf16)": the CPU's model and the vector extensions by which
// LibTorch, OpenBLAS and oneDNN choose their kernels (/proc/cpuinfo). Kernels for other extensions sum
// in another order: a run is bitwise reproducible on CPUs with the same extensions and kernels.
std::string cpu_description();
// "2.6.3, kernels cpu_isa_avx512_core_bf16": oneDNN's version and the instruction set of LibTorch's
// CPU convolutions (DNNL_MAX_CPU_ISA caps it), or "" where the library is hidden (the PyPI wheel links
// its copy privately).
std::string onednn_description();
// true when the loaded BLAS is the slow reference implementation.
bool blas_is_reference();
// (name, value) rows: host, LibTorch, threads, CPU, BLAS, oneDNN (when visible), MPI, CUDA.
std::vector<std::pair<std::string, std::string>> runtime_facts();
// "intra-op threads: 1; CPU: ...; BLAS: ...; oneDNN: ...": the rows of `facts` (runtime_facts()) that
// decide a run's bits besides its data and world size. Checkpoints record rank 0's.
std::string kernel_facts(const std::vector<std::pair<std::string, std::string>>& facts);

}  // namespace gantry
