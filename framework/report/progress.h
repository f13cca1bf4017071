// Progress reporting for long jobs (conversion, training): a live bar on a terminal, plain
// periodic lines otherwise (logs, CI). Counts, rate and ETA; thread-safe `advance`.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <string>

namespace gantry {

class Progress {
 public:
  // total == 0: unknown total (no ETA). `unit` e.g. "images". Writes to `out` (stderr by default).
  // `initial`: work already done before this run (a resumed run), excluded from the rate.
  Progress(std::string label, uint64_t total, std::string unit, FILE* out = stderr, bool enabled = true,
           uint64_t initial = 0);
  ~Progress();
  void advance(uint64_t n, const std::string& note = "");
  void set(uint64_t done, const std::string& note = "");
  void finish(const std::string& note = "");
  double elapsed_s() const;

  static std::string format_duration(double seconds);  // "1h02m", "3m05s", "12s"

 private:
  void draw(bool final_line);

  std::string label_, unit_, note_;
  uint64_t total_, done_ = 0, initial_ = 0;
  FILE* out_;
  bool enabled_, tty_, finished_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
  std::mutex mutex_;
};

}  // namespace gantry
