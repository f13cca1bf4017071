#include "report/html_report.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <set>
#include <vector>

#include "core/fs.h"
#include "report/svg_chart.h"

namespace gantry::report {

namespace {

const char* kStyle = R"(
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd}
nav a{margin-right:12px}table{border-collapse:collapse;margin:4px 0}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.diff td{background:#fff6d8}.note{color:#666}.warn{color:#a33}
.curves{display:flex;flex-wrap:wrap;gap:8px}svg.curve{border:1px solid #eee;background:#fff}
svg .t{font-size:13px;font-weight:600;fill:#222}svg .xl{font-size:10px;text-anchor:middle;fill:#555}
svg .yl{font-size:10px;text-anchor:end;fill:#555}svg .g{stroke:#eee}svg .a{stroke:#999;fill:none}
svg .c{stroke:#1f77b4;stroke-width:1.3;fill:none}svg .e{stroke:#d62728;stroke-width:1.3;fill:none}
svg .cd{fill:#1f77b4}svg .ed{fill:#d62728}
.grids{display:flex;flex-wrap:wrap;gap:16px}figure{margin:0}
figure img{min-width:320px;max-width:100%;image-rendering:pixelated;border:1px solid #ddd}
figcaption{font-size:12px;color:#555}.wide{overflow-x:auto}
)";

std::string num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

std::string cell(const nlohmann::json& v) {
  if (v.is_number()) return "<td class=\"n\">" + num(v.get<double>()) + "</td>";
  if (v.is_string()) return "<td>" + html_escape(v.get<std::string>()) + "</td>";
  if (v.is_null()) return "<td class=\"n\">—</td>";
  return "<td>" + html_escape(v.dump()) + "</td>";
}

std::string duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "—";
  const long s = std::lround(seconds);
  char buf[64];
  if (s >= 3600) {
    std::snprintf(buf, sizeof buf, "%ld h %02ld min", s / 3600, s / 60 % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%ld min %02ld s", s / 60, s % 60);
  }
  return buf;
}

std::string row(const std::string& name, const std::string& value_html) {
  return "<tr><th>" + html_escape(name) + "</th><td>" + value_html + "</td></tr>\n";
}

std::string config_value(const RunContents& run, const std::string& section, const std::string& key) {
  for (const IniEntry& e : run.config)
    if (e.section == section && e.key == key) return e.value;
  return "";
}

std::string summary(const RunContents& run) {
  const Metrics& m = run.metrics;
  std::string s = "<table>\n";
  const std::string recipe = config_value(run, "run", "recipe");
  s += row("recipe", recipe.empty() ? "—" : html_escape(recipe));
  const std::string steps = config_value(run, "train", "steps");
  std::string progress = m.last_step.is_object() ? std::to_string(std::llround(m.last_step.value("step", 0.0)))
                                                 : std::string("none logged");
  if (!steps.empty()) progress += " of " + html_escape(steps);
  s += row("steps", progress);
  if (m.last_step.is_object()) {
    if (m.last_step.contains("epoch") && m.last_step["epoch"].is_number())
      s += row("epoch", num(m.last_step["epoch"].get<double>()));
    s += row("time at the last record", duration(m.last_step.value("time", -1.0)));
  }
  // World size: the newest checkpoint's manifest, else the newest evaluation file's.
  std::string world = "—";
  for (const Checkpoint& c : run.checkpoints)
    if (c.world_size > 0) world = std::to_string(c.world_size) + " (checkpoint " + html_escape(c.name) + ")";
  if (world == "—")
    for (const EvalFile& f : run.eval_files)
      if (f.value.is_object() && f.value.contains("world_size") && f.value["world_size"].is_number())
        world = num(f.value["world_size"].get<double>()) + " (" + html_escape(f.name) + ")";
  s += row("world size", world);
  if (m.last_step.is_object()) {
    std::string last;
    for (const auto& [k, v] : m.last_step.items())
      if (k != "step" && k != "epoch" && k != "time" && v.is_number())
        last += html_escape(k) + " " + num(v.get<double>()) + " &nbsp; ";
    s += row("last logged", last);
  }
  std::string records = std::to_string(m.records) + " records, " + std::to_string(m.evaluations.size()) +
                        " evaluations, " + std::to_string(m.series.size()) + " series";
  if (m.truncated_last_line)
    records +=
        " <span class=\"warn\">(the last line is incomplete — the run may still be writing — and was "
        "skipped)</span>";
  s += row("metrics.jsonl", records);
  s += "</table>\n";
  return s;
}

std::string curves(const RunContents& run, const ReportOptions& o) {
  const Metrics& m = run.metrics;
  if (m.series.empty()) return "<p class=\"note\">metrics.jsonl holds no numeric values yet.</p>\n";
  std::string s =
      "<p class=\"note\">One chart per numeric key of metrics.jsonl (step, epoch and time aside) against the step; "
      "evaluations in red. Long runs are drawn from the lowest and highest value of each of " +
      std::to_string(o.chart_buckets) +
      " step ranges; gaps are values that were not finite.</p>\n<div class=\"curves\">\n";
  double first = std::numeric_limits<double>::infinity(), last = -first;  // one step axis for every chart
  for (const Series& series : m.series)
    for (double step : series.steps) first = std::min(first, step), last = std::max(last, step);
  for (const Series& series : m.series) s += svg_chart(series, o.chart_buckets, first, last);
  return s + "</div>\n";
}

bool is_png(const std::string& bytes) {
  return bytes.compare(0, 8, "\x89PNG\r\n\x1a\n") == 0;
}

std::string samples(const RunContents& run, const ReportOptions& o) {
  if (run.samples.empty()) return "<p class=\"note\">No sample grids (samples/ is empty or absent).</p>\n";
  std::set<std::string> kinds;
  for (const SampleGrid& g : run.samples) kinds.insert(g.kind);
  std::string s;
  for (const std::string& kind : kinds) {
    std::vector<const SampleGrid*> grids;
    for (const SampleGrid& g : run.samples)
      if (g.kind == kind) grids.push_back(&g);
    const size_t first = grids.size() > static_cast<size_t>(o.sample_steps) ? grids.size() - o.sample_steps : 0;
    s += "<h3>" + (kind.empty() ? std::string("samples") : html_escape(kind + "step-*")) + "</h3>\n";
    s += "<div class=\"grids\">\n";
    for (size_t i = first; i < grids.size(); ++i) {
      const std::string name = std::filesystem::path(grids[i]->path).filename().string();
      std::string bytes;
      try {
        bytes = read_file(grids[i]->path);
      } catch (const std::exception&) {
      }
      s += "<figure>";
      if (is_png(bytes)) {
        s += "<img alt=\"" + html_escape(name) + "\" src=\"data:image/png;base64," + base64(bytes) + "\">";
      } else {
        s += "<p class=\"warn\">not a readable PNG</p>";
      }
      s += "<figcaption>samples/" + html_escape(name) + " (step " + std::to_string(grids[i]->step) +
           ")</figcaption></figure>\n";
    }
    s += "</div>\n";
    if (first > 0) s += "<p class=\"note\">" + std::to_string(first) + " older grid(s) of this kind not shown.</p>\n";
  }
  return s;
}

constexpr size_t kMaxTableRows = 100;  // the newest rows of an evaluation table

// A table of JSON objects (the newest kMaxTableRows): `fixed` columns first, then the union of the keys of
// `values_of(record)`.
template <typename ValuesOf>
std::string json_table(const std::vector<nlohmann::json>& all, const std::vector<std::string>& fixed,
                       ValuesOf values_of) {
  const size_t skipped = all.size() > kMaxTableRows ? all.size() - kMaxTableRows : 0;
  const std::vector<nlohmann::json> records(all.begin() + static_cast<ptrdiff_t>(skipped), all.end());
  std::vector<std::string> keys;
  for (const auto& r : records)
    for (const auto& [k, v] : values_of(r).items())
      if (std::find(fixed.begin(), fixed.end(), k) == fixed.end() &&
          std::find(keys.begin(), keys.end(), k) == keys.end())
        keys.push_back(k);
  std::sort(keys.begin(), keys.end());
  std::string s = "<div class=\"wide\"><table>\n<tr>";
  for (const auto& k : fixed) s += "<th>" + html_escape(k) + "</th>";
  for (const auto& k : keys) s += "<th>" + html_escape(k) + "</th>";
  s += "</tr>\n";
  for (const auto& r : records) {
    s += "<tr>";
    for (const auto& k : fixed) s += r.contains(k) ? cell(r[k]) : "<td></td>";
    const nlohmann::json& values = values_of(r);
    for (const auto& k : keys) s += values.contains(k) ? cell(values[k]) : "<td></td>";
    s += "</tr>\n";
  }
  s += "</table></div>\n";
  if (skipped > 0) s += "<p class=\"note\">" + std::to_string(skipped) + " older row(s) not shown.</p>\n";
  return s;
}

std::string evaluations(const RunContents& run) {
  std::string s;
  if (!run.eval_files.empty()) {
    s += "<h3>gantry eval (eval/*.json)</h3>\n";
    std::vector<nlohmann::json> records;
    for (const EvalFile& f : run.eval_files) {
      nlohmann::json r = f.value.is_object() ? f.value : nlohmann::json::object();
      r["file"] = f.name + (f.problem.empty() ? "" : ": " + f.problem);
      if (!r.contains("values") || !r["values"].is_object()) r["values"] = nlohmann::json::object();
      records.push_back(std::move(r));
    }
    s += json_table(records, {"file", "step", "world_size", "checkpoint", "held_out", "features"},
                    [](const nlohmann::json& r) -> const nlohmann::json& { return r["values"]; });
  }
  if (!run.metrics.evaluations.empty()) {
    s += "<h3>during training (metrics.jsonl)</h3>\n";
    s += json_table(run.metrics.evaluations, {"step", "time", "features"},
                    [](const nlohmann::json& r) -> const nlohmann::json& { return r; });
  }
  if (s.empty())
    s = "<p class=\"note\">No evaluations (no eval/ directory and no evaluation records in metrics.jsonl).</p>\n";
  return s;
}

std::string checkpoints(const RunContents& run) {
  if (run.checkpoints.empty()) return "<p class=\"note\">No checkpoints (checkpoints/ is empty or absent).</p>\n";
  std::string s =
      "<table>\n<tr><th>checkpoint</th><th>step</th><th>epoch</th><th>world size</th><th>recipe</th><th>on "
      "disk</th><th></th></tr>\n";
  for (const Checkpoint& c : run.checkpoints) {
    auto n = [](int64_t v) { return v < 0 ? std::string("—") : std::to_string(v); };
    s += "<tr><td>" + html_escape(c.name) + "</td><td class=\"n\">" + n(c.step) + "</td><td class=\"n\">" + n(c.epoch) +
         "</td><td class=\"n\">" + n(c.world_size) + "</td><td>" + html_escape(c.recipe) + "</td><td class=\"n\">" +
         num(static_cast<double>(c.bytes) / 1e6) + " MB</td><td>" + (c.latest ? "<b>LATEST</b>" : "") +
         (c.problem.empty() ? "" : "<span class=\"warn\">" + html_escape(c.problem) + "</span>") + "</td></tr>\n";
  }
  return s + "</table>\n";
}

std::string configuration(const RunContents& run, const ReportOptions& o) {
  if (run.config.empty()) return "<p class=\"note\">config.ini holds no keys.</p>\n";
  std::string s;
  if (!o.defaults.empty()) s += "<p class=\"note\">* and shading: differs from this gantry's default.</p>\n";
  s += "<table>\n<tr><th>key</th><th>value</th><th>default</th></tr>\n";
  for (const IniEntry& e : run.config) {
    const std::string key = e.section.empty() ? e.key : e.section + "." + e.key;
    const auto it = o.defaults.find(key);
    const bool diff = it != o.defaults.end() && it->second != e.value;
    s += std::string(diff ? "<tr class=\"diff\">" : "<tr>") + "<td>" + html_escape(key) + "</td><td>" +
         html_escape(e.value) + (diff ? " *" : "") + "</td><td>" +
         (it == o.defaults.end() ? "" : html_escape(it->second)) + "</td></tr>\n";
  }
  return s + "</table>\n";
}

}  // namespace

std::string html_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string base64(const std::string& bytes) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  for (size_t i = 0; i < bytes.size(); i += 3) {
    const size_t n = std::min<size_t>(3, bytes.size() - i);
    uint32_t v = 0;
    for (size_t k = 0; k < 3; ++k) v = v << 8 | (k < n ? static_cast<uint8_t>(bytes[i + k]) : 0u);
    for (size_t k = 0; k < 4; ++k) out += k <= n ? kAlphabet[v >> (18 - 6 * k) & 63] : '=';
  }
  return out;
}

std::string render_report(const RunContents& run, const ReportOptions& o) {
  const std::string name = std::filesystem::path(run.dir).lexically_normal().filename().string();
  const std::string title = html_escape(name.empty() || name == "." ? run.dir : name);
  std::string s = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>" + title +
                  " — gantry run report</title>\n<style>" + kStyle + "</style>\n</head>\n<body>\n";
  s += "<h1>" + title + "</h1>\n<p class=\"note\">gantry run report of " + html_escape(run.dir) + "</p>\n";
  s += "<nav><a href=\"#curves\">curves</a><a href=\"#samples\">samples</a><a href=\"#evaluations\">evaluations</a>"
       "<a href=\"#checkpoints\">checkpoints</a><a href=\"#config\">configuration</a></nav>\n";
  s += "<h2 id=\"summary\">Summary</h2>\n" + summary(run);
  s += "<h2 id=\"curves\">Curves</h2>\n" + curves(run, o);
  s += "<h2 id=\"samples\">Samples</h2>\n" + samples(run, o);
  s += "<h2 id=\"evaluations\">Evaluations</h2>\n" + evaluations(run);
  s += "<h2 id=\"checkpoints\">Checkpoints</h2>\n" + checkpoints(run);
  s += "<h2 id=\"config\">Configuration (config.ini)</h2>\n" + configuration(run, o);
  return s + "</body>\n</html>\n";
}

}  // namespace gantry::report
