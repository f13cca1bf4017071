// The training run: resume or start, then the loop — batches → recipe step → log → sample → eval →
// stop agreement → checkpoint. Everything a run needs is passed in (TrainSetup): the framework knows no
// dataset format and no recipe. run_state.h holds the resume decision, snapshot and restore.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "dist/communicator.h"
#include "train/batch_source.h"
#include "train/recipe.h"
#include "train/train_options.h"

namespace gantry {

// One data stream as the trainer reads it.
struct StreamSource {
  std::string name = kMainStream;
  DataShape shape;
  // The stream from a position (resume), and a fresh held-out stream (null: no evaluation; only the main
  // stream's is evaluated).
  std::function<std::unique_ptr<BatchSource>(const DataPosition&)> make_train;
  std::function<std::unique_ptr<BatchSource>()> make_eval;
};

// (n, C, H, W) images in [-1, 1] → (n, d) features: the space of FID / KID (train/evaluation.h).
using FeatureFn = std::function<torch::Tensor(const torch::Tensor& images)>;

struct TrainSetup {
  const Config& config;
  Communicator& comm;
  std::string run_dir;
  std::string resume = "auto";  // auto | none | PATH
  torch::Device device = torch::kCPU;
  std::vector<StreamSource> streams;  // the recipe's, in its declared order; the first is the main one
  std::function<std::unique_ptr<Recipe>(const RecipeEnv&)> make_recipe;
  // Ends every rank of the job at once with `exit_code` (MPI_Abort): for an error raised during training
  // on some ranks only, which would otherwise leave the others waiting in a collective.
  std::function<void(int exit_code)> abort_job;
  // eval.features / eval.inception opened (null: none): evaluations add FID / KID in this space, and
  // `feature_space` (the network and its checksum) goes with every score.
  FeatureFn features;
  std::string feature_space;
};

// Runs to train.steps. Returns 0, or 75 (ExitCode::kStopped) after a signal and a checkpoint.
int run_training(const TrainSetup& setup);

}  // namespace gantry
