// The one list of recipes: adding a recipe adds one line here (and its folder under models/).
#include "recipes.h"

#include "classifier/classifier_recipe.h"
#include "cyclegan/cyclegan_recipe.h"
#include "dcgan/dcgan_recipe.h"
#include "fgan/fgan_recipe.h"
#include "pixelcnn/pixelcnn_recipe.h"
#include "vae/vae_recipe.h"

namespace gantry::cli {

const std::vector<RecipeInfo>& all_recipes() {
  static const std::vector<RecipeInfo> recipes = {
      vae::recipe_info(),
      dcgan::recipe_info(),
      fgan::recipe_info(),
      cyclegan::recipe_info(),
      pixelcnn::recipe_info(),
      classifier::recipe_info(),
  };
  return recipes;
}

}  // namespace gantry::cli
