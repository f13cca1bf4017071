// What `gantry report` reads from a run directory (ARCHITECTURE.md, "Run directory"), generically: it
// knows no recipe and reads every key as it finds it. The directory, config.ini and metrics.jsonl are
// required (DataError, exit 3, naming the file and line); the optional parts (samples, evaluations,
// checkpoints) come back empty when absent, and a damaged optional file is noted, not fatal.
//
// Series rule (the report draws one curve per series; tests/report counts them the same way): every key
// of a metrics.jsonl record other than `step`, `epoch` and `time` whose value is a JSON number in at
// least one record that has a numeric `step` is one series. A record's `null` for a series key (how a
// NaN or infinity is written) is a gap in its curve; strings (`features`) and booleans are not series.
// Records without `epoch` are evaluations: their keys (`eval_*`, `fid`, `kid`, ...) are drawn as points.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace gantry::report {

struct IniEntry {
  std::string section, key, value;  // "[train]" "steps = 30" → {"train", "steps", "30"}
};

struct Series {
  std::string key;
  bool evaluation = false;    // carried by evaluation records
  std::vector<double> steps;  // in file order
  std::vector<float> values;  // NaN: null or not finite (a gap)
};

struct Metrics {
  std::vector<Series> series;               // the recipe's, images_per_s and lr, evaluations; alphabetical within each
  std::vector<nlohmann::json> evaluations;  // evaluation records, in file order
  nlohmann::json last_step;                 // the newest training record (null when none)
  int64_t records = 0;                      // lines read as records
  bool truncated_last_line = false;         // the last line was incomplete (the run still writing) and skipped
};

struct Checkpoint {
  std::string name;  // "step-00001000"
  int64_t step = -1, epoch = -1, world_size = -1;
  std::string recipe;
  uint64_t bytes = 0;  // on disk, every file of the directory
  bool latest = false;
  std::string problem;  // non-empty: manifest.json missing or unreadable
};

struct SampleGrid {
  std::string kind;  // the file name's prefix before "step-": "" (samples), "recon-" (reconstructions)
  int64_t step = 0;
  std::string path;
};

struct EvalFile {
  std::string name;  // "step-00003000.json"
  nlohmann::json value;
  std::string problem;  // non-empty: unreadable or not JSON
};

struct RunContents {
  std::string dir;
  std::vector<IniEntry> config;
  Metrics metrics;
  std::vector<Checkpoint> checkpoints;  // by step
  std::vector<SampleGrid> samples;      // by kind, then step
  std::vector<EvalFile> eval_files;     // by name
};

// Reads `dir` as above.
RunContents read_run(const std::string& dir);
// The pieces, for tests: config.ini text (`source` names it in errors) and metrics.jsonl.
std::vector<IniEntry> parse_ini(const std::string& text, const std::string& source);
Metrics read_metrics(const std::string& path);

}  // namespace gantry::report
