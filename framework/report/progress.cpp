#include "report/progress.h"

#include <unistd.h>

#include <cmath>

#include "core/log.h"

namespace gantry {

using Clock = std::chrono::steady_clock;

Progress::Progress(std::string label, uint64_t total, std::string unit, FILE* out, bool enabled, uint64_t initial)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total), done_(initial), initial_(initial), out_(out),
      enabled_(enabled),
      tty_(isatty(fileno(out)) != 0), start_(Clock::now()), last_draw_(start_) {}

Progress::~Progress() {
  if (tty_ && enabled_ && !finished_) {
    std::fputc('\n', out_);
    if (out_ == stdout) set_terminal_line_open(false);
  }
}

double Progress::elapsed_s() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }

std::string Progress::format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  char buf[32];
  long t = std::lround(s);
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, (t / 60) % 60);
  else if (t >= 60)
    std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  else
    std::snprintf(buf, sizeof buf, "%lds", t);
  return buf;
}

void Progress::advance(uint64_t n, const std::string& note) {
  std::lock_guard<std::mutex> lock(mutex_);
  done_ += n;
  if (!note.empty()) note_ = note;
  draw(false);
}

void Progress::set(uint64_t done, const std::string& note) {
  std::lock_guard<std::mutex> lock(mutex_);
  done_ = done;
  if (!note.empty()) note_ = note;
  draw(false);
}

void Progress::finish(const std::string& note) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (finished_) return;
  if (!note.empty()) note_ = note;
  draw(true);
  finished_ = true;
}

void Progress::draw(bool final_line) {
  if (!enabled_) return;
  auto now = Clock::now();
  double since = std::chrono::duration<double>(now - last_draw_).count();
  // Terminal: redraw at most 10x/s. Log: a line every 10 s.
  if (!final_line && since < (tty_ ? 0.1 : 10.0)) return;
  last_draw_ = now;
  double el = std::chrono::duration<double>(now - start_).count();
  double rate = el > 0 && done_ >= initial_ ? static_cast<double>(done_ - initial_) / el : 0.0;
  char line[512];
  if (total_ > 0) {
    double frac = std::min(1.0, static_cast<double>(done_) / static_cast<double>(total_));
    double eta = rate > 0 ? static_cast<double>(total_ - std::min(done_, total_)) / rate : NAN;
    std::string bar;
    if (tty_) {
      const int width = 24, fill = static_cast<int>(frac * width);
      bar.reserve(width + 3);
      bar.append(1, '[').append(fill, '#').append(width - fill, '.').append("] ");
    }
    std::snprintf(line, sizeof line, "%s %s%llu/%llu %s (%.1f%%) %.0f %s/s, elapsed %s, ETA %s%s%s", label_.c_str(),
                  bar.c_str(), static_cast<unsigned long long>(done_), static_cast<unsigned long long>(total_),
                  unit_.c_str(), 100.0 * frac, rate, unit_.c_str(), format_duration(el).c_str(),
                  final_line ? "0s" : format_duration(eta).c_str(), note_.empty() ? "" : ", ", note_.c_str());
  } else {
    std::snprintf(line, sizeof line, "%s %llu %s, %.0f %s/s, elapsed %s%s%s", label_.c_str(),
                  static_cast<unsigned long long>(done_), unit_.c_str(), rate, unit_.c_str(),
                  format_duration(el).c_str(), note_.empty() ? "" : ", ", note_.c_str());
  }
  if (tty_) {
    std::fprintf(out_, "\r\033[K%s%s", line, final_line ? "\n" : "");
    set_terminal_line_open(!final_line && out_ == stdout);
  } else
    std::fprintf(out_, "%s\n", line);
  std::fflush(out_);
}

}  // namespace gantry
