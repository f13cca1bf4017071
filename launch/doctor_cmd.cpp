// gantry doctor: what this process runs on.
#include <cstdio>
#include <iostream>

#include "cli.h"
#include "report/doctor.h"
#include "shards/hdf5_util.h"

namespace gantry::cli {

int doctor_command(const Args& args) {
  if (!args.empty() && (args[0] == "--help" || args[0] == "-h")) {
    std::puts("usage: gantry doctor   (versions, BLAS, MPI and GPUs this process sees)");
    return 0;
  }
  std::printf("%-18s %s\n", "gantry", GANTRY_VERSION);
  for (const auto& [name, value] : runtime_facts()) std::printf("%-18s %s\n", name.c_str(), value.c_str());
  std::printf("%-18s %s\n", "HDF5", data::hdf5_version().c_str());
  return 0;
}

}  // namespace gantry::cli
