#include "core/log.h"

#include <atomic>
#include <cstdio>
#include <mutex>

namespace gantry {

namespace {
std::mutex& out_mutex() {
  static std::mutex m;
  return m;
}
std::atomic<bool> g_line_open{false};
}  // namespace

void set_terminal_line_open(bool open) {
  g_line_open.store(open);
}

void end_open_terminal_line() {
  if (!g_line_open.exchange(false)) return;
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

void log_info(const std::string& line, int rank) {
  if (rank != 0) return;
  std::lock_guard<std::mutex> lock(out_mutex());
  end_open_terminal_line();
  std::fprintf(stdout, "%s\n", line.c_str());
  std::fflush(stdout);
}

void log_warn(const std::string& line, int rank) {
  std::lock_guard<std::mutex> lock(out_mutex());
  end_open_terminal_line();
  if (rank > 0)
    std::fprintf(stderr, "gantry: warning (rank %d): %s\n", rank, line.c_str());
  else
    std::fprintf(stderr, "gantry: warning: %s\n", line.c_str());
  std::fflush(stderr);
}

}  // namespace gantry
