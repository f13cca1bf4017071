#include "report/run_contents.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <regex>

#include "core/errors.h"
#include "core/fs.h"

namespace gantry::report {

namespace fs = std::filesystem;

namespace {

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

std::string where(const std::string& path, int64_t line) {
  return path + ":" + std::to_string(line);
}

bool is_series_value(const std::string& key, const nlohmann::json& v) {
  return key != "step" && key != "epoch" && key != "time" && v.is_number();
}

struct SeriesBuilder {
  Series series;
  bool in_step = false, in_eval = false;
};

std::vector<Checkpoint> read_checkpoints(const fs::path& dir) {
  std::vector<Checkpoint> out;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  std::string latest;
  try {
    if (fs::exists(dir / "LATEST", ec)) latest = trim(read_file((dir / "LATEST").string()));
  } catch (const DataError&) {  // unreadable: no checkpoint is marked
  }
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (!entry.is_directory(ec) || name.rfind("step-", 0) != 0 || name.find(".tmp") != std::string::npos) continue;
    Checkpoint c;
    c.name = name;
    c.latest = name == latest;
    for (const auto& file : fs::directory_iterator(entry.path(), ec))
      if (file.is_regular_file(ec)) c.bytes += file.file_size(ec);
    try {
      const auto m = nlohmann::json::parse(read_file((entry.path() / "manifest.json").string()));
      c.step = m.value("step", int64_t{-1});
      c.epoch = m.value("epoch", int64_t{-1});
      c.world_size = m.value("world_size", int64_t{-1});
      c.recipe = m.value("recipe", std::string());
    } catch (const std::exception& e) {
      c.problem = std::string("manifest.json: ") + (dynamic_cast<const DataError*>(&e) ? "missing" : "unreadable");
    }
    if (c.step < 0) c.step = std::strtoll(name.c_str() + 5, nullptr, 10);
    out.push_back(std::move(c));
  }
  std::sort(out.begin(), out.end(), [](const Checkpoint& a, const Checkpoint& b) { return a.step < b.step; });
  return out;
}

std::vector<SampleGrid> read_samples(const fs::path& dir) {
  std::vector<SampleGrid> out;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  static const std::regex kName(R"((.*)step-([0-9]+)\.png)");
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    std::smatch m;
    if (!entry.is_regular_file(ec) || !std::regex_match(name, m, kName)) continue;
    out.push_back({m[1].str(), std::strtoll(m[2].str().c_str(), nullptr, 10), entry.path().string()});
  }
  std::sort(out.begin(), out.end(), [](const SampleGrid& a, const SampleGrid& b) {
    return a.kind != b.kind ? a.kind < b.kind : a.step < b.step;
  });
  return out;
}

std::vector<EvalFile> read_eval_files(const fs::path& dir) {
  std::vector<EvalFile> out;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (!entry.is_regular_file(ec) || entry.path().extension() != ".json") continue;
    EvalFile f;
    f.name = entry.path().filename().string();
    try {
      f.value = nlohmann::json::parse(read_file(entry.path().string()));
      if (!f.value.is_object()) f.problem = "not a JSON object";
    } catch (const std::exception&) {
      f.problem = "unreadable or not JSON";
    }
    out.push_back(std::move(f));
  }
  std::sort(out.begin(), out.end(), [](const EvalFile& a, const EvalFile& b) { return a.name < b.name; });
  return out;
}

}  // namespace

std::vector<IniEntry> parse_ini(const std::string& text, const std::string& source) {
  if (text.find('\0') != std::string::npos) throw DataError(at(source, "not a text file"));
  std::vector<IniEntry> out;
  std::string section;
  int64_t number = 0;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const std::string line = trim(text.substr(start, end - start));
    start = end + 1;
    ++number;
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line.front() == '[') {
      if (line.back() != ']') throw DataError(at(where(source, number), "unterminated section header"));
      section = trim(line.substr(1, line.size() - 2));
      continue;
    }
    const size_t eq = line.find('=');
    if (eq == std::string::npos || trim(line.substr(0, eq)).empty())
      throw DataError(at(where(source, number), "expected 'key = value' or '[section]'"));
    out.push_back({section, trim(line.substr(0, eq)), trim(line.substr(eq + 1))});
  }
  return out;
}

Metrics read_metrics(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError(at(path, fs::exists(path) ? "cannot be read" : "no such file"));
  Metrics m;
  std::map<std::string, SeriesBuilder> builders;
  std::string line, bad_line;
  int64_t number = 0, bad_number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (trim(line).empty()) continue;
    if (!bad_line.empty())  // a bad line followed by more records: not a torn last line
      throw DataError(at(where(path, bad_number), "not a JSON object: " + bad_line.substr(0, 60)));
    nlohmann::json r = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!r.is_object()) {
      bad_line = line, bad_number = number;
      continue;
    }
    ++m.records;
    if (!r.contains("step") || !r["step"].is_number()) continue;
    const bool evaluation = !r.contains("epoch");
    const double step = r["step"].get<double>();
    for (const auto& [key, v] : r.items()) {
      auto it = builders.find(key);
      if (it == builders.end()) {
        if (!is_series_value(key, v)) continue;
        it = builders.emplace(key, SeriesBuilder{}).first;
        it->second.series.key = key;
      }
      SeriesBuilder& b = it->second;
      if (!v.is_number() && !v.is_null()) continue;  // a string where numbers were: no point
      const double value = v.is_number() ? v.get<double>() : std::numeric_limits<double>::quiet_NaN();
      b.series.steps.push_back(step);
      b.series.values.push_back(std::isfinite(value) ? static_cast<float>(value)
                                                     : std::numeric_limits<float>::quiet_NaN());
      (evaluation ? b.in_eval : b.in_step) = true;
    }
    if (evaluation) {
      m.evaluations.push_back(std::move(r));
    } else {
      m.last_step = std::move(r);
    }
  }
  if (in.bad()) throw EnvironmentError(at(path, "read error"));
  m.truncated_last_line = !bad_line.empty();
  for (auto& [key, b] : builders) {
    b.series.evaluation = b.in_eval && !b.in_step;
    m.series.push_back(std::move(b.series));
  }
  // The recipe's values first, then throughput and learning rate, then evaluations (as launch/plot.py).
  auto rank = [](const Series& x) { return x.evaluation ? 2 : x.key == "images_per_s" || x.key == "lr" ? 1 : 0; };
  std::stable_sort(m.series.begin(), m.series.end(),
                   [&](const Series& a, const Series& b) { return rank(a) < rank(b); });
  return m;
}

RunContents read_run(const std::string& dir) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) throw DataError(at(dir, "no such run directory"));
  if (!fs::is_directory(dir, ec)) throw DataError(at(dir, "not a directory"));
  const fs::path root(dir);
  RunContents run;
  run.dir = dir;
  const std::string ini = (root / "config.ini").string();
  run.config = parse_ini(read_file(ini), ini);
  run.metrics = read_metrics((root / "metrics.jsonl").string());
  run.checkpoints = read_checkpoints(root / "checkpoints");
  run.samples = read_samples(root / "samples");
  run.eval_files = read_eval_files(root / "eval");
  return run;
}

}  // namespace gantry::report
