// The DCGAN recipe: alternating updates of discriminator and generator, each reducing only its own
// gradients. See models/dcgan/README.md and experiments/dcgan_*.ini.
#pragma once

#include "train/recipe.h"

namespace gantry::dcgan {

RecipeInfo recipe_info();

}  // namespace gantry::dcgan
