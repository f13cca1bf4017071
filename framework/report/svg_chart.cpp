#include "report/svg_chart.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <set>

#include "report/html_report.h"

namespace gantry::report {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr int kWidth = 400, kHeight = 230;                       // px
constexpr int kLeft = 62, kRight = 26, kTop = 26, kBottom = 34;  // plot area margins, px
constexpr int kMarkersUpTo = 40;                                 // points drawn as circles up to this many

std::string fmt(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

// Tick labels: whole numbers as such (steps), others with the fewest significant digits (up to 10) that
// tell every tick apart.
std::vector<std::string> tick_labels(const std::vector<double>& ticks) {
  std::vector<std::string> labels;
  if (std::all_of(ticks.begin(), ticks.end(), [](double t) { return t == std::round(t) && std::abs(t) < 1e12; })) {
    for (double t : ticks) labels.push_back(fmt("%.0f", t));
    return labels;
  }
  for (int digits = 3; digits <= 10; ++digits) {
    labels.clear();
    std::set<std::string> seen;
    for (double t : ticks) {
      std::string s = fmt(("%." + std::to_string(digits) + "g").c_str(), std::abs(t) < 1e-300 ? 0.0 : t);
      seen.insert(s);
      labels.push_back(std::move(s));
    }
    if (seen.size() == ticks.size()) break;
  }
  return labels;
}

}  // namespace

std::vector<ChartPoint> downsample(const std::vector<double>& steps, const std::vector<float>& values, int buckets) {
  std::vector<ChartPoint> out;
  const size_t n = std::min(steps.size(), values.size());
  buckets = std::max(buckets, 1);
  if (n <= 2 * static_cast<size_t>(buckets)) {
    for (size_t i = 0; i < n; ++i) out.push_back({steps[i], std::isfinite(values[i]) ? values[i] : kNaN});
    return out;
  }
  const auto [lo_it, hi_it] = std::minmax_element(steps.begin(), steps.begin() + static_cast<ptrdiff_t>(n));
  const double lo = *lo_it, span = std::max(*hi_it - *lo_it, 1e-300);
  struct Bucket {
    size_t min = SIZE_MAX, max = SIZE_MAX;
    bool gap = false;
  };
  std::vector<Bucket> b(static_cast<size_t>(buckets));
  for (size_t i = 0; i < n; ++i) {
    const size_t k = std::min(static_cast<size_t>((steps[i] - lo) / span * buckets), b.size() - 1);
    Bucket& x = b[k];
    if (!std::isfinite(values[i])) {
      x.gap = true;
    } else {
      if (x.min == SIZE_MAX || values[i] < values[x.min]) x.min = i;
      if (x.max == SIZE_MAX || values[i] > values[x.max]) x.max = i;
    }
  }
  for (const Bucket& x : b) {
    if (x.min != SIZE_MAX) {
      const size_t first = std::min(x.min, x.max), second = std::max(x.min, x.max);
      out.push_back({steps[first], values[first]});
      if (second != first) out.push_back({steps[second], values[second]});
    }
    if (x.gap) out.push_back({steps[x.min == SIZE_MAX ? 0 : x.min], kNaN});
  }
  return out;
}

std::vector<double> nice_ticks(double lo, double hi, int target) {
  if (!(hi > lo)) return {lo};
  const double raw = (hi - lo) / std::max(target, 1);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * mag >= raw) {
      step = m * mag;
      break;
    }
  std::vector<double> ticks;
  for (double t = std::ceil(lo / step - 1e-9) * step; t <= hi + step * 1e-9 && ticks.size() < 50; t += step)
    ticks.push_back(t);
  return ticks;
}

