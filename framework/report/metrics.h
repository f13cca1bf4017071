// metrics.jsonl: one JSON object per line, appended and flushed (a researcher can tail or plot it while
// the run goes on). A resumed run first drops lines past the step it resumes from, so the file never
// holds two different histories of the same steps.
#pragma once

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

namespace gantry {

class MetricsLog {
 public:
  // Opens `path` for appending, after removing lines whose "step" is greater than `resume_step`.
  MetricsLog(const std::string& path, int64_t resume_step);
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;
  void write(const nlohmann::json& record);

 private:
  FILE* file_ = nullptr;
};

}  // namespace gantry
