// Recipe: what a model family plugs into the trainer. A recipe owns its networks, optimizers, losses,
// the order of its updates (arm/finish its GradSync groups around each backward), sampling and
// evaluation; the trainer owns the loop, schedules, logging, checkpoints, signals and data position.
//
// Adding a recipe: models/<name>/ implements Recipe and exposes a RecipeInfo (its name, the keys of its
// own config section, a factory); launch/recipes.cpp lists it; experiments/<name>_*.ini configures it.
#pragma once

#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "config/config.h"
#include "dist/communicator.h"
#include "dist/grad_sync.h"
#include "train/batch_source.h"

namespace gantry {

// Image shape of the training data: what networks are built for.
struct DataShape {
  int64_t channels = 1, height = 28, width = 28;
  bool has_labels = false;
};

// What a recipe is built from.
struct RecipeEnv {
  const Config& config;
  DataShape shape;
  torch::Device device;
  Communicator& comm;
  GradSync& sync;  // register groups in the constructor, in the same order on every rank
};

using Losses = std::vector<std::pair<std::string, double>>;  // named, in display order; this rank's values

class Recipe {
 public:
  virtual ~Recipe() = default;

  // Checkpointed state: networks (broadcast from rank 0 at start/resume, buffers averaged before eval
  // and checkpoints) and optimizers (their learning rates are set by the trainer's schedule).
  virtual std::vector<std::pair<std::string, std::shared_ptr<torch::nn::Module>>> networks() = 0;
  virtual std::vector<std::pair<std::string, torch::optim::Optimizer*>> optimizers() = 0;

  // One optimizer step on this rank's share of the global batch.
  virtual Losses train_step(const Batch& batch) = 0;
  // n samples (n, C, H, W) in [-1, 1], drawn with the CPU generator (seeded by the trainer), for the
  // sample grid; an undefined tensor when the samples are not images (no grid is written).
  virtual torch::Tensor sample(int64_t n) = 0;
  // Held-out metrics over `batches` batches of `eval` (rank-local; the trainer averages across ranks).
  virtual Losses evaluate(BatchSource& eval, int64_t batches) { return {}; }
  // Extra pictures for the run directory (e.g. reconstructions), from a training batch. `prefix`
  // is a path without extension, e.g. RUN/samples/recon-step-00000100.
  virtual void write_visuals(const std::string& prefix, const Batch& batch) {}
};

// Data a recipe generates itself (samples of a known distribution) instead of reading data.path.
// Batches must depend only on (run.seed, data position) and be sliced per rank like the loader's, so a
// run is the same on any world size and resumes exactly.
struct SyntheticData {
  DataShape shape;
  std::function<std::unique_ptr<BatchSource>(const DataPosition& start)> make_train;
  std::function<std::unique_ptr<BatchSource>()> make_eval;  // null: no evaluation
};
struct SourceSpec {
  int rank = 0, world_size = 1;
  int64_t global_batch = 1;
  uint64_t seed = 0;
};

struct RecipeInfo {
  std::string name;                       // run.recipe
  std::function<void(Schema&)> add_keys;  // its own section, e.g. [vae]
  std::function<std::unique_ptr<Recipe>(const RecipeEnv&)> create;
  // Optional: returns the recipe's own data when the configuration asks for it (e.g. f-GAN's 1-D
  // mixture experiment), nothing to read the image dataset at data.path.
  std::function<std::optional<SyntheticData>(const Config&, const SourceSpec&)> synthetic_data;
};

}  // namespace gantry