std::string svg_chart(const Series& series, int buckets, double first_step, double last_step) {
  const std::vector<ChartPoint> points = downsample(series.steps, series.values, buckets);
  double x0 = std::numeric_limits<double>::infinity(), x1 = -x0, y0 = x0, y1 = -x0;
  if (std::isfinite(first_step) && std::isfinite(last_step)) x0 = first_step, x1 = last_step;
  size_t finite = 0;
  for (const ChartPoint& p : points) {
    x0 = std::min(x0, p.x), x1 = std::max(x1, p.x);
    if (std::isnan(p.y)) continue;
    y0 = std::min(y0, p.y), y1 = std::max(y1, p.y);
    ++finite;
  }
  if (finite == 0) y0 = 0, y1 = 1;
  if (!std::isfinite(x0) || !std::isfinite(x1)) x0 = 0, x1 = 1;
  if (x1 <= x0) x0 -= 1, x1 += 1;
  if (y1 <= y0) {
    const double pad = std::max(std::abs(y0) * 0.05, 1e-6);
    y0 -= pad, y1 += pad;
  }
  const double pw = kWidth - kLeft - kRight, ph = kHeight - kTop - kBottom;
  auto sx = [&](double x) { return kLeft + (x - x0) / (x1 - x0) * pw; };
  auto sy = [&](double y) { return kTop + (y1 - y) / (y1 - y0) * ph; };

  const std::string key = html_escape(series.key);
  std::string s = "<svg class=\"curve\" data-series=\"" + key + "\" xmlns=\"http://www.w3.org/2000/svg\" width=\"" +
                  std::to_string(kWidth) + "\" height=\"" + std::to_string(kHeight) + "\" viewBox=\"0 0 " +
                  std::to_string(kWidth) + " " + std::to_string(kHeight) + "\" role=\"img\">\n";
  s += "<title>" + key + "</title>\n";
  s += "<text x=\"" + std::to_string(kLeft) + "\" y=\"16\" class=\"t\">" + key +
       (series.evaluation ? " (evaluation)" : "") + "</text>\n";
  // Grid lines and tick labels.
  const std::vector<double> yt = nice_ticks(y0, y1, 5), xt = nice_ticks(x0, x1, 5);
  const std::vector<std::string> yl = tick_labels(yt), xl = tick_labels(xt);
  for (size_t i = 0; i < yt.size(); ++i) {
    const std::string y = fmt("%.1f", sy(yt[i]));
    s += "<line class=\"g\" x1=\"" + std::to_string(kLeft) + "\" x2=\"" + std::to_string(kWidth - kRight) + "\" y1=\"" +
         y + "\" y2=\"" + y + "\"/><text class=\"yl\" x=\"" + std::to_string(kLeft - 4) + "\" y=\"" +
         fmt("%.1f", sy(yt[i]) + 3.5) + "\">" + yl[i] + "</text>\n";
  }
  for (size_t i = 0; i < xt.size(); ++i) {
    const std::string x = fmt("%.1f", sx(xt[i]));
    s += "<line class=\"a\" x1=\"" + x + "\" x2=\"" + x + "\" y1=\"" + std::to_string(kHeight - kBottom) + "\" y2=\"" +
         std::to_string(kHeight - kBottom + 4) + "\"/><text class=\"xl\" x=\"" + x + "\" y=\"" +
         std::to_string(kHeight - kBottom + 15) + "\">" + xl[i] + "</text>\n";
  }
  s += "<path class=\"a\" d=\"M" + std::to_string(kLeft) + " " + std::to_string(kTop) + "V" +
       std::to_string(kHeight - kBottom) + "H" + std::to_string(kWidth - kRight) + "\"/>\n";
  s += "<text class=\"xl\" x=\"" + fmt("%.1f", kLeft + pw / 2) + "\" y=\"" + std::to_string(kHeight - 4) +
       "\">step</text>\n";
  // The curve: a path broken at gaps; isolated points and short series as circles.
  std::string d, dots;
  const bool markers = series.evaluation || finite <= kMarkersUpTo;
  for (size_t i = 0; i < points.size(); ++i) {
    const ChartPoint& p = points[i];
    if (std::isnan(p.y)) continue;
    const bool after_gap = i == 0 || std::isnan(points[i - 1].y);
    const bool before_gap = i + 1 == points.size() || std::isnan(points[i + 1].y);
    const std::string xy = fmt("%.1f", sx(p.x)) + " " + fmt("%.1f", sy(p.y));
    d += (after_gap ? "M" : "L") + xy;
    if (markers || (after_gap && before_gap))
      dots += "<circle cx=\"" + fmt("%.1f", sx(p.x)) + "\" cy=\"" + fmt("%.1f", sy(p.y)) + "\" r=\"2.2\"/>";
  }
  const char* cls = series.evaluation ? "e" : "c";
  if (!d.empty()) s += std::string("<path class=\"") + cls + "\" d=\"" + d + "\"/>\n";
  if (!dots.empty()) s += std::string("<g class=\"") + cls + "d\">" + dots + "</g>\n";
  if (finite == 0) s += "<text class=\"xl\" x=\"200\" y=\"110\">no finite values</text>\n";
  s += "</svg>\n";
  return s;
}

}  // namespace gantry::report
