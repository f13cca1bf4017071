// The PixelCNN recipe (van den Oord et al. 2016): exact likelihood of 8-bit images with masked
// convolutions (residual or gated), a 256-way softmax per sub-pixel, Adam; loss and held-out NLL in
// bits/dim. See models/pixelcnn/README.md and experiments/pixelcnn_*.ini.
#pragma once

#include "train/recipe.h"

namespace gantry::pixelcnn {

RecipeInfo recipe_info();

}  // namespace gantry::pixelcnn
