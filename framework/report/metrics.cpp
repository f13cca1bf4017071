#include "report/metrics.h"

#include <cerrno>
#include <filesystem>
#include <fstream>

#include "core/errors.h"
#include "core/fs.h"

namespace gantry {

MetricsLog::MetricsLog(const std::string& path, int64_t resume_step) {
  if (std::filesystem::exists(path)) {
    std::ifstream in(path);
    std::string line, kept;
    while (std::getline(in, line)) {
      try {
        auto j = nlohmann::json::parse(line);
        if (j.value("step", int64_t{0}) > resume_step) continue;
      } catch (const nlohmann::json::exception&) {
        continue;  // a torn last line from a killed run
      }
      kept += line + "\n";
    }
    write_file_atomic(path, kept);
  }
  file_ = std::fopen(path.c_str(), "a");
  if (!file_) throw EnvironmentError(at(path, "cannot open for appending: " + errno_text(errno)));
}

MetricsLog::~MetricsLog() {
  if (file_) std::fclose(file_);
}

void MetricsLog::write(const nlohmann::json& record) {
  std::string line = record.dump() + "\n";
  std::fwrite(line.data(), 1, line.size(), file_);
  std::fflush(file_);
}

}  // namespace gantry
