#include "fgan/gauss_mixture.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <stdexcept>

namespace gantry::fgan {
namespace {

constexpr double kPi = 3.14159265358979323846;

void check_grid(const QuadratureGrid& grid) {
  if (grid.intervals < 2 || grid.intervals % 2 != 0 || !(grid.hi > grid.lo))
    throw std::invalid_argument("QuadratureGrid needs lo < hi and an even number (>= 2) of intervals");
}

// Simpson weights times h/3 at the grid's nodes.
std::vector<double> simpson_weights(const QuadratureGrid& grid) {
  check_grid(grid);
  const double h = (grid.hi - grid.lo) / static_cast<double>(grid.intervals);
  std::vector<double> w(static_cast<size_t>(grid.intervals + 1));
  for (size_t i = 0; i < w.size(); ++i) {
    const bool end = i == 0 || i + 1 == w.size();
    w[i] = (end ? 1.0 : (i % 2 == 1 ? 4.0 : 2.0)) * h / 3.0;
  }
  return w;
}

double node(const QuadratureGrid& grid, size_t i) {
  return grid.lo + (grid.hi - grid.lo) * static_cast<double>(i) / static_cast<double>(grid.intervals);
}

// Minimal Nelder-Mead in 2-D (standard coefficients 1, 2, 0.5, 0.5).
using Point = std::array<double, 2>;

struct NelderMeadResult {
  Point x;
  double value;
  int evaluations;
};

NelderMeadResult nelder_mead(const std::function<double(const Point&)>& fn, Point start, double step,
                             int max_evaluations, double tolerance) {
  std::array<Point, 3> s = {start, Point{start[0] + step, start[1]}, Point{start[0], start[1] + step}};
  std::array<double, 3> v{};
  int evals = 0;
  auto eval = [&](const Point& p) {
    ++evals;
    const double y = fn(p);
    return std::isnan(y) ? std::numeric_limits<double>::infinity() : y;
  };
  for (int i = 0; i < 3; ++i) v[i] = eval(s[i]);
  while (evals < max_evaluations) {
    std::array<int, 3> order = {0, 1, 2};
    std::sort(order.begin(), order.end(), [&](int a, int b) { return v[a] < v[b]; });
    const int best = order[0], mid = order[1], worst = order[2];
    const double size = std::max(std::abs(s[worst][0] - s[best][0]) + std::abs(s[worst][1] - s[best][1]),
                                 std::abs(s[mid][0] - s[best][0]) + std::abs(s[mid][1] - s[best][1]));
    if (std::abs(v[worst] - v[best]) <= tolerance * (1.0 + std::abs(v[best])) && size < 1e-9) break;
    const Point c = {0.5 * (s[best][0] + s[mid][0]), 0.5 * (s[best][1] + s[mid][1])};
    auto along = [&](double t) { return Point{c[0] + t * (s[worst][0] - c[0]), c[1] + t * (s[worst][1] - c[1])}; };
    const Point r = along(-1.0);
    const double vr = eval(r);
    if (vr < v[best]) {
      const Point e = along(-2.0);
      const double ve = eval(e);
      if (ve < vr) {
        s[worst] = e, v[worst] = ve;
      } else {
        s[worst] = r, v[worst] = vr;
      }
    } else if (vr < v[mid]) {
      s[worst] = r, v[worst] = vr;
    } else {
      const Point k = vr < v[worst] ? along(-0.5) : along(0.5);
      const double vk = eval(k);
      if (vk < std::min(vr, v[worst])) {
        s[worst] = k, v[worst] = vk;
      } else {  // shrink towards the best vertex
        for (int i : {mid, worst}) {
          s[i] = Point{0.5 * (s[i][0] + s[best][0]), 0.5 * (s[i][1] + s[best][1])};
          v[i] = eval(s[i]);
        }
      }
    }
  }
  const int best = static_cast<int>(std::min_element(v.begin(), v.end()) - v.begin());
  return {s[best], v[best], evals};
}

}  // namespace

std::vector<GaussComponent> paper_mixture() {
  return {{0.33, -1.0, 0.065}, {0.67, 2.0, 2.0}};
}

double normal_pdf(double x, double mean, double sigma) {
  const double z = (x - mean) / sigma;
  return std::exp(-0.5 * z * z) / (sigma * std::sqrt(2.0 * kPi));
}

double mixture_pdf(const std::vector<GaussComponent>& mixture, double x) {
  double p = 0.0;
  for (const auto& c : mixture) p += c.weight * normal_pdf(x, c.mean, std::sqrt(c.variance));
  return p;
}

double simpson(const std::function<double(double)>& g, const QuadratureGrid& grid) {
  const auto w = simpson_weights(grid);
  double sum = 0.0;
  for (size_t i = 0; i < w.size(); ++i) sum += w[i] * g(node(grid, i));
  return sum;
}

double f_divergence(const Divergence& div, const std::function<double(double)>& p,
                    const std::function<double(double)>& q, const QuadratureGrid& grid) {
  return simpson([&](double x) { return div.perspective(p(x), q(x)); }, grid);
}

GaussianFit fit_gaussian(const Divergence& div, const QuadratureGrid& grid) {
  return fit_gaussian(div, paper_mixture(), grid);
}

GaussianFit fit_gaussian(const Divergence& div, const std::vector<GaussComponent>& mixture,
                         const QuadratureGrid& grid) {
  // P and the weights are fixed: tabulate them once; each objective call then costs one pass.
  const auto w = simpson_weights(grid);
  std::vector<double> xs(w.size()), ps(w.size());
  double mean = 0.0, second = 0.0;
  for (size_t i = 0; i < w.size(); ++i) xs[i] = node(grid, i), ps[i] = mixture_pdf(mixture, xs[i]);
  for (const auto& c : mixture) mean += c.weight * c.mean, second += c.weight * (c.variance + c.mean * c.mean);
  const double sd = std::sqrt(second - mean * mean);

  auto objective = [&](const Point& theta) {
    const double mu = theta[0], sigma = std::exp(theta[1]);
    double sum = 0.0;
    for (size_t i = 0; i < w.size(); ++i) sum += w[i] * div.perspective(ps[i], normal_pdf(xs[i], mu, sigma));
    return sum;
  };

  GaussianFit fit;
  NelderMeadResult r{{mean, std::log(sd)}, objective({mean, std::log(sd)}), 1};
  double step = 0.5;
  for (int restart = 0; restart < 6; ++restart) {  // restart from the best point with a fresh simplex
    const auto next = nelder_mead(objective, r.x, step, 2000, 1e-14);
    fit.evaluations += next.evaluations;
    const bool improved = next.value < r.value - 1e-13;
    if (next.value <= r.value) r = NelderMeadResult{next.x, next.value, 0};
    if (!improved && restart > 0) break;
    step = 0.05;
  }
  fit.mu = r.x[0];
  fit.sigma = std::exp(r.x[1]);
  fit.divergence = r.value;
  return fit;
}

}  // namespace gantry::fgan
