// The f-GAN recipe (Nowozin, Cseke & Tomioka 2016): variational divergence minimisation with any
// f-divergence, by the single-step method (Algorithm 1) or alternating updates. Models: the paper's
// MNIST MLP pair, DCGAN networks for LSUN-style images, and the 1-D Gaussian fitted to a mixture (with
// its own data source). See models/fgan/README.md and experiments/fgan_*.ini.
#pragma once

#include "train/recipe.h"

namespace gantry::fgan {

RecipeInfo recipe_info();

}  // namespace gantry::fgan
