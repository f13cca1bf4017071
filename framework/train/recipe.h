// Recipe: what a model family plugs into the trainer. A recipe owns its networks, optimizers, losses,
// the order of its updates, sampling and evaluation; the trainer owns the loop, schedules, logging,
// checkpoints, signals and the data streams' positions. Each update goes through the StepContext
// (step_context.h), which does what every update repeats: micro-batches, loss averaging, the GradSync
// group's reduction, clipping, the optimizer step.
//
// Adding a recipe: models/<name>/ implements Recipe and exposes a RecipeInfo (its name, the keys of its
// own config section, the data streams it reads, a factory); launch/recipes.cpp lists it;
// experiments/<name>_*.ini configures it.
#pragma once

#include <ATen/core/Generator.h>
#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "config/config.h"
#include "dist/communicator.h"
#include "dist/grad_sync.h"
#include "train/batch_source.h"
#include "train/step_context.h"

namespace gantry {

// A data stream a recipe reads. The stream "train" reads data.path (held out: data.eval_path); any other
// name N reads data.N_path (data.N_eval_path). Each has its own seeded permutation and its own position
// in the checkpoint, and resumes exactly on any world size.
// On a CUDA device every stream arrives as uint8 (moved to the GPU and converted there): a recipe passes
// Batch::images through images_to_float, which gives the kFloat tensor on either device.
enum class BatchFormat {
  kFloat,  // (B, C, H, W) float32 in [-1, 1] (CPU runs; CUDA runs read uint8, see above)
  kUint8,  // (B, H, W, C) uint8 as stored (a likelihood over pixel values; GPU runs convert on the device)
};
struct StreamSpec {
  std::string name = "train";
  BatchFormat format = BatchFormat::kFloat;
};
inline const std::string kMainStream = "train";

// The batches of one step, one per declared stream, by name.
using StepBatches = std::map<std::string, Batch>;

// What a recipe is built from.
struct RecipeEnv {
  const Config& config;
  std::map<std::string, DataShape> shapes;  // per stream
  torch::Device device;
  Communicator& comm;
  GradSync& sync;     // register groups in the constructor, in the same order on every rank
  StepContext& step;  // every update goes through it
  const DataShape& shape() const { return shapes.at(kMainStream); }
};

// Extra state a recipe checkpoints beside its networks and optimizers (e.g. CycleGAN's image pools).
// shared: one value for the run (rank 0's is saved); per_rank: every rank's own (same shapes on every
// rank), given back to each rank on a resume at the same world size (empty on another world size).
struct RecipeState {
  std::vector<std::pair<std::string, torch::Tensor>> shared, per_rank;
};

class Recipe {
 public:
  virtual ~Recipe() = default;

  // Checkpointed state: networks (broadcast from rank 0 at start/resume, buffers averaged before eval
  // and checkpoints) and optimizers (their learning rates are set by the trainer's schedule).
  virtual std::vector<std::pair<std::string, std::shared_ptr<torch::nn::Module>>> networks() = 0;
  virtual std::vector<std::pair<std::string, torch::optim::Optimizer*>> optimizers() = 0;
  virtual RecipeState state() { return {}; }
  virtual void restore(const RecipeState& state) {}

  // One optimizer step on this rank's share of the global batch of every stream.
  virtual Losses train_step(const StepBatches& batches) = 0;
  // n samples (n, C, H, W) in [-1, 1] drawn from `gen` (CPU), for the sample grid; an undefined tensor
  // when the samples are not images (no grid is written).
  virtual torch::Tensor sample(int64_t n, at::Generator& gen) = 0;
  // Held-out metrics over `batches` batches of `eval` (rank-local; the trainer averages across ranks).
  // Random numbers come from `noise_key`: per sample (row_generators), so the metrics are the same on
  // every world size; a recipe whose metric depends on the rank's batch (BatchNorm in training mode)
  // keys its numbers by rank and says so.
  virtual Losses evaluate(BatchSource& eval, int64_t batches, uint64_t noise_key) { return {}; }
  // An embedding of images (n, C, H, W) in [-1, 1] → (n, d), for scores in a feature space (gantry eval's
  // Fréchet and kernel distances); undefined when the recipe has none (only the classifier has one).
  virtual torch::Tensor features(const torch::Tensor& images) { return {}; }
  // Images of one domain (n, C, H, W) in [-1, 1], at the size of that domain's dataset, translated into
  // the other domain (a_to_b: A → B, else B → A), as the recipe translates held-out images (gantry sample
  // --input); undefined when the recipe does not translate (only CycleGAN does).
  virtual torch::Tensor translate(const torch::Tensor& images, bool a_to_b) { return {}; }
  // Extra pictures for the run directory (e.g. reconstructions), from a training step's batches.
  // `prefix` is a path without extension, e.g. RUN/samples/recon-step-00000100.
  virtual void write_visuals(const std::string& prefix, const StepBatches& batches, at::Generator& gen) {}
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
  // mixture experiment), nothing to read the image dataset at data.path. Replaces the "train" stream.
  std::function<std::optional<SyntheticData>(const Config&, const SourceSpec&)> synthetic_data;
  std::vector<StreamSpec> streams = {StreamSpec{}};  // the first is the one epochs and metrics count
};

}  // namespace gantry
