// The classifier recipe: cross-entropy on a labelled dataset, Adam; its trained network gives the
// feature space of gantry's GAN scores. See models/classifier/README.md and
// experiments/classifier_fashion_mnist.ini.
#pragma once

#include "train/recipe.h"

namespace gantry::classifier {

RecipeInfo recipe_info();

}  // namespace gantry::classifier
