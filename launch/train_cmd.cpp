// gantry train --config FILE [--run-dir DIR] [--resume auto|none|PATH] [--section.key VALUE ...]
#include <ATen/Parallel.h>

#include <filesystem>
#include <iostream>

#include "cli.h"
#include "config/config.h"
#include "core/errors.h"
#include "dist/communicator.h"
#include "dist/mpi_runtime.h"
#include "run_setup.h"
#include "train/device_setup.h"
#include "train/trainer.h"

namespace fs = std::filesystem;

namespace gantry::cli {

namespace {

const char* kTrainUsage =
    "usage: gantry train --config FILE [--run-dir DIR] [--resume auto|none|PATH] [--SECTION.KEY VALUE ...]\n"
    "  --run-dir DIR    run directory (default runs/<config file name>)\n"
    "  --resume WHAT    auto: newest checkpoint that verifies (default); none: start over; PATH: that checkpoint\n"
    "Every key below may be set in the INI file ([section] key = value) or as --section.key VALUE (wins).\n";

}  // namespace

int train_command(const Args& args, MpiRuntime& mpi) {
  Schema schema = full_schema();
  const ParsedArgs parsed = parse_args(args, {"config", "run-dir", "resume"});
  if (parsed.help) {
    if (mpi.context().rank == 0) {
      std::cout << kTrainUsage;
      schema.print_help(std::cout);
    }
    return 0;
  }
  const std::string config_path = parsed.get("config");
  std::string run_dir = parsed.get("run-dir");
  const std::string resume = parsed.get("resume", "auto");
  if (config_path.empty()) throw UsageError("--config: required (e.g. experiments/vae_fashion_mnist.ini)");
  Config config = load_config(schema, config_path, parsed.overrides);
  if (run_dir.empty()) run_dir = (fs::path("runs") / fs::path(config_path).stem()).string();

  const DistContext& ctx = mpi.context();
  const TrainOptions options = parse_train_options(config);
  at::set_num_threads(intra_op_threads(ctx, options.threads));
  const torch::Device device = rank_device(ctx);
  CommOptions comm_options;
  comm_options.device = device;
  comm_options.timeout_s = options.timeout_s;
  auto comm = make_communicator(options.backend, comm_options);

  TrainSetup setup = make_setup(config, *comm, run_dir, resume, device);
  std::shared_ptr<void> feature_net;
  open_feature_space(schema, *comm, device, config, setup, feature_net);
  setup.abort_job = [&mpi](int code) { mpi.abort(code); };
  return run_training(setup);
}

}  // namespace gantry::cli
