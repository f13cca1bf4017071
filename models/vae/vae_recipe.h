// The VAE recipe (Kingma & Welling 2013): negative ELBO with the reparameterisation trick, Adam.
// See models/vae/README.md and experiments/vae_fashion_mnist.ini.
#pragma once

#include "train/recipe.h"

namespace gantry::vae {

RecipeInfo recipe_info();

}  // namespace gantry::vae
