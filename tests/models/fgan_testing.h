// Helpers for the f-GAN recipe tests: a communicator that counts all-reduces, a configuration with
// the recipe's keys, and a recipe built the way the trainer builds it.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "config/config.h"
#include "dist/communicator.h"
#include "dist/counting_communicator.h"
#include "dist/grad_sync.h"
#include "dist/module_state.h"
#include "fgan/fgan_recipe.h"
#include "train/trainer.h"

namespace gantry::testing {

inline Config fgan_config(const std::vector<std::pair<std::string, std::string>>& overrides) {
  Schema schema;
  add_common_keys(schema, {"fgan"});
  fgan::recipe_info().add_keys(schema);
  Config c(schema);
  c.set("run.recipe", "fgan");
  for (const auto& [k, v] : overrides) c.set(k, v);
  return c;
}

// A recipe on `comm` as the trainer makes one: seeded initialisation, rank 0's state broadcast.
struct FganRun {
  FganRun(const Config& config, Communicator& comm, DataShape shape, GradSyncOptions sync_options = {})
      : counting(comm),
        sync(counting, sync_options),
        step(sync, StepOptions{config.int64("train.micro_batches"), config.real("train.clip_grad_norm")}) {
    torch::manual_seed(1234);
    recipe = fgan::recipe_info().create(RecipeEnv{config, {{kMainStream, shape}}, torch::kCPU, counting, sync, step});
    for (const auto& [name, net] : recipe->networks()) broadcast_state(counting, *net);
    counting.reset();
  }
  torch::Tensor parameters() {
    std::vector<torch::Tensor> all;
    for (const auto& [name, net] : recipe->networks())
      for (const auto& p : net->parameters()) all.push_back(p.detach().reshape({-1}).clone());
    return torch::cat(all);
  }
  // One step on a batch of the main stream.
  Losses train_step(const Batch& batch) { return recipe->train_step({{kMainStream, batch}}); }
  CountingCommunicator counting;
  GradSync sync;
  StepContext step;
  std::unique_ptr<Recipe> recipe;
};

// One big bucket per group: a reduction pass is then exactly one all-reduce.
inline GradSyncOptions one_bucket() {
  GradSyncOptions o;
  o.bucket_bytes = o.first_bucket_bytes = int64_t{256} << 20;
  o.overlap = false;
  return o;
}

}  // namespace gantry::testing
