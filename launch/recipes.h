#pragma once

#include <vector>

#include "train/recipe.h"

namespace gantry::cli {

const std::vector<RecipeInfo>& all_recipes();

}  // namespace gantry::cli
