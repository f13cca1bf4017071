// The run report (`gantry report RUN_DIR`): one self-contained HTML page of a run directory — summary,
// configuration, loss curves (inline SVG, one per series: see run_contents.h for the rule), the newest
// sample grids (PNG bytes embedded as base64 data URIs), evaluations and checkpoints. The page refers to
// nothing outside itself (no scripts, fonts, style sheets or images by URL), so it can be copied off a
// cluster and opened anywhere. Every text taken from the run's files is HTML-escaped.
#pragma once

#include <map>
#include <string>

#include "report/run_contents.h"

namespace gantry::report {

struct ReportOptions {
  std::map<std::string, std::string> defaults;  // "section.key" → default value: values that differ are marked
  int chart_buckets = 300;                      // a curve keeps at most ~2 points per bucket
  int sample_steps = 3;                         // the newest steps shown of each kind of sample grid
};

// The page.
std::string render_report(const RunContents& run, const ReportOptions& options);

// & < > " ' as character references.
std::string html_escape(const std::string& text);
// RFC 4648 base64 with padding.
std::string base64(const std::string& bytes);

}  // namespace gantry::report
