// gantry report RUN_DIR [--out FILE] [--samples N]: one self-contained HTML page of a run
// (framework/report/html_report.h), written atomically. Needs no MPI; safe on a run still training.
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>

#include "cli.h"
#include "core/errors.h"
#include "core/fs.h"
#include "report/html_report.h"
#include "run_setup.h"

namespace gantry::cli {

namespace {

const char* kReportUsage =
    "usage: gantry report RUN_DIR [--out FILE] [--samples N]\n"
    "  RUN_DIR        a run directory (config.ini, metrics.jsonl; samples/, eval/, checkpoints/ if present)\n"
    "  --out FILE     the HTML page written (default RUN_DIR/report.html)\n"
    "  --samples N    the newest N sample grids of each kind shown (default 3)\n"
    "One HTML file with everything inside it (curves as SVG, images as data URIs): copy it anywhere.\n"
    "Exit codes: 2 usage, 3 the run directory, its config.ini or metrics.jsonl missing or malformed,\n"
    "5 the page cannot be written.\n";

}  // namespace

int report_command(const Args& args) {
  std::map<std::string, std::string> options_given;  // out, samples
  std::string dir;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") {
      std::fputs(kReportUsage, stdout);
      return 0;
    }
    if (a.rfind("-", 0) != 0) {
      if (!dir.empty()) throw UsageError(a + ": one run directory only (see gantry report --help)");
      dir = a;
      continue;
    }
    std::string key = a.substr(a.rfind("--", 0) == 0 ? 2 : 1), value;
    const size_t eq = key.find('=');
    if (eq != std::string::npos) value = key.substr(eq + 1), key = key.substr(0, eq);
    if (key != "out" && key != "samples") throw UsageError(a + ": unknown option (see gantry report --help)");
    if (eq == std::string::npos) {
      if (i + 1 >= args.size()) throw UsageError(a + ": missing value");
      value = args[++i];
    }
    options_given[key] = value;
  }
  if (dir.empty()) throw UsageError("RUN_DIR: required (gantry report RUN_DIR [--out FILE])");
  auto get = [&](const std::string& key, const std::string& fallback) {
    auto it = options_given.find(key);
    return it == options_given.end() ? fallback : it->second;
  };
  report::ReportOptions options;
  const std::string samples = get("samples", "3");
  if (samples.empty() || samples.size() > 4 || samples.find_first_not_of("0123456789") != std::string::npos)
    throw UsageError("--samples: expected a count 0-9999, got '" + samples + "'");
  options.sample_steps = std::stoi(samples);
  const Schema schema = full_schema();
  for (const KeySpec& k : schema.keys()) options.defaults[k.key] = k.default_value;

  const report::RunContents run = report::read_run(dir);
  const std::string out = get("out", (std::filesystem::path(dir) / "report.html").string());
  const std::filesystem::path parent = std::filesystem::path(out).parent_path();
  if (!parent.empty() && !std::filesystem::is_directory(parent))
    throw EnvironmentError(at(out, "no such directory " + parent.string()));
  const std::string page = report::render_report(run, options);
  write_file_atomic(out, page);
  std::printf("%s: %zu curves, %zu sample grids, %zu checkpoints, %.0f KB\n", out.c_str(), run.metrics.series.size(),
              run.samples.size(), run.checkpoints.size(), static_cast<double>(page.size()) / 1024.0);
  return 0;
}

}  // namespace gantry::cli
