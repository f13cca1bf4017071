// Loss curves as inline SVG for the run report: one chart per series, with axes, ticks and grid lines,
// drawn from at most a few points per pixel column however long the run (metrics.jsonl may hold 10^6
// lines), so a report stays small. Non-finite values break the line.
#pragma once

#include <string>
#include <vector>

#include "report/run_contents.h"

namespace gantry::report {

struct ChartPoint {
  double x, y;  // y NaN: a break in the line
};

// At most ~2 points per bucket: `buckets` equal step ranges, each keeping its lowest and highest finite
// values in file order, followed by a break when the bucket held a non-finite value. Series with at most
// 2 * buckets points come back whole.
std::vector<ChartPoint> downsample(const std::vector<double>& steps, const std::vector<float>& values, int buckets);

// "Nice" tick positions (1, 2, 5 × 10^k apart) covering [lo, hi], about `target` of them.
std::vector<double> nice_ticks(double lo, double hi, int target);

// `<svg class="curve" data-series="KEY" ...>`: the series against the step, on a step axis covering at
// least [first_step, last_step] (the report gives every chart the run's range); evaluation series as points.
std::string svg_chart(const Series& series, int buckets, double first_step, double last_step);

}  // namespace gantry::report
