#include "report/doctor.h"

#include <dlfcn.h>
#include <link.h>
#include <mpi.h>
#include <torch/torch.h>

#include <climits>
#include <cstdlib>
#include <cstring>

namespace gantry {

namespace {

// Real path of the loaded shared object whose name contains `needle`.
std::string loaded_library(const char* needle) {
  struct Ctx {
    const char* needle;
    std::string path;
  } ctx{needle, {}};
  dl_iterate_phdr(
      [](struct dl_phdr_info* info, size_t, void* data) -> int {
        auto* c = static_cast<Ctx*>(data);
        if (info->dlpi_name && std::strstr(info->dlpi_name, c->needle)) {
          char real[PATH_MAX];
          c->path = realpath(info->dlpi_name, real) ? real : info->dlpi_name;
          return 1;
        }
        return 0;
      },
      &ctx);
  return ctx.path;
}

}  // namespace

std::string blas_description() {
  std::string path = loaded_library("libblas.so");
  std::string desc;
  using ConfigFn = char* (*)();
  if (auto fn = reinterpret_cast<ConfigFn>(dlsym(RTLD_DEFAULT, "openblas_get_config"))) desc = fn();
  else if (path.find("openblas") != std::string::npos) desc = "OpenBLAS";
  else if (path.find("/blas/") != std::string::npos) desc = "reference BLAS (slow: run launch/setup.sh to select OpenBLAS)";
  else if (path.find("mkl") != std::string::npos) desc = "MKL";
  else if (path.empty()) desc = "none loaded";
  else desc = "unknown BLAS";
  if (path.find("openblas-openmp") != std::string::npos) desc += " [openmp]";
  else if (path.find("openblas-pthread") != std::string::npos) desc += " [pthread: competes with LibTorch's OpenMP]";
  return path.empty() ? desc : desc + " (" + path + ")";
}

bool blas_is_reference() { return loaded_library("libblas.so").find("/blas/") != std::string::npos; }

std::vector<std::pair<std::string, std::string>> runtime_facts() {
  std::vector<std::pair<std::string, std::string>> rows;
  rows.emplace_back("LibTorch", std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
                                    std::to_string(TORCH_VERSION_PATCH));
  rows.emplace_back("intra-op threads", std::to_string(at::get_num_threads()));
  rows.emplace_back("BLAS", blas_description());
  char mpi_version[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  MPI_Get_library_version(mpi_version, &len);
  std::string mpi(mpi_version, static_cast<size_t>(len));
  if (auto nl = mpi.find_first_of(",\n"); nl != std::string::npos) mpi.resize(nl);
  rows.emplace_back("MPI", mpi);
  rows.emplace_back("CUDA", torch::cuda::is_available()
                                ? std::to_string(torch::cuda::device_count()) + " device(s)"
                                : "not available (CPU LibTorch or no GPU)");
  return rows;
}

}  // namespace gantry
