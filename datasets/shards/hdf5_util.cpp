#include "shards/hdf5_util.h"

namespace gantry::data {

std::mutex& hdf5_mutex() {
  static std::mutex m;
  return m;
}

void silence_hdf5_errors() {
  std::lock_guard<std::mutex> lock(hdf5_mutex());
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
}

std::string hdf5_version() {
  unsigned maj = 0, min = 0, rel = 0;
  H5get_libversion(&maj, &min, &rel);
  return std::to_string(maj) + "." + std::to_string(min) + "." + std::to_string(rel);
}

}  // namespace gantry::data
