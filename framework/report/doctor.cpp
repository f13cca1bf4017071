#include "report/doctor.h"

#include <dlfcn.h>
#include <link.h>
#include <mpi.h>
#include <torch/torch.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <cstring>
#include <fstream>

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

std::string host_name() {
  char name[256] = {};
  if (gethostname(name, sizeof name - 1) != 0 || name[0] == '\0') return "localhost";
  return name;
}

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

std::string cpu_description() {
  std::ifstream in("/proc/cpuinfo");
  std::string line, model = "unknown CPU", flags;
  while (std::getline(in, line) && (flags.empty() || model == "unknown CPU")) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    const std::string key = line.substr(0, line.find_last_not_of(" \t", colon - 1) + 1);
    const std::string value = colon + 2 <= line.size() ? line.substr(colon + 2) : "";
    if (key == "model name")
      model = value;
    else if (key == "flags")
      flags = " " + value + " ";
  }
  std::string extensions;
  for (const char* f : {"avx2", "avx512f", "avx512_bf16", "amx_tile"})
    if (flags.find(std::string(" ") + f + " ") != std::string::npos) {
      if (!extensions.empty()) extensions += ' ';
      extensions += f;
    }
  return model + " (" + (extensions.empty() ? "no AVX2" : extensions) + ")";
}

std::string onednn_description() {
  struct Version {  // the leading fields of dnnl_version_t
    int major, minor, patch;
  };
  using VersionFn = const Version* (*)();
  using IsaFn = int (*)();
  using IsaNameFn = const char* (*)(int);
  auto version = reinterpret_cast<VersionFn>(dlsym(RTLD_DEFAULT, "dnnl_version"));
  auto isa = reinterpret_cast<IsaFn>(dlsym(RTLD_DEFAULT, "dnnl_get_effective_cpu_isa"));
  auto isa_name = reinterpret_cast<IsaNameFn>(dlsym(RTLD_DEFAULT, "dnnl_cpu_isa2str"));
  if (!version || !isa || !isa_name) return "";
  const Version* v = version();
  return std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch) + ", kernels " +
         isa_name(isa());
}

bool blas_is_reference() { return loaded_library("libblas.so").find("/blas/") != std::string::npos; }

std::vector<std::pair<std::string, std::string>> runtime_facts() {
  std::vector<std::pair<std::string, std::string>> rows;
  rows.emplace_back("host", host_name());
  rows.emplace_back("LibTorch", std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
                                    std::to_string(TORCH_VERSION_PATCH));
  rows.emplace_back("intra-op threads", std::to_string(at::get_num_threads()));
  rows.emplace_back("CPU", cpu_description());
  rows.emplace_back("BLAS", blas_description());
  if (std::string dnnl = onednn_description(); !dnnl.empty()) rows.emplace_back("oneDNN", dnnl);
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

std::string kernel_facts(const std::vector<std::pair<std::string, std::string>>& facts) {
  std::string out;
  for (const auto& [name, value] : facts)
    if (name == "intra-op threads" || name == "CPU" || name == "BLAS" || name == "oneDNN") {
      if (!out.empty()) out += "; ";
      out += name;
      out += ": ";
      out += value;
    }
  return out;
}

}  // namespace gantry
