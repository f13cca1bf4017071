// The training run: resume or start, then the loop — batch → recipe step → log → sample → eval →
// checkpoint — with a stop agreement at every step boundary. Everything a run needs is passed in
// (TrainSetup): the framework knows no dataset format and no recipe.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "config/config.h"
#include "dist/communicator.h"
#include "train/batch_source.h"
#include "train/recipe.h"

namespace gantry {

// The keys every recipe shares (run.*, data.*, train.*, dist.*); `recipes` are the registered names.
void add_common_keys(Schema& schema, const std::vector<std::string>& recipes);

struct TrainSetup {
  const Config& config;
  Communicator& comm;
  std::string run_dir;
  std::string resume = "auto";  // auto | none | PATH
  torch::Device device = torch::kCPU;
  DataShape shape;
  // The training stream from a position (resume), and a fresh held-out stream (null: no evaluation).
  std::function<std::unique_ptr<BatchSource>(const DataPosition&)> make_train_source;
  std::function<std::unique_ptr<BatchSource>()> make_eval_source;
  std::function<std::unique_ptr<Recipe>(const RecipeEnv&)> make_recipe;
  // Ends every rank of the job at once with `exit_code` (MPI_Abort): for an error raised during training
  // on some ranks only, which would otherwise leave the others waiting in a collective.
  std::function<void(int exit_code)> abort_job;
};

// Runs to train.steps. Returns 0, or 75 (ExitCode::kStopped) after a signal and a checkpoint.
int run_training(const TrainSetup& setup);

}  // namespace gantry
