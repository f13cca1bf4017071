// What the commands that run a recipe share (train, eval): the full configuration schema, the recipe
// registry's lookup, each rank's device, the data streams a recipe reads, and `--key value` parsing.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "cli.h"
#include "config/config.h"
#include "dist/communicator.h"
#include "train/evaluation.h"
#include "train/recipe.h"
#include "train/trainer.h"

namespace gantry::cli {

Schema full_schema();                                     // the common keys and every recipe's section
const RecipeInfo& recipe_named(const std::string& name);  // UsageError for an unknown one

// One GPU per rank (local rank) when LibTorch has CUDA, otherwise the CPU; made the current device.
torch::Device rank_device(const DistContext& ctx);

// The recipe's streams (its own synthetic data, or the sharded datasets its config names) and factory.
// `config` must outlive the returned setup. `recorded`: the image shapes a restored checkpoint recorded;
// those streams open their datasets only when read.
TrainSetup make_setup(const Config& config, Communicator& comm, const std::string& run_dir, const std::string& resume,
                      const torch::Device& device, const std::map<std::string, DataShape>& recorded = {});

// A run or checkpoint turned into a recipe with its networks loaded: the configuration the checkpoint was
// trained with (plus `overrides`), its data streams, its networks. `path`: a checkpoint directory or a
// run directory (its newest checkpoint that verifies). Collective.
struct Restored {
  std::unique_ptr<Config> config;
  std::unique_ptr<TrainSetup> setup;
  LoadedRecipe loaded;
};
Restored restore_run(const Schema& schema, Communicator& comm, const torch::Device& device, const std::string& path,
                     const std::vector<std::pair<std::string, std::string>>& overrides);
// Sets LibTorch's threads to the restored run's train.threads (or the command line's): the count its
// trainer ran and evaluated with. CPU kernels split their sums by thread count, so another count changes
// the last bits of samples and scores.
void use_run_threads(const DistContext& ctx, const Config& config);

// eval.features (a classifier run) or eval.inception (a TorchScript file) opened on every rank, for
// `setup` (its features and feature_space). Nothing when neither is set; UsageError for both, for a
// network without features, or for sample scores without data.eval_path. `keep` holds the network.
void open_feature_space(const Schema& schema, Communicator& comm, const torch::Device& device, const Config& config,
                        TrainSetup& setup, std::shared_ptr<void>& keep);

// `--key value` / `--key=value` arguments: keys in `own` go to `options`, keys in `flags` take no value
// (set to "true"), the rest are configuration overrides (--section.key value). `help` for --help / -h.
struct ParsedArgs {
  std::map<std::string, std::string> options;
  std::vector<std::pair<std::string, std::string>> overrides;
  bool help = false;
  std::string get(const std::string& key, const std::string& fallback = "") const {
    auto it = options.find(key);
    return it == options.end() ? fallback : it->second;
  }
};
ParsedArgs parse_args(const Args& args, const std::set<std::string>& own, const std::set<std::string>& flags = {});

}  // namespace gantry::cli
