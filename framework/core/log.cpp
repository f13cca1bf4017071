#include "core/log.h"

#include <cstdio>
#include <mutex>

namespace gantry {

namespace {
std::mutex& out_mutex() {
  static std::mutex m;
  return m;
}
}  // namespace

void log_info(const std::string& line, int rank) {
  if (rank != 0) return;
  std::lock_guard<std::mutex> lock(out_mutex());
  std::fprintf(stdout, "%s\n", line.c_str());
  std::fflush(stdout);
}

void log_warn(const std::string& line, int rank) {
  std::lock_guard<std::mutex> lock(out_mutex());
  if (rank > 0)
    std::fprintf(stderr, "gantry: warning (rank %d): %s\n", rank, line.c_str());
  else
    std::fprintf(stderr, "gantry: warning: %s\n", line.c_str());
  std::fflush(stderr);
}

}  // namespace gantry
