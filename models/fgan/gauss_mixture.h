// Ground truth for f-GAN's 1-D experiment (Nowozin et al. 2016, Sec. 4 / Table 3): fit a single Gaussian
// Q = N(mu, sigma^2) to the mixture P = 0.33 N(-1, 0.065) + 0.67 N(2, 2.0) (variances) by minimising
// D_f(P || Q) = ∫ q f(p/q) dx directly, by composite Simpson quadrature and Nelder-Mead.
// Also the quadrature helpers the tests use for variational bounds on other pairs of densities.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "fgan/divergence.h"

namespace gantry::fgan {

struct GaussComponent {
  double weight, mean, variance;
};

// The paper's P (inferred from its table, which it reproduces to 4 decimals).
std::vector<GaussComponent> paper_mixture();

double normal_pdf(double x, double mean, double sigma);
double mixture_pdf(const std::vector<GaussComponent>& mixture, double x);

// Composite Simpson on [lo, hi] with `intervals` (even) sub-intervals.
struct QuadratureGrid {
  double lo = -12.0, hi = 14.0;
  int64_t intervals = 20000;
};

double simpson(const std::function<double(double)>& g, const QuadratureGrid& grid);

// D_f(P || Q) = ∫ q f(p/q) dx on the grid, with the limits of q f(p/q) at p = 0 or q = 0.
double f_divergence(const Divergence& div, const std::function<double(double)>& p,
                    const std::function<double(double)>& q, const QuadratureGrid& grid);

struct GaussianFit {
  double mu = 0, sigma = 0;  // the minimiser theta* = (mu*, sigma*)
  double divergence = 0;     // D_f(P || N(mu*, sigma*^2))
  int evaluations = 0;       // objective evaluations used by Nelder-Mead
};

// Minimises D_f(P || N(mu, sigma^2)) over (mu, log sigma) by Nelder-Mead (restarted until it stops
// improving), from the moment-matched Gaussian. P defaults to paper_mixture().
GaussianFit fit_gaussian(const Divergence& div, const QuadratureGrid& grid = {});
GaussianFit fit_gaussian(const Divergence& div, const std::vector<GaussComponent>& mixture, const QuadratureGrid& grid);

}  // namespace gantry::fgan
