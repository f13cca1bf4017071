// The CycleGAN recipe: unpaired translation between domain A (data stream "train": data.path) and
// domain B (stream "b": data.b_path). Each step updates both generators in one update (one reduction),
// then both discriminators, which also see generated images from per-rank history pools. See
// models/cyclegan/README.md and experiments/cyclegan_*.ini.
#pragma once

#include "train/recipe.h"

namespace gantry::cyclegan {

inline const std::string kStreamB = "b";  // domain B; domain A is the main stream (kMainStream)

RecipeInfo recipe_info();

}  // namespace gantry::cyclegan
