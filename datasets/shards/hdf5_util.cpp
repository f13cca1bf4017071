#include "shards/hdf5_util.h"

namespace gantry::data {

std::mutex& hdf5_mutex() {
  static std::mutex m;
  return m;
}

void silence_hdf5_errors() {
  // A thread-safe HDF5 build (Debian's is) keeps this setting per thread: each thread that calls
  // HDF5 (loader workers open shards lazily) must turn it off for itself.
  thread_local bool silenced = false;
  if (silenced) return;
  std::lock_guard<std::mutex> lock(hdf5_mutex());
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  silenced = true;
}

std::string hdf5_version() {
  unsigned maj = 0, min = 0, rel = 0;
  H5get_libversion(&maj, &min, &rel);
  return std::to_string(maj) + "." + std::to_string(min) + "." + std::to_string(rel);
}

}  // namespace gantry::data
